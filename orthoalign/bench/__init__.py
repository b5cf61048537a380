"""Benchmarks, one program each (figures and how they were measured: docs/benchmarks.md).

  python -m orthoalign.bench.speed      training speed per replica count R (compile, epoch, memory)
  python -m orthoalign.bench.profile    where one training step's time goes (roofline, per op)
  python -m orthoalign.bench.catalogue  full-catalogue evaluation with the item tables split over
                                        devices (memory per device, time, same metrics)
  python -m orthoalign.bench.compile    trace, lower and compile time of the trainer's programs,
                                        their HLO size and what dominates it

Each takes --config (a config file, with --config.<key> overrides) and --out (JSON, written
atomically as results arrive); cli.py holds what they share, profiling.py and sharded_eval.py the
measurements the tests also use. Speed is measured here, never asserted in a test.
"""
