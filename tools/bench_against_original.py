r"""Speed of orthoalign's LLM4CDSR and ABXI against the authors' PyTorch code, same data and sizes.

  python tools/bench_against_original.py --llm4cdsr=/tmp/llm4cdsr_orig --abxi=/tmp/abxi_orig \
      --max-lens=40,200 --steps=20 --repeats=3 --e2e-epochs=3

Either model may be left out (at least one is needed); `--original` is an alias of `--llm4cdsr`
and `--max-len` of `--max-lens`. Needs torch (CPU is enough) and checkouts of
liuqidong07/LLM4CDSR-pytorch and/or DiMarzioBian/ABXI; the authors' code is imported from there
at run time, never copied. This file holds the CLI, the alternating timing loop and the tables;
each model's two sides are built by tools/bench_original_llm4cdsr.py and
tools/bench_original_abxi.py (data, settings and work of each side in their docstrings), from
the parts in tools/bench_common.py.

  * LLM4CDSR, at each max_len of `--max-lens`: the embedded synthetic data of configs/llm4cdsr.py
    (written in the original's handled format), plain model, Adam lr 1e-3, batch 128, 1 training
    negative, 1 + 100 evaluation candidates.
  * ABXI, at its len_max 50: ABXI's own Food-Kitchen files (`--abxi-data`, default
    ../shared/data/abxi-afk), configs/abxi.py = the original's main.py + demo.sh afk settings
    (AdamW lr 1e-4 wd 3.0, batch 256, 128 + 128 training negatives per position, 1 + 999
    evaluation candidates, evaluation batch 1024).

Timed per model and max_len, in `--repeats` alternating rounds (original train, orthoalign train,
[original train with anomaly detection], original validation, orthoalign validation):
  * one training epoch over the same `--steps` full batches of training users (subsampled with a
    fixed seed; capped by the data). Original: its own DataLoader (negatives drawn there, in numpy)
    + forward/backward/optimizer step, as its trainer's epoch loop (also reported: the part from
    batch in hand to optimizer step). orthoalign: build.setup's epoch program, compiled beforehand
    (the negatives are drawn on device inside it).
  * one validation pass over the validation cases of the same users. Original: its evaluation
    loader + its trainer's ranking. orthoalign: run.eval_fn, which scores the same number of
    sampled candidates (frozen sets instead of the original's fresh draws), ALSO ranks the full
    catalogue (LLM4CDSR 800 items here; ABXI 28,095, history masked) and sums all metrics; it pads
    the cases to a multiple of its evaluation batch.
  * with `--e2e-epochs=E` (0 = skip), before the rounds: E epochs of (train epoch + validation
    pass) on each side from a fresh build, construction included: orthoalign's fresh build.setup
    (data, model, initialisation) and the compilation of its programs with the persistent
    compilation cache off (ORTHOALIGN_COMPILE_CACHE=off, jax_enable_compilation_cache False); the
    original's data objects, model and optimizer. No early stopping, no warm-up schedule (both
    originals skip validation during warm-up; here every epoch validates on both sides).
Printed: per model and max_len, seconds min / median / max, ms per step and per sequence, and the
ratios of medians original / orthoalign; at the end one table of all ratios.

Torch runs with torch.set_num_threads(N), N = the cores the process may use (os.cpu_count() unless
narrowed by `taskset`; `--threads` overrides), printed. The originals' debug switches: LLM4CDSR's
main.py switches anomaly detection on at import (never imported here: off, `--also-anomaly` times
it on too); ABXI's main.py has none (no anomaly detection, deterministic or cudnn flags) and sets
torch.set_float32_matmul_precision('high'), done here for the ABXI part. On a machine shared with
other work, N threads on N cores can be far slower for torch than one thread on a pinned core:
  taskset -c 1 python tools/bench_against_original.py --llm4cdsr=... --steps=20 --repeats=3
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import os
import statistics
import sys
import time

import jax

_RATIOS = ("train epoch", "step only", "validation", "end-to-end")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--llm4cdsr",
    "--original",
    dest="llm4cdsr",
    default="",
    help="checkout of liuqidong07/LLM4CDSR-pytorch (omit to skip LLM4CDSR)",
  )
  parser.add_argument("--abxi", default="", help="checkout of DiMarzioBian/ABXI (omit to skip)")
  parser.add_argument(
    "--abxi-data",
    default="../shared/data/abxi-afk",
    help="ABXI's afk files (afk_50_preprocessed.txt, map_item_50.txt)",
  )
  parser.add_argument(
    "--max-lens",
    "--max-len",
    dest="max_lens",
    default="40",
    help="LLM4CDSR's model.max_len on both sides, comma-separated",
  )
  parser.add_argument(
    "--length-buckets",
    default="",
    help="LLM4CDSR: orthoalign trains in these length buckets with padding masked "
    "(e.g. 25,50,100; those below each max_len are used); default: none",
  )
  parser.add_argument("--steps", type=int, default=20, help="training steps (full batches)")
  parser.add_argument("--repeats", type=int, default=3, help="alternating rounds")
  parser.add_argument(
    "--e2e-epochs",
    type=int,
    default=0,
    help="epochs of the end-to-end figure (fresh build, compile included); 0 = none",
  )
  parser.add_argument(
    "--threads",
    type=int,
    default=0,
    help="torch.set_num_threads; 0 = the cores this process may use",
  )
  parser.add_argument(
    "--abxi-device",
    default="cpu",
    help="torch device of the original ABXI: cpu or cuda (on a GPU machine)",
  )
  parser.add_argument(
    "--also-anomaly",
    action="store_true",
    help="LLM4CDSR: also time the original's epoch with anomaly detection on",
  )
  args = parser.parse_args()
  if not (args.llm4cdsr or args.abxi):
    parser.error("give --llm4cdsr=<checkout> and/or --abxi=<checkout>")
  for flag, path, needed in (
    ("--llm4cdsr", args.llm4cdsr, "models/LLMCDSR.py"),
    ("--abxi", args.abxi, "models/ABXI.py"),
  ):
    if path and not os.path.isfile(os.path.join(path, needed)):
      parser.error(f"{flag}={path}: expected a checkout holding {needed}")
  max_lens = [int(x) for x in args.max_lens.split(",") if x.strip()]
  try:
    buckets = tuple(int(x) for x in args.length_buckets.split(",") if x.strip())
  except ValueError:
    parser.error(
      f"--length-buckets={args.length_buckets}: expected comma-separated ints, e.g. 25,50,100"
    )

  # orthoalign's programs compile in this process, never loaded from a persistent cache.
  os.environ["ORTHOALIGN_COMPILE_CACHE"] = "off"
  jax.config.update("jax_enable_compilation_cache", False)
  import torch  # optional dependency

  # The cores this process may run on (`taskset` narrows them); os.cpu_count() ignores that.
  cores = len(os.sched_getaffinity(0))
  threads = args.threads or cores
  torch.set_num_threads(threads)
  torch.autograd.set_detect_anomaly(False)
  # The project root, for `configs` when run as `python tools/bench_against_original.py`.
  sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import bench_original_abxi  # tools/ is on sys.path
  import bench_original_llm4cdsr

  print(
    f"jax {jax.__version__} ({jax.default_backend()}, {jax.device_count()} device; persistent "
    f"compilation cache {'on' if jax.config.jax_enable_compilation_cache else 'off'}) | torch "
    f"{torch.__version__} | torch.set_num_threads({threads}) -> get_num_threads() "
    f"{torch.get_num_threads()}, interop {torch.get_num_interop_threads()} | os.cpu_count() "
    f"{os.cpu_count()}, cores usable by this process {cores} (XLA: its own pool on those) | "
    f"anomaly detection {torch.is_anomaly_enabled()}",
    flush=True,
  )

  jobs: list[Callable] = []
  if args.llm4cdsr:
    jobs += [
      lambda n=n: bench_original_llm4cdsr.build(
        args.llm4cdsr, n, args.steps, args.also_anomaly, buckets
      )
      for n in max_lens
    ]
  if args.abxi:
    jobs.append(
      lambda: bench_original_abxi.build(args.abxi, args.abxi_data, args.steps, args.abxi_device)
    )
  summary = []
  for build in jobs:
    bench = build()
    try:
      summary.append(run_bench(bench, args.repeats, args.e2e_epochs))
    finally:
      bench.cleanup()

  print(
    f"\nsummary: ratio of medians, original / orthoalign (> 1: orthoalign faster); "
    f"{args.repeats} rounds"
    + (f", end-to-end = {args.e2e_epochs} epochs, compile included" if args.e2e_epochs else "")
  )
  print(f"{'model':<10} {'max_len':>7} {'steps':>6} " + " ".join(f"{k:>12}" for k in _RATIOS))
  for model, max_len, steps, ratios in summary:
    cells = " ".join(f"{ratios[k]:11.2f}x" if k in ratios else f"{'-':>12}" for k in _RATIOS)
    print(f"{model:<10} {max_len:>7} {steps:>6} {cells}")
  return 0


def run_bench(bench, repeats: int, e2e_epochs: int) -> tuple[str, int, int, dict[str, float]]:
  """End-to-end figure, alternating rounds, table; returns (model, max_len, steps, ratios)."""
  ours, theirs = bench.ours, bench.theirs
  print(f"\n== {bench.model}, max_len {bench.max_len} ==")
  for line in bench.notes:
    print(line)
  e2e: dict[str, float] = {}
  if e2e_epochs:
    # Both sides were just built (bench.build_s); their first epochs follow, nothing in between.
    for key, side in (("theirs", theirs), ("ours", ours)):
      t0 = time.perf_counter()
      for _ in range(e2e_epochs):
        side.train()
        side.evaluate()
      e2e[key] = bench.build_s[key] + time.perf_counter() - t0
    theirs.step_only.clear()  # only the rounds' epochs below
    print(
      f"end-to-end, {e2e_epochs} epochs of (train epoch + validation pass), compile included: "
      f"original {e2e['theirs']:.2f}s (build {bench.build_s['theirs']:.2f}s), orthoalign "
      f"{e2e['ours']:.2f}s (setup + compile {bench.build_s['ours']:.2f}s)",
      flush=True,
    )

  rounds: list[tuple[str, Callable[[], float]]] = [
    ("train epoch, original (loader + step)", theirs.train),
    ("train epoch, orthoalign", ours.train),
  ]
  rounds += [(f"train epoch, {name}", fn) for name, fn in theirs.extra.items()]
  rounds += [
    ("validation pass, original", theirs.evaluate),
    ("validation pass, orthoalign", ours.evaluate),
  ]
  times: dict[str, list[float]] = {name: [] for name, _ in rounds}
  for r in range(repeats):
    for name, fn in rounds:
      times[name].append(fn())
    print(
      f"round {r + 1}/{repeats}: " + "  ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()),
      flush=True,
    )
  times["train epoch, original (step only)"] = list(theirs.step_only)

  seqs = bench.steps * bench.batch
  order = (
    [
      "train epoch, original (loader + step)",
      "train epoch, original (step only)",
      "train epoch, orthoalign",
    ]
    + [f"train epoch, {n}" for n in theirs.extra]
    + ["validation pass, original", "validation pass, orthoalign"]
  )
  print(
    f"\n{bench.model} max_len={bench.max_len}, {bench.steps} steps x {bench.batch}, "
    f"{repeats} rounds; seconds min / median / max; ms per step and per sequence at the median"
  )
  print(f"{'figure':<44} {'min':>8} {'median':>8} {'max':>8} {'ms/step':>9} {'ms/seq':>8}")
  for name in order:
    v = times[name]
    n_steps, n_seq = (bench.steps, seqs) if name.startswith("train") else (None, bench.n_eval)
    med = statistics.median(v)
    per_step = f"{1e3 * med / n_steps:9.2f}" if n_steps else f"{'-':>9}"
    print(f"{name:<44} {min(v):8.3f} {med:8.3f} {max(v):8.3f} {per_step} {1e3 * med / n_seq:8.3f}")
  for key, who in (("theirs", "original"), ("ours", "orthoalign")):
    if key in e2e:
      name = f"{e2e_epochs} epochs, compile included, {who}"
      print(f"{name:<44} {e2e[key]:8.3f} {e2e[key]:8.3f} {e2e[key]:8.3f} {'-':>9} {'-':>8}")

  ratio = lambda a, b: statistics.median(times[a]) / statistics.median(times[b])
  ratios = {
    "train epoch": ratio("train epoch, original (loader + step)", "train epoch, orthoalign"),
    "step only": ratio("train epoch, original (step only)", "train epoch, orthoalign"),
    "validation": ratio("validation pass, original", "validation pass, orthoalign"),
  }
  if e2e:
    ratios["end-to-end"] = e2e["theirs"] / e2e["ours"]
  print(
    "ratio of medians, original / orthoalign: "
    + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
    + (f" ({e2e_epochs} epochs, compile included)" if e2e else "")
  )
  return bench.model, bench.max_len, bench.steps, ratios


if __name__ == "__main__":
  sys.exit(main())
