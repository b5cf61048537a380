#!/usr/bin/env bash
# One device call (under 10 minutes on one H100) for ABXI: the benchmark (R = 1 and R = 5) and the
# full Food-Kitchen reproduction (launch/repro_abxi_afk.sh: 3 models x 5 seeds, to early stop).
# Prepare with `bash launch/gpu_prepare.sh` on the CPU machine, then run on the device machine:
#   run(command="bash launch/gpu_abxi.sh", carry=[".whl", ".data"], timeout_s=600)
# What comes back under $OUT: bench_abxi.json, bench.log, repro.log, abxi_afk.md (the report, if
# all three runs finished inside REPRO_BUDGET seconds) and results_<run>.jsonl of each finished run.
set -uo pipefail
OUT=${OUT:-/tmp/orthoalign-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ORTHOALIGN_CACHE=/tmp/orthoalign-cache
# The bench's R = 5 programs are the reproduction's: compile them once.
export JAX_COMPILATION_CACHE_DIR=/tmp/orthoalign-jax-cache
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
data=${DATA:-.data/abxi-afk}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$OUT/bench.log"

# 1. Speed: one compiled epoch program per R, median of 3 timed epochs.
timeout "${BENCH_BUDGET:-150}" python3 -m orthoalign.bench --config=configs/abxi.py \
    --config.data.path="$data" --replicas=1,5 --epochs=3 --out="$OUT/bench_abxi.json" \
    2>&1 | tee -a "$OUT/bench.log"

# 2. Fidelity and GCA: the full command, stopped after REPRO_BUDGET seconds if need be.
timeout "${REPRO_BUDGET:-390}" env PYTHON=python3 REPORT="$OUT/abxi_afk.md" \
    bash launch/repro_abxi_afk.sh /tmp/runs/abxi_afk --config.data.path="$data" \
    > "$OUT/repro.log" 2>&1
echo "repro exit status: $? (124 = stopped at REPRO_BUDGET)" | tee -a "$OUT/repro.log"
for run in abxi abxi_gca_early abxi_gca_stack; do
  [ -f "/tmp/runs/abxi_afk/$run/results.jsonl" ] && cp "/tmp/runs/abxi_afk/$run/results.jsonl" \
      "$OUT/results_$run.jsonl"
done
tail -n 5 "$OUT/repro.log"
