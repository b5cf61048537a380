#!/usr/bin/env bash
# ABXI on Food-Kitchen (../shared/data/abxi-afk): plain ABXI, ABXI + GCA_early (GCA[0]) and
# ABXI + GCA_stack (GCA[0,1,2]), each with the 5 seeds of ABXI's README (3407, 0, 1, 2, 3) trained
# as replicas of one compiled program, then docs/results/abxi_afk.md (mean ± std per domain).
#
# Full run (meant for a GPU):      bash launch/repro_abxi_afk.sh runs/abxi_afk
# Reduced CPU check (label it so): bash launch/repro_abxi_afk.sh runs/abxi_afk_cpu \
#     --config.train.max_epochs=3 --config.sweep.seeds='(3407,0)'
# Extra arguments are --config overrides applied to all three runs (they win over the defaults).
# Re-running the same command resumes each run from its checkpoints.
# PYTHON names the interpreter (default: python on PATH); REPORT the report's path.
set -euo pipefail
py=${PYTHON:-python}
runs=${1:-runs/abxi_afk}
shift || true
report=${REPORT:-docs/results/abxi_afk.md}

extra=("$@")
# ABXI's five seeds unless the caller chose others (a --config flag may be given only once).
case " ${extra[*]:-} " in
  *"--config.sweep.seeds"*) ;;
  *) extra+=("--config.sweep.seeds=(3407,0,1,2,3)") ;;
esac

train() {  # name, then its own overrides
  local name=$1; shift
  "$py" -m orthoalign.main --config=configs/abxi.py --workdir="$runs/$name" "$@" "${extra[@]}"
}
start=$(date +%s)
train abxi --config.gca.positions='()'
train abxi_gca_early --config.gca.positions='(0,)'
train abxi_gca_stack --config.gca.positions='(0,1,2)'
elapsed=$(( $(date +%s) - start ))

device=$("$py" -c "import jax; d = jax.devices()[0]; print(f'{jax.device_count()} x {d.device_kind} ({d.platform})')")
note="Command: \`bash launch/repro_abxi_afk.sh $runs ${extra[*]:-}\`. Hardware: $device, jax \
$("$py" -c 'import jax; print(jax.__version__)'). Date: $(date -u +%Y-%m-%d). Wall time of the three runs: ${elapsed} s."
"$py" -m orthoalign.analysis.report "$runs/abxi" "$runs/abxi_gca_early" "$runs/abxi_gca_stack" \
    --title="ABXI on Food-Kitchen: baseline vs GCA_early vs GCA_stack" --note="$note" --out="$report"
