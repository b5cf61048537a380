#!/usr/bin/env bash
# ABXI on Food-Kitchen (../shared/data/abxi-afk): the ABXI Table 1 grid
# (configs/grids/table1_abxi_afk.py: plain ABXI, + GCA_early, + GCA_stack, each with the 5 seeds of
# ABXI's README as replicas of one compiled program), then its report (Table 1 with paired tests,
# alignment statistics, figures) in docs/results/table1_abxi_afk/.
#
# Full run (meant for a GPU):      bash launch/repro_abxi_afk.sh runs/table1_abxi_afk
# Reduced CPU check (label it so): bash launch/repro_abxi_afk.sh runs/abxi_afk_cpu \
#     --set train.max_epochs=3 --set train.warmup_epochs=0 --set 'sweep.seeds=(3407,0)'
# Extra arguments go to `python -m orthoalign.grid` (--set KEY=VALUE for every run, --parallel=N,
# --executor=slurm ...). Re-running the same command skips finished runs and resumes the others.
# PYTHON names the interpreter (default: python on PATH); REPORT the report's folder.
set -uo pipefail
py=${PYTHON:-python}
runs=${1:-runs/table1_abxi_afk}
shift || true
report=${REPORT:-docs/results/table1_abxi_afk}

start=$(date +%s)
"$py" -m orthoalign.grid --grid=configs/grids/table1_abxi_afk.py --root="$runs" "$@"
status=$?
elapsed=$(( $(date +%s) - start ))

device=$("$py" -c "import jax; d = jax.devices()[0]; print(f'{jax.device_count()} x {d.device_kind} ({d.platform})')")
note="Command: \`bash launch/repro_abxi_afk.sh $runs $*\`. Hardware: $device, jax \
$("$py" -c 'import jax; print(jax.__version__)'). Date: $(date -u +%Y-%m-%d). Wall time of the grid: ${elapsed} s."
"$py" -m orthoalign.analysis.report --grid="$runs" --out="$report" --note="$note" \
    --title="ABXI on Food-Kitchen: baseline vs GCA_early vs GCA_stack" || status=$?
exit $status
