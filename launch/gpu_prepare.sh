#!/usr/bin/env bash
# Run HERE (the CPU machine) before the one device call of launch/gpu_abxi.sh: puts the wheels the
# GPU image lacks (ml-collections, tensorboardX; everything else orthoalign needs is in the image,
# see /work/.library/device/KINDS.md) into .whl/ and ABXI's Food-Kitchen files into .data/ (both
# git-ignored; the device call carries them: carry=[".whl", ".data"]).
set -euo pipefail
mkdir -p .whl .data
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl ml-collections tensorboardX
rm -rf .data/abxi-afk && cp -r "${DATA:-../shared/data/abxi-afk}" .data/ && chmod -R u+w .data
ls -l .whl .data/abxi-afk
