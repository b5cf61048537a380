#!/usr/bin/env bash
# One orthoalign run over every worker of an existing TPU VM pod slice (creates nothing).
#
#   bash launch/tpu_pod.sh <tpu-name> <zone> <workdir on shared storage> [more main flags...]
#   e.g. bash launch/tpu_pod.sh my-v4-32 us-central2-b /mnt/shared/runs/llm4cdsr_fk \
#            --config=configs/llm4cdsr_fk.py
#
# Runs the same `python -m orthoalign.main` on all workers at once (gcloud compute tpus tpu-vm ssh
# --worker=all); JAX detects the pod (--distributed=auto), joins the workers and builds one mesh
# over all their chips. Needs, on every worker: this checkout at the same commit in ~/orthoalign
# with `pip install -e .` and jax[tpu] installed, and the data at the same path (copy it to each
# worker, e.g. `gcloud compute tpus tpu-vm scp --worker=all`, or read it from a mounted bucket).
# The workdir must be a path every worker sees (an NFS mount, or a bucket mounted with gcsfuse):
# only worker 0 writes config.json, results.jsonl and TensorBoard; checkpoints are written by all.
# Every process checks that it runs the same orthoalign version and config; re-running the same
# command resumes.
set -euo pipefail
tpu=${1:?TPU name}; zone=${2:?zone}; workdir=${3:?workdir on shared storage}
shift 3
cmd="cd ~/orthoalign && python -m orthoalign.main --workdir=${workdir} --distributed=auto $*"
exec gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command="$cmd"
