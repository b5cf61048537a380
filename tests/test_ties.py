"""Tie rules of the ranking metrics (config.eval.ties): pessimistic, optimistic, expected."""

import functools
import json
import math

from conftest import tiny_config
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from orthoalign import errors
from orthoalign.config import upgrade
from orthoalign.config import validation
from orthoalign.metrics import ranking
from orthoalign.train import build
from orthoalign.train import loop
from orthoalign.train import results
from orthoalign.train import step as step_lib

METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "hr@1", "hr@5", "hr@10", "mrr", "auc")


def ref_metrics(rank: float, num: int) -> dict[str, float]:
  """Metrics of one 0-based rank (a float rank r stands for nothing here: callers pass ints)."""
  out = {}
  for k in ranking.KS:
    out[f"ndcg@{k}"] = 1.0 / math.log2(rank + 2) if rank < k else 0.0
    out[f"hr@{k}"] = 1.0 if rank < k else 0.0
  out["mrr"] = 1.0 / (rank + 1)
  out["auc"] = (num - rank) / num if num else 0.0
  return out


def ref_expected(h: int, e: int, num: int) -> dict[str, float]:
  """Mean of each metric over ranks h..h+e; AUC counts a tie as 1/2."""
  per = [ref_metrics(r, num) for r in range(h, h + e + 1)]
  out = {m: float(np.mean([p[m] for p in per])) for m in METRICS}
  out["auc"] = (num - h - e / 2) / num if num else 0.0
  return out


def _get(metrics, i=0):
  return {k: float(np.asarray(v).reshape(-1)[i]) for k, v in metrics.items()}


def _close(got, want, rtol=1e-6, atol=1e-7):
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=rtol, atol=atol, err_msg=name)


# Target 1.0; one negative above, two tied, two below: h=1, e=2, N=5.
_HAND = np.array([[1.0, 2.0, 1.0, 1.0, 0.0, 0.0]], np.float32)


def test_hand_made_counts_and_the_three_rules():
  h, e, n = ranking.sampled_counts(jnp.asarray(_HAND))
  assert (int(h[0]), int(e[0]), int(n[0])) == (1, 2, 5)
  rank, _ = ranking.sampled_rank(jnp.asarray(_HAND))
  assert int(rank[0]) == 3  # today's rank = h + e
  pess = _get(ranking.metrics_from_counts(h, e, n, "pessimistic"))
  opt = _get(ranking.metrics_from_counts(h, e, n, "optimistic"))
  exp = _get(ranking.metrics_from_counts(h, e, n, "expected"))
  _close(pess, ref_metrics(3, 5))
  _close(opt, ref_metrics(1, 5))
  # Ranks 1, 2, 3 equally likely.
  want = {
    "ndcg@1": 0.0,
    "hr@1": 0.0,
    "hr@5": 1.0,
    "hr@10": 1.0,
    "ndcg@5": (1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)) / 3,
    "mrr": (1 / 2 + 1 / 3 + 1 / 4) / 3,
    "auc": (5 - 1 - 1) / 5,
  }
  want["ndcg@10"] = want["ndcg@5"]
  _close(exp, want)
  assert pess["tie_share"] == opt["tie_share"] == exp["tie_share"] == 1.0
  assert pess["auc"] == pytest.approx(0.4) and opt["auc"] == pytest.approx(0.8)


def test_hr_at_k_straddling_the_tie_block():
  # h=3, e=4: ranks 3..7; hr@5 = #{3, 4} / 5, ndcg@5 likewise over ranks 3 and 4.
  got = _get(
    ranking.metrics_from_counts(jnp.array([3]), jnp.array([4]), jnp.array([9]), "expected")
  )
  _close(got, ref_expected(3, 4, 9))
  assert got["hr@5"] == pytest.approx(2 / 5)
  assert got["hr@1"] == 0.0 and got["hr@10"] == 1.0


def test_full_counts_match_sampled_counts():
  scores = jnp.asarray(_HAND)
  mask = jnp.array([[False, True, True, True, True, False]])  # drops the target and one below
  h, e, n = ranking.full_counts(scores[:, 0], scores, mask)
  assert (int(h[0]), int(e[0]), int(n[0])) == (1, 2, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_equals_monte_carlo_tie_breaking(seed):
  rng = np.random.default_rng(seed)
  num_neg, draws = 30, 100_000
  scores = rng.integers(0, 4, size=(4, 1 + num_neg)).astype(np.float32)  # many ties
  valid = rng.random((4, 1 + num_neg)) < 0.9
  h, e, n = ranking.sampled_counts(jnp.asarray(scores), jnp.asarray(valid))
  got = ranking.metrics_from_counts(h, e, n, "expected")
  for i in range(scores.shape[0]):
    neg, ok = scores[i, 1:], valid[i, 1:]
    above = int(np.sum(ok & (neg > scores[i, 0])))
    tied = int(np.sum(ok & (neg == scores[i, 0])))
    num = int(ok.sum())
    assert (int(h[i]), int(e[i]), int(n[i])) == (above, tied, num)
    # Random tie-breaking: random keys for the target and each tied negative; the tied negatives
    # whose key is below the target's go ahead of it.
    keys = rng.random((draws, tied + 1))
    rank = above + np.sum(keys[:, 1:] < keys[:, :1], axis=1)
    mc = {}
    for k in ranking.KS:
      mc[f"ndcg@{k}"] = np.mean(np.where(rank < k, 1 / np.log2(rank + 2), 0.0))
      mc[f"hr@{k}"] = np.mean(rank < k)
    mc["mrr"] = np.mean(1 / (rank + 1))
    # AUC: a tied negative below the target after tie-breaking counts 1, above 0.
    mc["auc"] = np.mean((num - rank) / num)
    _close(_get(got, i), mc, rtol=0, atol=0.01)
    _close(_get(got, i), ref_expected(above, tied, num), rtol=1e-5, atol=1e-6)


def test_expected_mrr_far_down_the_ranking():
  hs, es = np.meshgrid([0, 1, 7, 14, 15, 16, 100, 5000, 200_000], [0, 1, 2, 9, 300, 20_000])
  hs, es = hs.ravel(), es.ravel()
  got = np.asarray(
    ranking.metrics_from_counts(
      jnp.asarray(hs), jnp.asarray(es), jnp.asarray(hs + es + 5), "expected"
    )["mrr"]
  )
  want = [np.mean(1.0 / np.arange(h + 1, h + e + 2, dtype=np.float64)) for h, e in zip(hs, es)]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_no_ties_all_rules_agree():
  rng = np.random.default_rng(3)
  scores = jnp.asarray(rng.normal(size=(64, 21)).astype(np.float32))
  h, e, n = ranking.sampled_counts(scores)
  assert int(jnp.sum(e)) == 0
  base = ranking.metrics_from_rank(*ranking.sampled_rank(scores))
  for rule in ranking.TIES:
    got = ranking.metrics_from_counts(h, e, n, rule)
    assert float(jnp.sum(got["tie_share"])) == 0.0
    for name in METRICS:
      np.testing.assert_allclose(
        got[name], base[name], rtol=1e-6, atol=1e-7, err_msg=f"{rule} {name}"
      )


def test_pessimistic_is_todays_rule_exactly():
  rng = np.random.default_rng(4)
  scores = rng.integers(0, 3, size=(50, 12)).astype(np.float32)
  scores[0, 0] = np.nan
  scores[1, 3] = np.nan
  valid = rng.random(scores.shape) < 0.8
  old = ranking.metrics_from_rank(*ranking.sampled_rank(jnp.asarray(scores), jnp.asarray(valid)))
  new = ranking.metrics_from_counts(
    *ranking.sampled_counts(jnp.asarray(scores), jnp.asarray(valid))
  )
  for name in METRICS:
    np.testing.assert_array_equal(new[name], old[name], err_msg=name)


@pytest.mark.parametrize("rule", ranking.TIES)
def test_nan_counts_against_the_target_in_every_rule(rule):
  scores = jnp.array(
    [
      [np.nan, 1.0, 2.0, 0.0],  # NaN target: worst rank
      [1.0, np.nan, 1.0, 0.0],  # NaN negative above, one tie
      [np.nan, np.nan, np.nan, np.nan],
    ],
    jnp.float32,
  )
  h, e, n = ranking.sampled_counts(scores)
  np.testing.assert_array_equal(h, [3, 1, 3])
  np.testing.assert_array_equal(e, [0, 1, 0])
  got = ranking.metrics_from_counts(h, e, n, rule)
  for i in (0, 2):
    _close(_get(got, i), ref_metrics(3, 3))
  assert float(got["tie_share"][1]) == 1.0 and float(got["tie_share"][0]) == 0.0


def test_rules_run_jitted():
  scores = jnp.asarray(_HAND)
  for rule in ranking.TIES:
    fn = jax.jit(lambda s, rule=rule: ranking.metrics_from_counts(*ranking.sampled_counts(s), rule))
    eager = ranking.metrics_from_counts(*ranking.sampled_counts(scores), rule)
    for name, value in fn(scores).items():
      np.testing.assert_allclose(value, eager[name], rtol=1e-6, err_msg=f"{rule} {name}")


def test_unknown_rule():
  with pytest.raises(ValueError, match="valid choices"):
    ranking.metrics_from_counts(jnp.array([0]), jnp.array([0]), jnp.array([1]), "random")


def test_tie_share_of_a_hand_made_batch():
  scores = jnp.array(
    [
      [1.0, 1.0, 0.0],  # A, tie
      [1.0, 0.0, 2.0],  # A, no tie
      [0.5, 0.5, 0.5],  # B, ties
      [3.0, 1.0, 2.0],  # B, no tie
      [0.0, 0.0, 0.0],
    ],  # padding row (weight 0) with ties
    jnp.float32,
  )
  domain = jnp.array([0, 0, 1, 1, 1])
  weight = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
  per = ranking.metrics_from_counts(*ranking.sampled_counts(scores), "expected")
  out = ranking.finalize(ranking.domain_sums(per, domain, weight))
  assert out["A/tie_share"] == pytest.approx(0.5)
  assert out["B/tie_share"] == pytest.approx(0.5)
  assert out["all/tie_share"] == pytest.approx(0.5)
  # Row 3 of the second domain: h=0, e=2, so its mrr is (1 + 1/2 + 1/3) / 3.
  assert out["B/mrr"] == pytest.approx(((1 + 1 / 2 + 1 / 3) / 3 + 1.0) / 2)


def test_config_validates_the_rule():
  cfg = tiny.get_config()
  assert cfg.eval.ties == "pessimistic"
  for rule in ranking.TIES:
    cfg.eval.ties = rule
    validation.validate(cfg)
  cfg.eval.ties = "random"
  with pytest.raises(
    errors.ConfigError,
    match=r"eval.ties='random' is invalid; "
    r"valid choices: \['pessimistic', 'optimistic', 'expected'\]",
  ):
    validation.validate(cfg)
  saved = cfg.to_dict()
  del saved["eval"]["ties"]  # a config.json from before the key: the pessimistic rule it used
  old = upgrade.config(saved)
  assert old.eval.ties == "pessimistic"
  validation.validate(old)


_tiny = tiny_config


def test_evaluate_applies_the_rule():
  """With all-zero parameters every score ties; the three rules then give known numbers."""
  run = build.setup(_tiny())
  params = jax.tree.map(lambda x: jnp.zeros_like(x[0]), run.state.params)
  got = {}
  for rule in ranking.TIES:
    fn = jax.jit(functools.partial(step_lib.evaluate, task=run.task, mesh=run.mesh, ties=rule))
    sums = jax.device_get(fn(params, run.frozen, run.eval_data["valid"]))
    got[rule] = ranking.finalize(
      {k.split("/", 1)[1]: v for k, v in sums.items() if k.startswith("sampled/")}
    )
  n = run.task.eval_data["valid"]["domain"].shape[0]
  assert n > 0
  num = 20  # eval.num_negatives of configs/tiny.py
  for rule in ranking.TIES:
    assert got[rule]["all/tie_share"] == pytest.approx(1.0)
  _close(
    _get({m: got["pessimistic"][f"all/{m}"] for m in METRICS}), ref_metrics(num, num), atol=1e-6
  )
  _close(_get({m: got["optimistic"][f"all/{m}"] for m in METRICS}), ref_metrics(0, num), atol=1e-6)
  _close(
    _get({m: got["expected"][f"all/{m}"] for m in METRICS}), ref_expected(0, num, num), atol=1e-6
  )
  # The default is the pessimistic rule.
  default = jax.jit(functools.partial(step_lib.evaluate, task=run.task, mesh=run.mesh))
  sums = jax.device_get(default(params, run.frozen, run.eval_data["valid"]))
  assert float(sums["sampled/all/ndcg@10"]) == 0.0


def test_end_to_end_expected(tmp_path):
  cfg = _tiny(**{"eval.ties": "expected", "train.max_epochs": 2})
  rows = loop.train_and_evaluate(cfg, str(tmp_path))
  with open(tmp_path / "results.jsonl") as f:
    disk = [json.loads(line) for line in f]
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["eval"]["ties"] == "expected"
  for row in (rows[0], disk[0]):
    assert row["config"]["eval.ties"] == "expected"
    for split in ("valid", "test"):
      for proto in ("sampled", "full"):
        for dom in ("A", "B", "all"):
          share = row[f"{split}/{proto}/{dom}/tie_share"]
          assert 0.0 <= share <= 1.0
  text = results.results_table(rows, cfg)
  assert "TIE_SHARE" in text and "ties: expected" in text


def test_the_trainer_scores_with_the_configured_rule():
  """build.setup hands eval.ties to the compiled evaluation: with all-zero parameters every score
  ties, so NDCG@1 is 1 under the optimistic rule and 0 under the pessimistic one.
  """
  ndcg1 = {}
  for rule in ("optimistic", "pessimistic"):
    run = build.setup(_tiny(**{"eval.ties": rule}))
    zeros = jax.tree.map(jnp.zeros_like, run.state.params)
    sums = jax.device_get(run.eval_fn(zeros, run.frozen, run.eval_data["valid"]))
    ndcg1[rule] = results.finalize_split(sums, 0, "valid")["valid/sampled/all/ndcg@1"]
  # 1 / log2(2) in the compiled program: exact here, within a rounding on another backend.
  assert ndcg1 == {"optimistic": pytest.approx(1.0, rel=1e-6), "pessimistic": 0.0}
