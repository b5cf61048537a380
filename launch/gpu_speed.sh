#!/usr/bin/env bash
# One GPU job of about 6 minutes for orthoalign's GPU figures, in priority order; every part
# writes its results under $OUT as it finishes, so a call cut short still returns the parts done.
#   1. python -m orthoalign.bench.speed for ABXI on abxi-afk, R = 1 and 5      -> bench_abxi.json
#   2. the authors' ABXI (DiMarzioBian/ABXI) against orthoalign's on the same card, full epochs
#      of 28 steps of 256, alternating, 3 rounds (tools/bench_against_original.py)  -> vs_original_abxi.log
#   3. bfloat16 compute (train.compute_dtype): the ABXI bench at R = 1, and 30 epochs of ABXI in
#      each dtype for the metric effect                           -> bench_abxi_bf16.json, short_*.log
#   4. python -m orthoalign.bench.speed for LLM4CDSR (embedded data), R = 1 and 8 -> bench_llm4cdsr.json
#   5. full-catalogue evaluation with 1M items per domain on the one card
#      (item_shards=1: a single device has nothing to split it over)  -> bench_catalogue.json
# Prepare on a machine with network access: ABXI_ORIG=/path/to/ABXI-checkout bash launch/gpu_prepare.sh
# Then, on the GPU machine, from the project root with .whl/, .data/ and .orig/ copied along:
#   OUT=<results folder> bash launch/gpu_speed.sh
set -uo pipefail
source launch/gpu_env.sh          # $OUT, caches, carried wheels, $data
# Each part's time limit (seconds) fits the whole into a 10-minute GPU job; TIME_LIMITS=off runs
# every part to its end.
limit() { if [ "${TIME_LIMITS:-on}" = off ]; then echo 0; else echo "$1"; fi; }
log="$OUT/speed.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$log"
part() { echo "== $1 ($(date +%T))" | tee -a "$log"; }

part "1. ABXI bench, R = 1, 5"
timeout "$(limit 100)" python3 -m orthoalign.bench.speed --config=configs/abxi.py --config.data.path="$data" \
    --replicas=1,5 --epochs=3 --out="$OUT/bench_abxi.json" 2>&1 | tee -a "$log"

part "2. the authors' ABXI on the same card"
if [ -d .orig/abxi ]; then
  timeout "$(limit 100)" python3 tools/bench_against_original.py --abxi=.orig/abxi --abxi-data="$data" \
      --abxi-device=cuda --steps=28 --repeats=3 2>&1 | tee "$OUT/vs_original_abxi.log" >> "$log"
else
  echo "skipped: no .orig/abxi (ABXI_ORIG=... bash launch/gpu_prepare.sh)" | tee -a "$log"
fi

part "3. bfloat16 compute"
timeout "$(limit 45)" python3 -m orthoalign.bench.speed --config=configs/abxi.py --config.data.path="$data" \
    --config.train.compute_dtype=bfloat16 --replicas=1 --epochs=3 \
    --out="$OUT/bench_abxi_bf16.json" 2>&1 | tee -a "$log"
for dtype in float32 bfloat16; do
  timeout "$(limit 35)" python3 -m orthoalign.main --config=configs/abxi.py --config.data.path="$data" \
      --config.train.compute_dtype=$dtype --config.train.max_epochs=30 \
      --workdir=/tmp/runs/short_$dtype > "$OUT/short_$dtype.log" 2>&1
  echo "short run $dtype: exit $? (124 = stopped at its budget)" | tee -a "$log"
  cp /tmp/runs/short_$dtype/results.jsonl "$OUT/short_${dtype}_results.jsonl" 2>/dev/null
done

part "4. LLM4CDSR bench, R = 1, 8"
timeout "$(limit 60)" python3 -m orthoalign.bench.speed --config=configs/llm4cdsr.py --replicas=1,8 --epochs=3 \
    --out="$OUT/bench_llm4cdsr.json" 2>&1 | tee -a "$log"

part "5. full-catalogue evaluation, 1M items per domain"
timeout "$(limit 60)" python3 -m orthoalign.bench.catalogue --config=configs/bench_catalogue.py --item_shards=1 \
    --passes=3 --out="$OUT/bench_catalogue.json" 2>&1 | tee -a "$log"
part "done"
