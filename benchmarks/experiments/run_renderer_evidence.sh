#!/usr/bin/env bash
# The renderer evidence of the paper's Eq. 5 on generated data: every seed of SEEDS trained from scratch
# (same initial weights per seed) in three variants, scored with `tacocc eval` on the held-out scenes:
#   off        renderer off (L_occ only)
#   converged  the preset's renderer: the inner fit to convergence (3DGS rates), L_pc summed over Gaussians,
#              rendered into every frame of the window
#   today      the earlier loop: 10 Adam steps at one rate 0.2, L_pc per Gaussian, one neighbour frame
# then mean +- std per variant (benchmarks/experiments/summarize_seeds.py) and per-seed paired differences against off.
#   DATA=data/synth10_objects RUNS=runs/renderer_evidence STEPS=1000 SEEDS="0 1 2" DEVICE=cuda JOBS=9 \
#     bash benchmarks/experiments/run_renderer_evidence.sh
# JOBS runs train at once; a run whose eval report exists is not trained again. Smoke test of the script:
#   STEPS=2 SEEDS=0 WARMUP=1 VAL_MAX_FRAMES=1 EVAL_MAX_FRAMES=2 EXTRA="--set model.renderer.inner_steps=2" (5 min, CPU)
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "usage: [SETTING=value ...] bash $0"; sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail
DATA=${DATA:-data/synth10_objects}
RUNS=${RUNS:-runs/renderer_evidence}
STEPS=${STEPS:-1000}
SEEDS=${SEEDS:-"0 1 2"}
VARIANTS=${VARIANTS:-off converged today}
CONFIG=${CONFIG:-demo}
WARMUP=${WARMUP:-30}
LR=${LR:-0.003}
DEVICE=${DEVICE:-cpu}
JOBS=${JOBS:-1}
DEADLINE_S=${DEADLINE_S:-0}            # > 0: stop every run this many seconds after the start (timeout)
VAL_MAX_FRAMES=${VAL_MAX_FRAMES:-}
EVAL_MAX_FRAMES=${EVAL_MAX_FRAMES:-}
EXTRA=${EXTRA:-}                      # more --set overrides for every run
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
START=$(date +%s)

declare -A ARGS=(
  [off]="--set train.renderer=false"
  [converged]="--set train.renderer=true"
  [today]="--set train.renderer=true --set model.renderer.inner_lr_schedule=uniform --set model.renderer.inner_lr=0.2
           --set model.renderer.inner_steps=10 --set model.renderer.inner_tolerance=0.0
           --set model.renderer.pc_reduction=mean --set model.renderer.neighbour_frames=1"
)

run() {  # seed variant
  local seed=$1 variant=$2 out="$RUNS/$2/seed$1" cap=()
  if [ "$DEADLINE_S" -gt 0 ]; then
    local rem=$(( START + DEADLINE_S - $(date +%s) ))
    if [ "$rem" -le 5 ]; then echo "no time left for $variant seed $seed"; return 0; fi
    cap=(timeout -s INT "$rem")
  fi
  # shellcheck disable=SC2086  # ARGS and EXTRA hold several words on purpose
  "${cap[@]}" $PY -m tacocc_core.cli train --config "$CONFIG" --data "$DATA" --device "$DEVICE" --out "$out" \
    ${ARGS[$variant]} $EXTRA --set "train.seed=$seed" --set "train.steps=$STEPS" \
    --set "train.warmup_steps=$WARMUP" --set "train.lr=$LR" --set "train.val_every=$STEPS" --set train.ckpt_every=50 \
    ${VAL_MAX_FRAMES:+--val-max-frames "$VAL_MAX_FRAMES"} $([ -f "$out/latest.pt" ] && echo --resume) \
    > "$out.train.log" 2>&1 || echo "train $variant seed $seed: exit $? (see $out.train.log)"
  [ -f "$out/latest.pt" ] || return 0
  $PY -m tacocc_core.cli eval --checkpoint "$out/latest.pt" --data "$DATA" --split val --device "$DEVICE" \
    --out "$out" ${EVAL_MAX_FRAMES:+--max-frames "$EVAL_MAX_FRAMES"} > /dev/null
  echo "trained and scored $variant seed $seed"
}

for seed in $SEEDS; do
  for variant in $VARIANTS; do
    if [ ! -f "$RUNS/$variant/seed$seed/eval_val.json" ]; then
      mkdir -p "$RUNS/$variant"
      while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
      run "$seed" "$variant" &
    fi
  done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n; done

# shellcheck disable=SC2086
$PY -m benchmarks.experiments.summarize_seeds "$RUNS" $VARIANTS
$PY - "$RUNS" "$SEEDS" $VARIANTS <<'PYEOF'
import json, sys
from pathlib import Path

runs, seeds, variants = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]


def score(v, s, key):
    f = runs / v / f"seed{s}" / "eval_val.json"
    return json.loads(f.read_text())["scores"]["all"][key] if f.exists() else None


print("paired differences against off, per seed (percentage points): IoU / mIoU")
for v in variants[1:]:
    cells = []
    for s in seeds:
        d = [score(v, s, k) - score(variants[0], s, k) if score(v, s, k) is not None and score(variants[0], s, k)
             is not None else None for k in ("geometry_iou", "miou")]
        cells.append(f"seed {s}: " + " / ".join("-" if x is None else f"{100 * x:+.2f}" for x in d))
    print(f"- {v} - {variants[0]}: " + "; ".join(cells))
PYEOF
