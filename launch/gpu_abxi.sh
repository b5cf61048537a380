#!/usr/bin/env bash
# One GPU job for ABXI: the benchmark (R = 1 and R = 5) and the full Food-Kitchen reproduction
# (launch/repro_abxi_afk.sh: 3 models x 5 seeds, to early stop). No time limit by default; on a
# time-limited host BENCH_BUDGET and REPRO_BUDGET (seconds) cut each part short, e.g.
# BENCH_BUDGET=150 REPRO_BUDGET=390 for a 10-minute job on one H100.
# Prepare with `bash launch/gpu_prepare.sh` on a machine with network access, then, on the GPU
# machine, from the project root with .whl/ and .data/ copied along:
#   OUT=<results folder> bash launch/gpu_abxi.sh
# What comes back under $OUT: bench_abxi.json, bench.log, repro.log, table1_abxi_afk/ (the grid's
# report, written for whatever finished inside REPRO_BUDGET seconds) and results_<run>.jsonl and
# history_<run>.jsonl of each finished run.
set -uo pipefail
source launch/gpu_env.sh          # $OUT, caches, carried wheels, $data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$OUT/bench.log"

# 1. Speed: one compiled epoch program per R, median of 3 timed epochs.
timeout "${BENCH_BUDGET:-0}" python3 -m orthoalign.bench.speed --config=configs/abxi.py \
    --config.data.path="$data" --replicas=1,5 --epochs=3 --out="$OUT/bench_abxi.json" \
    2>&1 | tee -a "$OUT/bench.log"

# 2. Fidelity and GCA: the full command (stopped after REPRO_BUDGET seconds if one is set).
timeout "${REPRO_BUDGET:-0}" env PYTHON=python3 REPORT="$OUT/table1_abxi_afk" \
    bash launch/repro_abxi_afk.sh /tmp/runs/table1_abxi_afk --set data.path="$data" \
    > "$OUT/repro.log" 2>&1
echo "repro exit status: $? (124 = stopped at REPRO_BUDGET)" | tee -a "$OUT/repro.log"
# A report of whatever finished (the one inside the script is skipped when the budget ran out).
[ -d "$OUT/table1_abxi_afk" ] || python3 -m orthoalign.analysis.report \
    --grid=/tmp/runs/table1_abxi_afk --out="$OUT/table1_abxi_afk" >> "$OUT/repro.log" 2>&1
for dir in /tmp/runs/table1_abxi_afk/*/; do
  run=$(basename "$dir")
  [ -f "$dir/results.jsonl" ] && cp "$dir/results.jsonl" "$OUT/results_$run.jsonl"
  [ -f "$dir/history.jsonl" ] && cp "$dir/history.jsonl" "$OUT/history_$run.jsonl"
done
tail -n 5 "$OUT/repro.log"
