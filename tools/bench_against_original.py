r"""Speed of orthoalign's LLM4CDSR against the authors' PyTorch code, same data and sizes.

  python tools/bench_against_original.py --original=/tmp/llm4cdsr_orig --max-len=40 --steps=20 \
      --repeats=3

Needs torch (CPU is enough) and a checkout of liuqidong07/LLM4CDSR-pytorch (`models/LLMCDSR.py`,
`generators/generator.py`); the original code is imported from there at run time, never copied.

Data: the embedded synthetic data of configs/llm4cdsr.py, written in the original's handled format
(orthoalign.data.readers.handled.write_handled) into a temporary `data/<name>/handled/` together
with orthoalign's frozen text tables and user profiles as the pickles the original model reads.
Both sides train the plain model (`gca.positions=()`, `model.missing_text="zero"`, the original's
dropout 0.5, Adam lr 1e-3, batch 128, 1 training negative, 1 + 100 evaluation candidates).

Timed, in `--repeats` alternating rounds (original, orthoalign, original, ...):
  * one training epoch over the same `--steps` x 128 training users (the training users are
    subsampled so the epoch has that many full batches; capped by the data). Original: its
    generator's DataLoader over CDSRRegSeq2SeqDatasetUser + forward/backward + Adam step, as its
    SeqTrainer._train_one_epoch (also reported: the part its trainer itself times, batch in hand
    to optimizer step). orthoalign: loop.setup's compiled epoch program (compile time reported
    separately, not in the epoch figure).
  * one validation pass over the same users. Original: its CDSREvalSeq2SeqDataset loader (batch
    100, its own 100 negatives per user) + `predict` + the trainer's argsort ranking. orthoalign:
    run.eval_fn, which also ranks the full catalogue and sums all metrics.
The original runs with anomaly detection OFF (its main.py switches it on at import; this tool
never imports main.py) and torch.set_num_threads(N), N = the cores the process may use
(os.cpu_count() unless narrowed by `taskset`; `--threads` overrides). On a machine shared with
other work, N threads on N cores can be far slower for torch than one thread on a pinned core:
  taskset -c 1 python tools/bench_against_original.py --original=... --steps=20 --repeats=3
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import pickle
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

import jax
import numpy as np

_DATASET = "bench"                   # the folder name the original's data/<dataset>/handled wants
_INTER_FILE = "cloth_sport"          # its handled interaction pickle (any name; passed as args)
_LLM_FILE, _USER_FILE = "itm_emb", "usr_profile_emb"
_BATCH = 128


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--original", required=True, help="checkout of liuqidong07/LLM4CDSR-pytorch")
  parser.add_argument("--max-len", type=int, default=40, help="model.max_len on both sides")
  parser.add_argument("--steps", type=int, default=20, help="training steps (batches of 128)")
  parser.add_argument("--repeats", type=int, default=3, help="alternating rounds")
  parser.add_argument("--threads", type=int, default=0,
                      help="torch.set_num_threads; 0 = the cores this process may use")
  parser.add_argument("--also-anomaly", action="store_true",
                      help="also time the original's epoch with anomaly detection on (its main.py)")
  args = parser.parse_args()

  import torch                                              # optional dependency
  # The cores this process may run on (`taskset` narrows them); os.cpu_count() ignores that.
  cores = len(os.sched_getaffinity(0))
  threads = args.threads or cores
  torch.set_num_threads(threads)
  torch.autograd.set_detect_anomaly(False)  # the original's main.py sets True; measure without
  sys.path.insert(0, os.path.abspath(args.original))
  from generators import generator as torch_generator       # the authors' code
  from models import LLMCDSR as torch_llmcdsr

  # The project root, for `configs` when run as `python tools/bench_against_original.py`.
  sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import llm4cdsr as llm4cdsr_config
  from orthoalign.data.readers import handled
  from orthoalign.train import loop

  cfg = llm4cdsr_config.get_config()
  cfg.model.max_len = args.max_len
  cfg.model.missing_text = "zero"           # upstream has no trainable rows for text-less items
  cfg.gca.positions = ()                    # the plain model: the original has no GCA
  cfg.train.batch_size = _BATCH
  m = cfg.model

  # -- orthoalign: setup, then the same subsample of training users on both sides ---------------
  run = loop.setup(cfg)
  ds, task = run.ds, run.task
  n_train = len(task.train_data["user"])
  steps = min(args.steps, n_train // _BATCH)                # full batches only: same work per step
  if steps < args.steps:
    print(f"note: --steps={args.steps} asks for {args.steps * _BATCH} training users; the data "
          f"has {n_train}, so {steps} steps are timed")
  rows = np.sort(np.random.default_rng(0).choice(n_train, steps * _BATCH, replace=False))
  users = np.asarray(task.train_data["user"])[rows]          # 0-based orthoalign user ids
  train_data = jax.device_put({k: np.asarray(v)[rows] for k, v in task.train_data.items()},
                              run.repl)
  valid = task.eval_data["valid"]
  ev_rows = np.nonzero(np.isin(np.asarray(valid["user"]), users))[0]
  hist_width = max(a["hist"].shape[1] for a in task.eval_data.values())
  eval_data = jax.device_put(loop._eval_batches(                # pylint: disable=protected-access
      {k: np.asarray(v)[ev_rows] for k, v in valid.items()}, cfg.eval.batch_size, hist_width),
      run.repl)
  n_eval = len(ev_rows)
  run = dataclasses.replace(run, train_data=train_data, steps=steps)

  t0 = time.perf_counter()
  epoch_prog = run.epoch_fn.lower(run.state, train_data, run.frozen, run.epoch_arg(1)).compile()
  compile_train = time.perf_counter() - t0
  t0 = time.perf_counter()
  eval_prog = run.eval_fn.lower(run.state.params, run.frozen, eval_data).compile()
  compile_eval = time.perf_counter() - t0
  ours = {"state": run.state, "epoch": 0}

  def ours_train() -> float:
    ours["epoch"] += 1
    jax.block_until_ready(ours["state"])
    t0 = time.perf_counter()
    ours["state"], metrics = epoch_prog(ours["state"], train_data, run.frozen,
                                        run.epoch_arg(ours["epoch"]))
    jax.block_until_ready(metrics)
    return time.perf_counter() - t0

  def ours_eval() -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(eval_prog(ours["state"].params, run.frozen, eval_data))
    return time.perf_counter() - t0

  # -- the original: handled data + embedding pickles, its generator and model ------------------
  tables = {k: np.asarray(v, np.float32) for k, v in task.frozen["frozen"].items()}
  tmp = tempfile.TemporaryDirectory()
  handled_dir = os.path.join(tmp.name, "data", _DATASET, "handled")
  os.makedirs(handled_dir)
  handled.write_handled(ds, os.path.join(handled_dir, _INTER_FILE + ".pkl"),
                        os.path.join(handled_dir, "id_map.json"))
  for name, table in ((f"{_LLM_FILE}_all", tables["global_table"]),
                      (f"{_LLM_FILE}_A_pca128", tables["table_a"]),
                      (f"{_LLM_FILE}_B_pca128", tables["table_b"])):
    with open(os.path.join(handled_dir, name + ".pkl"), "wb") as f:
      pickle.dump(table[1:], f)                             # row i = item i + 1
  # Its user_id is the index into the training list: profiles in that (subsample) order.
  profile = np.asarray(task.train_data["user_profile"], np.float32)[rows]
  with open(os.path.join(handled_dir, _USER_FILE + ".pkl"), "wb") as f:
    pickle.dump(profile, f)
  targs = argparse.Namespace(
      dataset=_DATASET, inter_file=_INTER_FILE, aug_file="", aug_seq=False, aug_seq_len=0,
      num_workers=0, train_batch_size=_BATCH, max_len=m.max_len, train_neg=1,
      test_neg=cfg.eval.num_negatives, llm_emb_file=_LLM_FILE, user_emb_file=_USER_FILE,
      global_emb=True, local_emb=True, freeze_emb=m.freeze_emb, hidden_size=m.hidden_size,
      dropout_rate=m.dropout, trm_num=m.num_blocks, num_heads=m.num_heads, alpha=m.alpha,
      beta=m.beta, tau=m.tau, tau_reg=m.tau_reg)
  logger = logging.getLogger("llm4cdsr_original")
  cwd = os.getcwd()
  os.chdir(tmp.name)                                        # the original opens ./data/...
  try:
    torch.manual_seed(0)
    np.random.seed(0)
    gen = torch_generator.CDSRRegSeq2SeqGeneratorUser(targs, logger, "cpu")
    keep = [int(u) + 1 for u in users]                      # write_handled: user u -> id u + 1
    for split in ("train", "valid", "test", "domain_train", "domain_valid", "domain_test"):
      setattr(gen, split, {u: getattr(gen, split)[u] for u in keep})
    train_loader = gen.make_trainloader()
    valid_loader = gen.make_evalloader()
    model = torch_llmcdsr.LLM4CDSR(len(keep), gen.get_item_num_dict(), "cpu", targs)
  finally:
    os.chdir(cwd)
  optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.learning_rate, weight_decay=0.0)
  assert len(train_loader) == steps and len(gen.eval_dataset) == n_eval
  theirs_compute = []

  def theirs_train(anomaly: bool = False) -> float:
    torch.autograd.set_detect_anomaly(anomaly)
    model.train()
    inside = 0.0
    t0 = time.perf_counter()
    for batch in train_loader:                              # as SeqTrainer._train_one_epoch
      t1 = time.perf_counter()
      loss = model(**dict(zip(gen.train_dataset.var_name, batch)))
      loss.backward()
      loss.item()
      optimizer.step()
      optimizer.zero_grad()
      inside += time.perf_counter() - t1
    torch.autograd.set_detect_anomaly(False)
    if not anomaly:
      theirs_compute.append(inside)
    return time.perf_counter() - t0

  def theirs_eval() -> float:
    model.eval()
    t0 = time.perf_counter()
    ranks = []
    for batch in valid_loader:                              # as CDSRTrainer.eval
      inputs = dict(zip(gen.eval_dataset.var_name, batch))
      with torch.no_grad():
        for s in ("", "A", "B"):
          inputs[f"item_indices{s}"] = torch.cat([inputs[f"pos{s}"].unsqueeze(1),
                                                  inputs[f"neg{s}"]], dim=1)
        ranks.append(torch.argsort(torch.argsort(-model.predict(**inputs)))[:, 0])
    torch.cat(ranks)
    return time.perf_counter() - t0

  print(f"jax {jax.__version__} ({jax.default_backend()}, {jax.device_count()} device) | torch "
        f"{torch.__version__} | torch.set_num_threads({threads}) -> get_num_threads() "
        f"{torch.get_num_threads()}, interop {torch.get_num_interop_threads()} | os.cpu_count() "
        f"{os.cpu_count()}, cores usable by this process {cores} (XLA: its own pool on those) | "
        f"original anomaly detection: "
        f"{torch.is_anomaly_enabled()} (its main.py sets True)")
  n_ours = sum(x.size for x in jax.tree_util.tree_leaves(run.state.params))
  n_theirs = sum(p.numel() for p in model.parameters() if p.requires_grad)
  print(f"data: synthetic {ds.num_users} users, {ds.num_items_a}+{ds.num_items_b} items | "
        f"max_len {m.max_len} | {steps} steps x {_BATCH} = {steps * _BATCH} training users | "
        f"{n_eval} validation users | trainable parameters: original {n_theirs:,}, orthoalign "
        f"{n_ours:,}")
  print(f"orthoalign compile: train epoch {compile_train:.2f}s, evaluation {compile_eval:.2f}s "
        f"(not in the figures below)")

  times: dict[str, list[float]] = {k: [] for k in ("orig_train", "ours_train", "orig_eval",
                                                  "ours_eval")}
  rounds: list[tuple[str, Callable[[], float]]] = [
      ("orig_train", theirs_train), ("ours_train", ours_train),
      ("orig_eval", theirs_eval), ("ours_eval", ours_eval)]
  if args.also_anomaly:
    times["orig_train_anomaly"] = []
    rounds.insert(2, ("orig_train_anomaly", lambda: theirs_train(anomaly=True)))
  for r in range(args.repeats):
    for key, fn in rounds:
      times[key].append(fn())
    print(f"round {r + 1}/{args.repeats}: " + "  ".join(f"{k} {v[-1]:.3f}s"
                                                        for k, v in times.items()), flush=True)
  tmp.cleanup()

  seqs = steps * _BATCH
  table = [("train epoch, original (loader + step)", times["orig_train"], steps, seqs),
           ("train epoch, original (step only)", theirs_compute, steps, seqs),
           ("train epoch, orthoalign", times["ours_train"], steps, seqs),
           ("train epoch, original, anomaly det. on", times.get("orig_train_anomaly", []), steps,
            seqs),
           ("validation pass, original", times["orig_eval"], None, n_eval),
           ("validation pass, orthoalign", times["ours_eval"], None, n_eval)]
  print(f"\nmax_len={m.max_len}, {args.repeats} rounds; seconds min / median / max; "
        f"ms per step and per sequence at the median")
  print(f"{'figure':<40} {'min':>8} {'median':>8} {'max':>8} {'ms/step':>9} {'ms/seq':>8}")
  for name, v, n_steps, n_seq in table:
    if not v:                                               # a figure not asked for
      continue
    med = statistics.median(v)
    per_step = f"{1e3 * med / n_steps:9.2f}" if n_steps else f"{'-':>9}"
    print(f"{name:<40} {min(v):8.3f} {med:8.3f} {max(v):8.3f} {per_step} "
          f"{1e3 * med / n_seq:8.3f}")
  ratio = lambda a, b: statistics.median(a) / statistics.median(b)
  print(f"ratio of medians, original / orthoalign: train epoch "
        f"{ratio(times['orig_train'], times['ours_train']):.2f}x (step only "
        f"{ratio(theirs_compute, times['ours_train']):.2f}x), validation "
        f"{ratio(times['orig_eval'], times['ours_eval']):.2f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main())
