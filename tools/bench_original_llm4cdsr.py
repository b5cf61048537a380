"""LLM4CDSR for tools/bench_against_original.py: orthoalign's model and the authors' PyTorch code.

The original is liuqidong07/LLM4CDSR-pytorch (`models/LLMCDSR.py`, `generators/generator.py`),
imported from its checkout at run time, never copied. Data: the embedded synthetic data of
configs/llm4cdsr.py, written in the original's handled format (orthoalign.datasets.readers.handled.
write_handled) into a temporary `data/<name>/handled/` together with orthoalign's frozen text tables
and user profiles as the pickles the original model reads. Both sides train the plain model
(`gca.positions=()`, `model.missing_text="zero"`, upstream's hidden 128 and dropout 0.5, Adam lr
1e-3, batch 128, 1 training negative, 1 + 100 evaluation candidates).
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import tempfile
import time

import bench_common
import numpy as np

_DATASET = "bench"  # the folder name the original's data/<dataset>/handled wants
_INTER_FILE = "cloth_sport"  # its handled interaction pickle (any name; passed as args)
_LLM_FILE, _USER_FILE = "itm_emb", "usr_profile_emb"
_BATCH = 128


def build(
  checkout: str, max_len: int, steps: int, also_anomaly: bool, length_buckets: tuple[int, ...] = ()
) -> bench_common.Bench:
  """Both sides at `max_len` over `steps` batches of 128 training users.

  `length_buckets` (those below max_len are used): orthoalign trains in length buckets with padding
  masked out of attention (`train.length_buckets`, `model.mask_padding_keys=True`), which the
  original cannot; without, both sides compute every padded position.
  """
  import torch  # optional dependency

  torch_generator, torch_llmcdsr = bench_common.import_authors(
    checkout, "generators.generator", "models.LLMCDSR"
  )
  from configs import llm4cdsr as llm4cdsr_config
  from orthoalign.datasets.readers import handled

  cfg = llm4cdsr_config.get_config()
  cfg.model.max_len = max_len
  cfg.model.width = 128  # upstream's (configs/llm4cdsr.py runs 64 on a CPU)
  cfg.model.missing_text = "zero"  # upstream has no trainable rows for text-less items
  cfg.gca.positions = ()  # the plain model: the original has no GCA
  cfg.train.batch_size = _BATCH
  buckets = tuple(b for b in length_buckets if b < max_len)
  if buckets:
    cfg.model.mask_padding_keys = True
    cfg.train.length_buckets = buckets
  m = cfg.model
  build_s: dict[str, float] = {}

  with bench_common.timed(build_s, "ours"):
    ours = bench_common.orthoalign_side(cfg, steps)
  run, users, steps = ours.run, ours.users, ours.steps
  ds, task = run.ds, run.task
  n_eval = len(ours.ev_rows)

  # -- the original's data (not timed: it reads these files when it is built) --------------------
  tables = {k: np.asarray(v, np.float32) for k, v in task.model.frozen["frozen"].items()}
  tmp = tempfile.TemporaryDirectory()
  handled_dir = os.path.join(tmp.name, "data", _DATASET, "handled")
  os.makedirs(handled_dir)
  handled.write_handled(
    ds, os.path.join(handled_dir, _INTER_FILE + ".pkl"), os.path.join(handled_dir, "id_map.json")
  )
  for name, table in (
    (f"{_LLM_FILE}_all", tables["global_table"]),
    (f"{_LLM_FILE}_A_pca128", tables["table_a"]),
    (f"{_LLM_FILE}_B_pca128", tables["table_b"]),
  ):
    with open(os.path.join(handled_dir, name + ".pkl"), "wb") as f:
      pickle.dump(table[1:], f)  # row i = item i + 1
  # Its user_id is the index into the training list: profiles in that (subsample) order.
  profile = np.asarray(task.train_data["user_profile"], np.float32)[ours.rows]
  with open(os.path.join(handled_dir, _USER_FILE + ".pkl"), "wb") as f:
    pickle.dump(profile, f)
  targs = argparse.Namespace(
    dataset=_DATASET,
    inter_file=_INTER_FILE,
    aug_file="",
    aug_seq=False,
    aug_seq_len=0,
    num_workers=0,
    train_batch_size=_BATCH,
    max_len=m.max_len,
    train_neg=1,
    test_neg=cfg.eval.num_negatives,
    llm_emb_file=_LLM_FILE,
    user_emb_file=_USER_FILE,
    global_emb=True,
    local_emb=True,
    freeze_emb=m.freeze_global,
    hidden_size=m.width,
    dropout_rate=m.dropout,
    trm_num=m.blocks,
    num_heads=m.heads,
    alpha=m.alpha,
    beta=m.beta,
    tau=m.tau,
    tau_reg=m.tau_reg,
  )

  # -- the original: its generator (reads the files), model and optimizer ------------------------
  t0 = time.perf_counter()
  cwd = os.getcwd()
  os.chdir(tmp.name)  # the original opens ./data/...
  try:
    torch.manual_seed(0)
    np.random.seed(0)
    gen = torch_generator.CDSRRegSeq2SeqGeneratorUser(targs, logging.getLogger("llm4cdsr"), "cpu")
    keep = [int(u) + 1 for u in users]  # write_handled: user u -> id u + 1
    for split in ("train", "valid", "test", "domain_train", "domain_valid", "domain_test"):
      setattr(gen, split, {u: getattr(gen, split)[u] for u in keep})
    train_loader = gen.make_trainloader()
    valid_loader = gen.make_evalloader()
    model = torch_llmcdsr.LLM4CDSR(len(keep), gen.get_item_num_dict(), "cpu", targs)
  finally:
    os.chdir(cwd)
  optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.learning_rate, weight_decay=0.0)
  build_s["theirs"] = time.perf_counter() - t0
  assert len(train_loader) == steps and len(gen.eval_dataset) == n_eval
  step_only: list[float] = []

  def train_step(batch) -> None:  # as SeqTrainer._train_one_epoch
    loss = model(**dict(zip(gen.train_dataset.var_name, batch)))
    loss.backward()
    loss.item()
    optimizer.step()
    optimizer.zero_grad()

  def theirs_train(anomaly: bool = False) -> float:
    torch.autograd.set_detect_anomaly(anomaly)
    model.train()
    total, inside = bench_common.loader_pass(train_loader, train_step)
    torch.autograd.set_detect_anomaly(False)
    if not anomaly:
      step_only.append(inside)
    return total

  ranks: list = []

  def eval_step(batch) -> None:  # as CDSRTrainer.eval
    inputs = dict(zip(gen.eval_dataset.var_name, batch))
    with torch.no_grad():
      for s in ("", "A", "B"):
        inputs[f"item_indices{s}"] = torch.cat(
          [inputs[f"pos{s}"].unsqueeze(1), inputs[f"neg{s}"]], dim=1
        )
      ranks.append(torch.argsort(torch.argsort(-model.predict(**inputs)))[:, 0])

  def theirs_eval() -> float:
    model.eval()
    ranks.clear()
    t0 = time.perf_counter()
    bench_common.loader_pass(valid_loader, eval_step)
    torch.cat(ranks)
    return time.perf_counter() - t0

  theirs = bench_common.Side(
    train=theirs_train,
    evaluate=theirs_eval,
    step_only=step_only,
    params=sum(p.numel() for p in model.parameters() if p.requires_grad),
    extra={"original, anomaly det. on": lambda: theirs_train(anomaly=True)} if also_anomaly else {},
  )
  notes = [
    f"data: synthetic {ds.num_users} users, {ds.num_items_a}+{ds.num_items_b} items | max_len "
    f"{m.max_len} | {steps} steps x {_BATCH} = {steps * _BATCH} training users | {n_eval} "
    f"validation users | trainable parameters: original {theirs.params:,}, orthoalign "
    f"{ours.side.params:,}",
    f"original: anomaly detection {torch.is_anomaly_enabled()} (its main.py sets True at import; "
    "never imported here); Adam; DataLoader workers 0",
    "training: both 1 negative per position (original: drawn in its DataLoader; orthoalign: on "
    "device, in the compiled step)",
    f"validation: both 1 + {cfg.eval.num_negatives} candidates per case (original: fresh draws "
    f"per case per pass in its loader, batch 100; orthoalign: frozen sets, batch "
    f"{cfg.eval.batch_size}); orthoalign also ranks the full catalogue "
    f"({ds.num_items_a + ds.num_items_b:,} items) and pads the {n_eval} cases to "
    f"{ours.eval_padded}",
    (
      f"orthoalign: length buckets {buckets + (max_len,)} with padding masked out of attention "
      f"(a different computation from the original's, where padding acts as keys): "
      f"the windows are {_padding_share(ours):.0%} padding; bucketed batches skip "
      f"{_cut_share(ours, buckets + (max_len,)):.0%} of all positions"
      if buckets
      else f"both sides compute every position; the windows are {_padding_share(ours):.0%} padding"
    ),
    f"orthoalign compile: train epoch {ours.compile_s['train']:.2f}s, evaluation "
    f"{ours.compile_s['eval']:.2f}s (in the end-to-end figure only)",
  ]
  return bench_common.Bench(
    model="LLM4CDSR" + (" bucketed" if buckets else ""),
    max_len=m.max_len,
    steps=steps,
    batch=_BATCH,
    n_eval=n_eval,
    ours=ours.side,
    theirs=theirs,
    build_s=build_s,
    notes=notes,
    cleanup=tmp.cleanup,
  )


def _cut_share(ours: bench_common.Ours, buckets: tuple[int, ...]) -> float:
  """Share of the epoch's [rows x max_len] window positions that bucketed batches do not compute."""
  from orthoalign.train import step as step_lib

  data = {k: np.asarray(v) for k, v in ours.run.train_data.items()}
  rows, full = data["seq"].shape
  row_bucket = step_lib.length_bucket(data[step_lib.LENGTH_KEY], buckets)
  idx, bucket = step_lib.bucketed_batches(np.arange(rows), row_bucket, _BATCH, np.int32(0))
  computed = sum(buckets[b] * idx.shape[1] for b in np.asarray(bucket))
  return 1.0 - computed / (idx.size * full)


def _padding_share(ours: bench_common.Ours) -> float:
  """Share of the training windows' mixed-stream positions that are padding."""
  seq = np.asarray(ours.run.train_data["seq"])
  return float((seq == 0).mean())
