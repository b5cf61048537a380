#!/usr/bin/env bash
# Run on a machine with network access before launch/gpu_abxi.sh or launch/gpu_speed.sh runs on a
# GPU machine without it: puts the wheels a JAX GPU image may lack (ml-collections, tensorboardX,
# submitit) into .whl/, ABXI's
# Food-Kitchen files into .data/ and, with ABXI_ORIG=<checkout of DiMarzioBian/ABXI>, its code
# (no data files) into .orig/abxi (all git-ignored; copy them along to the GPU machine).
set -euo pipefail
mkdir -p .whl .data
# The GPU host's Python (PY_VERSION, default 3.12) and an x86-64 Linux platform.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl ml-collections tensorboardX submitit
rm -rf .data/abxi-afk && cp -r "${DATA:-../shared/data/abxi-afk}" .data/ && chmod -R u+w .data
if [ -n "${ABXI_ORIG:-}" ]; then
  rm -rf .orig/abxi && mkdir -p .orig/abxi
  (cd "$ABXI_ORIG" && find . \( -name '*.py' -o -name '*.sh' \) -exec cp --parents {} "$OLDPWD/.orig/abxi" \;)
fi
ls -l .whl .data/abxi-afk
if [ -d .orig ]; then find .orig -name '*.py' | head -3; fi
