r"""Checks that a change keeps every number: a reference commit and the working tree, side by side.

  python tools/same_numbers.py --ref=f34b26e [--out=/tmp/same_numbers] [--only=tiny]

Checks the reference commit out in a git worktree, then trains the same configs with it and with
the working tree, one after the other on this machine (each tree's own package: the command runs
in the tree's root), and compares the rows of their results.jsonl: every metric, alignment
statistic, parameter count, best epoch and training loss must be equal (exactly, or within
--rtol). Times, versions and the config itself are not compared; keys that only one side writes
(a metric added since the reference) are listed apart and do not count as differences. Configs:
the tiny config of every model and the main job (configs/llm4cdsr.py) at 3 epochs.

Prints one line per config ("all equal (...)" or the differing keys with both values) and exits
1 if any number differs or a run fails. The runs stay in --out (default: a temp folder) for
inspection; a second call with the same --out reuses the reference's finished runs and trains the
working tree's again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (config file, extra flags)
RUNS = {
  "tiny": ("configs/tiny.py", []),
  "tiny_abxi": ("configs/tiny_abxi.py", []),
  "tiny_c2dsr": ("configs/tiny_c2dsr.py", []),
  "tiny_cdsrnp": ("configs/tiny_cdsrnp.py", []),
  "tiny_merit": ("configs/tiny_merit.py", []),
  "tiny_sasrec": ("configs/tiny_sasrec.py", []),
  "main_3ep": ("configs/llm4cdsr.py", ["--config.train.max_epochs=3"]),
}
# Row keys that measure the machine or name the run, not what was computed.
_NOT_COMPARED = (
  "run",
  "config",
  "orthoalign_version",
  "compile_s",
  "wall_time_s",
  "train_time_s",
  "eval_time_s",
  "checkpoint_time_s",
  "steps_per_s",
)


def _git(*args: str) -> str:
  return subprocess.run(
    ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
  ).stdout.strip()


def worktree(ref: str, folder: str) -> str:
  """A checkout of `ref` in `folder` (made once; an existing one at the same commit is reused)."""
  try:
    commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
  except subprocess.CalledProcessError:
    raise SystemExit(f"error: --ref={ref} is not a commit of {ROOT}") from None
  if os.path.isdir(folder):
    here = subprocess.run(
      ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True
    ).stdout.strip()
    if here == commit:
      return commit
    raise SystemExit(f"error: {folder} holds another checkout ({here[:10]}); use another --out")
  _git("worktree", "add", "--detach", folder, commit)
  return commit


def train(tree: str, name: str, workdir: str, reuse: bool) -> list[dict]:
  """Runs one config with the package of `tree`; returns its results rows (with `reuse`, those
  of an earlier call when it finished).
  """
  path = os.path.join(workdir, "results.jsonl")
  if not reuse and os.path.isdir(workdir):
    shutil.rmtree(workdir)
  if not os.path.isfile(path):
    config, extra = RUNS[name]
    log = workdir + ".log"
    os.makedirs(os.path.dirname(workdir), exist_ok=True)
    t0 = time.time()
    with open(log, "w") as f:
      proc = subprocess.run(
        [
          sys.executable,
          "-m",
          "orthoalign.main",
          f"--config={config}",
          f"--workdir={workdir}",
          *extra,
        ],
        cwd=tree,
        stdout=f,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": tree},
      )
    if proc.returncode:
      raise RuntimeError(f"{name} failed in {tree} (exit {proc.returncode}); log: {log}")
    print(f"  trained {name} with {tree} in {time.time() - t0:.0f}s", flush=True)
  with open(path) as f:
    return [json.loads(line) for line in f]


def _equal(a, b, rtol: float) -> bool:
  if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
    if a == b:
      return True
    return rtol > 0 and math.isclose(a, b, rel_tol=rtol, abs_tol=0.0)
  return a == b  # None (NaN in JSON), lists, text


def compare(
  ref_rows: list[dict], new_rows: list[dict], rtol: float
) -> tuple[list[str], list[str], int]:
  """(differences, keys only one side has, numbers compared) over replica-matched rows."""
  if len(ref_rows) != len(new_rows):
    return [f"replicas: {len(ref_rows)} -> {len(new_rows)}"], [], 0
  diffs, apart, count = [], set(), 0
  for r, (a, b) in enumerate(zip(ref_rows, new_rows)):
    for key in sorted(set(a) | set(b)):
      if key in _NOT_COMPARED or key.startswith("compile/"):  # per-program compile seconds
        continue
      if (key in a) != (key in b):
        apart.add(("only in the reference: " if key in a else "only in the working tree: ") + key)
        continue
      count += 1
      if not _equal(a[key], b[key], rtol):
        diffs.append(f"replica {r} {key}: {a[key]!r} -> {b[key]!r}")
  return diffs, sorted(apart), count


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--ref", required=True, help="the reference commit (e.g. f34b26e)")
  parser.add_argument("--out", default=None, help="folder for the worktree and the runs")
  parser.add_argument("--only", default="", help="only the configs whose name contains this")
  parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (0 = exact)")
  args = parser.parse_args()
  out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="same_numbers-"))
  names = [n for n in RUNS if args.only in n]
  if not names:
    parser.error(f"--only={args.only!r} matches none of {list(RUNS)}")
  commit = worktree(args.ref, os.path.join(out, "ref_tree"))
  print(
    f"reference {commit[:10]} vs the working tree of {ROOT} ({_git('rev-parse', 'HEAD')[:10]}"
    f"{' + changes' if _git('status', '--porcelain', '--untracked-files=no') else ''}); runs "
    f"in {out}",
    flush=True,
  )
  failed = False
  for name in names:
    if not os.path.isfile(os.path.join(out, "ref_tree", RUNS[name][0])):
      print(f"{name}: skipped, {RUNS[name][0]} is not in the reference commit", flush=True)
      continue
    try:
      ref_rows = train(os.path.join(out, "ref_tree"), name, os.path.join(out, "ref", name), True)
      new_rows = train(ROOT, name, os.path.join(out, "new", name), False)
    except RuntimeError as e:
      print(f"{name}: {e}", flush=True)
      failed = True
      continue
    diffs, apart, count = compare(ref_rows, new_rows, args.rtol)
    if diffs:
      failed = True
      print(f"{name}: {len(diffs)} of {count} numbers differ:", flush=True)
      for line in diffs[:40]:
        print(f"  {line}")
    else:
      print(
        f"{name}: all equal ({count} numbers over {len(new_rows)} replica(s)"
        f"{', exactly' if args.rtol == 0 else f', rtol {args.rtol:g}'})",
        flush=True,
      )
    for line in apart[:20]:
      print(f"  {line}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
