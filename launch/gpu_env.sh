# Sourced by the GPU-machine scripts (launch/gpu_*.sh): $OUT, caches, the copied wheels
# (.whl/, from launch/gpu_prepare.sh) on PYTHONPATH, and $data, the copied abxi-afk folder.
OUT=${OUT:-/tmp/orthoalign-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ORTHOALIGN_CACHE=/tmp/orthoalign-cache
# One persistent compilation cache for every command of the call (equal programs compile once).
export JAX_COMPILATION_CACHE_DIR=/tmp/orthoalign-jax-cache
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
data=${DATA:-.data/abxi-afk}
