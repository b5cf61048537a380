"""`python -m orthoalign.bench` names the benchmarks (each is its own program)."""

import sys

if __name__ == "__main__":
  print(
    "error: choose a benchmark: python -m orthoalign.bench.speed (training speed per replica "
    "count), .profile (where a step's time goes), .catalogue (evaluation with item shards) or "
    ".compile (compile time and program size)",
    file=sys.stderr,
  )
  sys.exit(1)
