"""Errors only the build can find (the dataset, the model's inputs, the model) are one-line user
errors naming the setting, not tracebacks.
"""

from conftest import tiny_config
from conftest import tiny_run
import pytest

from orthoalign import errors
from orthoalign.train import build
from orthoalign.train import loop


def test_a_small_catalogue_for_the_text_tables_is_one_config_error():
  """With data.text_emb=tfidf a 60-item domain cannot fill 64-dim LLM4CDSR tables: a 35-line
  ValueError before, one line naming the settings now.
  """
  config = tiny_config(**{"data.text_emb": "tfidf", "model.width": 64})
  with pytest.raises(
    errors.ConfigError,
    match=r"model.local_emb needs item text embeddings of at "
    r"least model.width=64",
  ) as info:
    build.setup(config)
  assert "\n" not in errors.message(info.value)


def test_a_value_error_while_building_names_what_was_built(monkeypatch):
  def broken(data_config):
    raise ValueError("zero-size array to reduction operation maximum")

  monkeypatch.setattr(build.data_load, "load", broken)
  with pytest.raises(
    errors.ConfigError,
    match=r"cannot build the dataset from this config: "
    r"zero-size array",
  ):
    build.setup(tiny_config())
  monkeypatch.setenv("ORTHOALIGN_TRACEBACK", "1")  # a developer sees where it came from
  with pytest.raises(ValueError, match="zero-size array") as info:
    build.setup(tiny_config())
  assert not isinstance(info.value, errors.ConfigError)


def test_too_many_extra_negatives_names_that_key():
  """It said "lower num_negatives" for a too large eval.extra_negatives entry."""
  with pytest.raises(
    errors.ConfigError,
    match=r"config key eval.extra_negatives=\(5000,\) \(5000\): "
    r"asks for more negatives than",
  ) as info:
    build.setup(
      tiny_config(
        **{"eval.extra_negatives": (5000,), "train.select_metric": "valid/sampled/all/ndcg@10"}
      )
    )
  assert "num_negatives" not in str(info.value).replace("extra_negatives", "")


@pytest.mark.parametrize(
  "error",
  [
    MemoryError(),
    RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 4000000000000 bytes."),
  ],
)
def test_out_of_memory_while_building_is_one_config_error(error, monkeypatch):
  """Host (MemoryError) or device (XLA's RESOURCE_EXHAUSTED) memory too small for the config;
  allocating that much in a test could take the machine down, so the build raises it here.
  """

  def too_large(data_config):
    raise error

  monkeypatch.setattr(build.data_load, "load", too_large)
  with pytest.raises(errors.RunError, match=r"out of memory while building the dataset"):
    build.setup(tiny_config())


def test_other_runtime_errors_keep_their_traceback(monkeypatch):
  def bug(data_config):
    raise RuntimeError("a bug, not the user's")

  monkeypatch.setattr(build.data_load, "load", bug)
  with pytest.raises(RuntimeError, match="a bug"):
    build.setup(tiny_config())


def test_out_of_memory_while_training_is_one_run_error(tmp_path, monkeypatch):
  """A too large train.batch_size ended in a 43-line RESOURCE_EXHAUSTED traceback in epoch 1."""

  def exhausted(state, lrs):
    raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 446655423552 bytes.")

  monkeypatch.setattr(loop.schedule, "set_learning_rates", exhausted)
  with pytest.raises(
    errors.RunError,
    match=r"out of memory while training .* lower "
    r"train.batch_size",
  ):
    tiny_run(tmp_path, **{"train.max_epochs": 1})
