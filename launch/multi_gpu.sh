#!/usr/bin/env bash
# One run over every GPU of one host: one process, one ("data",) mesh over its GPUs.
#
#   bash launch/multi_gpu.sh --config=configs/llm4cdsr_fk.py --workdir=runs/llm4cdsr_fk
#
# Nothing multi-process is needed on one host: JAX sees all local GPUs in one process, batches are
# split over them and the state is replicated (train.num_devices=0 = all; the batch sizes must be
# divisible by the number of GPUs). CUDA_VISIBLE_DEVICES=0,1 restricts the GPUs used.
# Install once: pip install -e ".[gpu]".
set -euo pipefail
exec python -m orthoalign.main --distributed=off --config.train.num_devices=0 "$@"
