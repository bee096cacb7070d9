#!/usr/bin/env bash
# The renderer and label-efficient variants over several seeds, tiny preset, scored on held-out scenes:
#   full labels:        renderer off | renderer on (the paper's Table III, last row)
#   10 % frames labelled: supervised only | + LiDAR geometry | + photometric | + both | + teacher
# Every variant of one seed starts from the same initial weights (train.seed = that seed; the network is
# built before anything else draws random numbers) and sees the same labelled frames. Each run is scored
# with `tacocc eval` (IoU, mIoU, per-class IoU, flicker) and the table prints mean +- std over the seeds.
# The teacher of "+ teacher" is the "supervised only" run of the same seed. Usage:
#   DATA=data/synth10 RUNS=runs/label_eff STEPS=600 SEEDS="0 1 2" benchmarks/run_label_efficiency.sh
# Smoke check (minutes): STEPS=2 SEEDS="0 1" EVAL_FRAMES=4 ...
set -euo pipefail
DATA=${DATA:-data/synth10}
RUNS=${RUNS:-runs/label_eff}
STEPS=${STEPS:-600}
SEEDS=${SEEDS:-0 1 2}
EVAL_FRAMES=${EVAL_FRAMES:-}             # score only the first N held-out frames (smoke runs)
DEVICE=${DEVICE:-cpu}                    # cuda: the renderer variants take about a minute per step on 2 CPU cores
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ ! -d "$DATA" ]; then
  $PY -m tacocc_core.cli generate-scenes --out "$DATA" --scenes 10 --keyframes 16 --seed 0 --image-size 352x198
fi

warmup=$(( STEPS < 100 ? STEPS / 2 : 50 ))
common=(--config tiny --data "$DATA" --device "$DEVICE" --set "train.steps=$STEPS" --set "train.warmup_steps=$warmup"
        --set "train.val_every=$STEPS" --set "train.ckpt_every=$STEPS" --set "train.image_every=$((STEPS + 1))")
[ -n "$EVAL_FRAMES" ] && common+=(--val-max-frames "$EVAL_FRAMES")
le=train.label_efficient

run() {  # seed, name, extra arguments...
  local seed=$1 name=$2; shift 2
  local out="$RUNS/$name/seed$seed"
  if [ ! -f "$out/latest.pt" ]; then
    $PY -m tacocc_core.cli train "${common[@]}" --set "train.seed=$seed" --out "$out" "$@" > "$out.log" 2>&1 \
      || { echo "training $name seed $seed failed, see $out.log" >&2; exit 1; }
  fi
  $PY -m tacocc_core.cli eval --checkpoint "$out/latest.pt" --data "$DATA" --split val --device "$DEVICE" --out "$out" \
    ${EVAL_FRAMES:+--max-frames "$EVAL_FRAMES"} > /dev/null
  echo "done: $name seed $seed"
}

mkdir -p "$RUNS"
for seed in $SEEDS; do
  mkdir -p "$RUNS"/{full_render_off,full_render_on,l10_sup,l10_geo,l10_photo,l10_geo_photo,l10_teacher}
  run "$seed" full_render_off --set train.renderer=false
  run "$seed" full_render_on  --set train.renderer=true
  run "$seed" l10_sup        --set train.renderer=false --label-fraction 0.1
  run "$seed" l10_geo        --set train.renderer=false --label-fraction 0.1 --set "$le.geometry_weight=1.0"
  run "$seed" l10_photo      --set train.renderer=true  --label-fraction 0.1 --set "$le.photometric_weight=0.2"
  run "$seed" l10_geo_photo  --set train.renderer=true  --label-fraction 0.1 --set "$le.geometry_weight=1.0" \
                             --set "$le.photometric_weight=0.2"
  run "$seed" l10_teacher    --set train.renderer=false --label-fraction 0.1 \
                             --set "$le.teacher_checkpoint=$RUNS/l10_sup/seed$seed/latest.pt" \
                             --set "$le.teacher_weight=1.0"
done

$PY "$(dirname "$0")/summarize_seeds.py" "$RUNS" \
  full_render_off full_render_on l10_sup l10_geo l10_photo l10_geo_photo l10_teacher
