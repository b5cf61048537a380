"""Stand-in for `python -m orthoalign.main` in runner tests: records the call, writes results.jsonl.

FAKE_SLEEP=<s> sleeps first; FAKE_FAIL=<text> exits 3 when the workdir contains <text>. Takes the
run's lock as orthoalign.main does (adopting the runner's) and records how in lock.txt.
"""

import json
import os
import sys
import time

from orthoalign import run_lock

workdir = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--workdir="))
os.makedirs(workdir, exist_ok=True)
lock = run_lock.acquire(workdir)  # RunInUse (a traceback here) unless handed over
with open(os.path.join(workdir, "lock.txt"), "w") as f:
  f.write(("adopted" if lock.adopted else "taken") + " " + json.dumps(run_lock.holder(workdir)))
with open(os.path.join(workdir, "calls.txt"), "a") as f:
  f.write(" ".join(sys.argv[1:]) + "\n")
print("fake training", workdir, flush=True)
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in workdir:
  print("error: fake failure", file=sys.stderr)
  sys.exit(3)
rows = [
  {"replica": r, "best_epoch": 1, "test/sampled/all/ndcg@10": 0.25 * (r + 1), "wall_time_s": 1.0}
  for r in range(2)
]
with open(os.path.join(workdir, "results.jsonl"), "w") as f:
  f.write("".join(json.dumps(r) + "\n" for r in rows))
