"""ABXI for tools/bench_against_original.py: orthoalign's model and the authors' PyTorch code.

The original is DiMarzioBian/ABXI (`models/ABXI.py`, `models/data/dataloader.py`, `trainer.py`),
imported from its checkout at run time, never copied. Data: ABXI's own Food-Kitchen files
(../shared/data/abxi-afk, 7,144 users, 11,837 + 16,258 items, len_max 50 -> windows of 47). Both
sides: configs/abxi.py = the original's main.py defaults with demo.sh's afk settings (d_embed 256,
2 heads, dLoRA rank 16, iLoRA rank 64, dropout 0.5, temperature 0.75, AdamW lr 1e-4 weight decay
3.0, batch 256, 128 A + 128 B training negatives per position, 1 + 999 evaluation candidates,
evaluation batch 1024 = its bs * 4), plain ABXI (`gca.positions=()`).

The original's data: its checkout ships no data files, and its `data/prepare_amazon.py` needs the
raw Amazon rating CSVs. The shared afk_50_preprocessed.txt / map_item_50.txt ARE that script's
output, so a temporary `data/afk/` gets links to them and the original's own first-run path
(main.py `--raw`: `models/data/dataloader.get_dataset` with args.raw) serialises them into
`afk_50_seq.pkl`; its Trainer then loads that pickle as in every later run of main.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
import types

import bench_common
import jax
import numpy as np

_FILES = ("afk_50_preprocessed.txt", "map_item_50.txt")


def build(checkout: str, data: str, steps: int, device: str = "cpu") -> bench_common.Bench:
  """Both sides over `steps` batches of 256 training users of abxi-afk; the original on torch
  device `device` ("cpu" or "cuda", as its --cuda flag; its trainer moves each batch there and
  syncs at every step's `.item()` and every evaluation batch's `.tolist()`).
  """
  import torch  # optional dependency
  from torch.utils.data import DataLoader
  from torch.utils.data import Subset

  trainer_lib, dataloader, evaluation = bench_common.import_authors(
    checkout, "trainer", "models.data.dataloader", "models.data.evaluation"
  )
  from configs import abxi as abxi_config

  cfg = abxi_config.get_config()
  cfg.data.path = data
  cfg.gca.positions = ()  # plain ABXI
  m, batch = cfg.model, cfg.train.batch_size
  build_s: dict[str, float] = {}

  with bench_common.timed(build_s, "ours"):
    ours = bench_common.orthoalign_side(cfg, steps)
  run, steps = ours.run, ours.steps
  ds = run.ds
  valid = run.task.eval_data["valid"]
  ev_users = np.asarray(valid["user"])[ours.ev_rows]
  n_eval = len(ev_users)

  # -- the original's args: main.py's parser defaults, demo.sh's afk line, and main.py's derived
  # values (n_warmup clamp, len_trim, es_p, bse, paths). No DataLoader workers (demo.sh: 28).
  tmp = tempfile.TemporaryDirectory()
  path_data = os.path.join(tmp.name, "data", "afk")
  os.makedirs(path_data)
  for name in _FILES:
    os.symlink(os.path.abspath(os.path.join(data, name)), os.path.join(path_data, name))
  args = argparse.Namespace(
    name="ABXI (WWW'25)",
    ver="v1.0",
    data="afk",
    raw=True,
    len_max=m.max_len + 3,  # upstream keeps len_max items; its windows are 3 shorter
    n_neg=m.n_neg,
    n_mtc=cfg.eval.num_negatives,
    d_embed=m.width,
    n_attn=1,
    n_head=m.heads,
    dropout=m.dropout,
    temp=m.temp,
    rd=m.rd,
    ri=m.ri,
    cuda=device,
    seed=3407,
    bs=batch,
    n_worker=0,
    n_epoch=500,
    n_warmup=10,
    lr=cfg.train.learning_rate,
    l2=cfg.train.weight_decay,
    lr_g=cfg.train.plateau_factor,
    lr_p=cfg.train.plateau_patience,
  )
  args.n_warmup = min(max(0, args.n_epoch - 1), max(args.n_warmup, 1))
  args.device = torch.device(device)
  args.len_trim = args.len_max - 3
  args.es_p = (args.lr_p + 1) * 2 - 1
  args.bse = args.bs * 4
  args.path_root, args.path_data = tmp.name, path_data
  args.path_log = os.path.join(tmp.name, "log")
  args.f_raw = os.path.join(path_data, f"afk_{args.len_max}_preprocessed.txt")
  args.f_data = os.path.join(path_data, f"afk_{args.len_max}_seq.pkl")
  quiet = io.StringIO()  # its progress prints and bars
  with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
    dataloader.get_dataset(args)  # the --raw run: writes args.f_data
  args.raw = False
  assert cfg.eval.batch_size == args.bse

  # main.py's global switch (at import); restored by cleanup. It has no anomaly detection and no
  # deterministic / cudnn flags; seeding only (random, numpy, torch, PYTHONHASHSEED).
  precision = torch.get_float32_matmul_precision()
  torch.set_float32_matmul_precision("high")
  torch.manual_seed(args.seed)

  # -- the original: its Trainer (loads the pickle, builds ABXI, AdamW and the schedulers) --------
  t0 = time.perf_counter()
  with contextlib.redirect_stdout(quiet):
    # Noter only logs (a file per run); the Trainer's constructor calls its log_num_param.
    trainer = trainer_lib.Trainer(args, types.SimpleNamespace(log_num_param=lambda model: None))
  # The benchmark's users only: get_dataloader's DataLoader lines on Subsets of its datasets.
  train_loader = DataLoader(
    Subset(trainer.train_loader.dataset, ours.users),
    batch_size=args.bs,
    shuffle=True,
    num_workers=args.n_worker,
    pin_memory=True,
  )
  val_loader = DataLoader(
    Subset(trainer.val_loader.dataset, ev_users),
    batch_size=args.bse,
    shuffle=False,
    num_workers=args.n_worker,
    pin_memory=True,
  )
  build_s["theirs"] = time.perf_counter() - t0
  assert len(train_loader) == steps
  # Same users, same windows: the original's training rows (ABXI's user index = file line =
  # orthoalign's user id) against orthoalign's.
  train_rows = [trainer.train_loader.dataset.data[u] for u in ours.users]
  for i, key in enumerate(("seq_x", "seq_a", "seq_b", "target")):
    assert np.array_equal(
      np.stack([r[i] for r in train_rows]), np.asarray(run.task.train_data[key])[ours.rows]
    ), key
  step_only: list[float] = []

  def train_step(b) -> None:  # Trainer.run_epoch's loop body
    trainer.optimizer.zero_grad()
    trainer.train_batch(b)  # forward, loss, backward, step, .item()

  def theirs_train() -> float:
    # Trainer.run_epoch without tqdm and the loss sums it logs (loop restated: run_epoch also
    # validates, after the warm-up, and reads the full training loader).
    trainer.model.train()
    total, inside = bench_common.loader_pass(train_loader, train_step)
    step_only.append(inside)
    return total

  ranks: tuple[list, list] = ([], [])

  def eval_step(b) -> None:
    ranks_a, ranks_b = trainer.evaluate_batch(b)
    ranks[0].extend(ranks_a)
    ranks[1].extend(ranks_b)

  def theirs_eval() -> float:
    # Trainer.run_epoch's validation part (restated for the benchmark's users' loader).
    trainer.model.eval()
    ranks[0].clear()
    ranks[1].clear()
    t0 = time.perf_counter()
    with torch.no_grad():
      bench_common.loader_pass(val_loader, eval_step)
    evaluation.cal_metrics(ranks[0]), evaluation.cal_metrics(ranks[1])
    return time.perf_counter() - t0

  theirs = bench_common.Side(
    train=theirs_train,
    evaluate=theirs_eval,
    step_only=step_only,
    params=sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
  )
  notes = [
    f"data: {ds.name} {ds.num_users} users, {ds.num_items_a}+{ds.num_items_b} items | max_len "
    f"{m.max_len} (the window; ABXI's len_max {args.len_max}; --max-lens is LLM4CDSR's) | "
    f"{steps} steps x {batch} = {steps * batch} training users | {n_eval} validation users | "
    f"trainable parameters: original {theirs.params:,}, orthoalign {ours.side.params:,}",
    f"original: torch.set_float32_matmul_precision('high') as its main.py -> "
    f"{torch.get_float32_matmul_precision()}; no anomaly detection / deterministic / cudnn "
    f"switches in it; torch device {device}; AdamW lr {args.lr:g} wd {args.l2:g}; DataLoader "
    f"workers {args.n_worker} "
    "(demo.sh: 28), pin_memory as its code",
    "training: both 128 A + 128 B negatives at every position (original: numpy draws in its "
    "DataLoader; orthoalign: on device, in the compiled step)",
    f"validation: both 1 + 999 candidates per case (original: 999 fresh numpy draws per case "
    f"per pass, in its loader; orthoalign: frozen sets) in batches of {args.bse}; orthoalign "
    f"also ranks the full catalogue ({ds.num_items_a + ds.num_items_b:,} items, history masked) "
    f"and pads the {n_eval} cases to {ours.eval_padded}",
    f"orthoalign compile: train epoch {ours.compile_s['train']:.2f}s, evaluation "
    f"{ours.compile_s['eval']:.2f}s (in the end-to-end figure only); model.neg_scoring="
    f"{cfg.model.neg_scoring} on {jax.default_backend()} (auto = gather on CPU)",
  ]

  def cleanup() -> None:
    torch.set_float32_matmul_precision(precision)
    tmp.cleanup()

  return bench_common.Bench(
    model="ABXI",
    max_len=m.max_len,
    steps=steps,
    batch=batch,
    n_eval=n_eval,
    ours=ours.side,
    theirs=theirs,
    build_s=build_s,
    notes=notes,
    cleanup=cleanup,
  )
