#!/usr/bin/env bash
# The renderer and label-efficient variants over several seeds, scored on held-out scenes:
#   full labels:          full_render_off | full_render_on (the paper's Table III, last row)
#   10 % frames labelled: l10_sup (supervised only) | l10_geo (+ LiDAR geometry) | l10_photo (+ photometric)
#                         | l10_geo_photo (+ both) | l10_teacher (+ teacher: the l10_sup run of the same seed)
# Every variant of one seed starts from the same initial weights (train.seed = that seed; the network is
# built before anything else draws random numbers) and sees the same labelled frames. Each run is scored
# with `tacocc eval` (IoU, mIoU, per-class IoU, flicker) and the table prints mean +- std over the seeds.
#   DATA=data/synth10 RUNS=runs/label_eff STEPS=600 SEEDS="0 1 2" bash benchmarks/experiments/run_label_efficiency.sh
# On a GPU machine, all runs at once with a wall-clock budget:
#   DATA=data/synth10_objects CONFIG=demo LR=0.003 DEVICE=cuda JOBS=21 STEPS=400 KEEP_EVERY=50 \
#     DEADLINE_S=300 RUNS=runs/label_eff_gpu bash benchmarks/experiments/run_label_efficiency.sh
# JOBS: trainings at once (the l10_teacher run of a seed starts when that seed's l10_sup run ends).
# DEADLINE_S: trainings still running this many seconds after the start are stopped; then every run is
# scored at the last step that all non-teacher runs reached (their step_NNNNNN.pt snapshots, KEEP_EVERY),
# and a teacher run at that step too when it got there. Without a deadline every run is scored at STEPS.
# VARIANTS: a subset of the seven names above. Smoke check (minutes): STEPS=2 SEEDS="0 1" EVAL_FRAMES=4 ...
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "usage: [SETTING=value ...] bash $0"; sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail
DATA=${DATA:-data/synth10}
RUNS=${RUNS:-runs/label_eff}
STEPS=${STEPS:-600}
SEEDS=${SEEDS:-0 1 2}
CONFIG=${CONFIG:-tiny}
LR=${LR:-}                               # peak lr (default: the training config's)
WARMUP=${WARMUP:-$(( STEPS < 100 ? STEPS / 2 : 50 ))}
EVAL_FRAMES=${EVAL_FRAMES:-}             # score only the first N held-out frames (smoke runs)
DEVICE=${DEVICE:-cpu}                    # cuda: the renderer variants take about a minute per step on 2 CPU cores
JOBS=${JOBS:-1}
KEEP_EVERY=${KEEP_EVERY:-0}
DEADLINE_S=${DEADLINE_S:-}
NUM_WORKERS=${NUM_WORKERS:-1}            # data-loader workers per training
VARIANTS=${VARIANTS:-full_render_off full_render_on l10_sup l10_geo l10_photo l10_geo_photo l10_teacher}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
START=$(date +%s)

if [ ! -d "$DATA" ]; then
  $PY -m tacocc_core.cli generate-scenes --out "$DATA" --scenes 10 --keyframes 16 --seed 0 --image-size 352x198
fi

common=(--config "$CONFIG" --data "$DATA" --device "$DEVICE" --set "train.steps=$STEPS" --set "train.warmup_steps=$WARMUP"
        --set "train.val_every=$STEPS" --set "train.ckpt_every=$STEPS" --set "train.image_every=$((STEPS + 1))"
        --set "train.keep_every=$KEEP_EVERY" --set "train.num_workers=$NUM_WORKERS" --set train.bf16=false)
[ -n "$LR" ] && common+=(--set "train.lr=$LR")
[ -n "$EVAL_FRAMES" ] && common+=(--val-max-frames "$EVAL_FRAMES")
le=train.label_efficient

variant_args() {  # variant seed -> the variant's extra training arguments, one per line
  case $1 in
    full_render_off) printf '%s\n' --set train.renderer=false ;;
    full_render_on)  printf '%s\n' --set train.renderer=true ;;
    l10_sup)         printf '%s\n' --set train.renderer=false --label-fraction 0.1 ;;
    l10_geo)         printf '%s\n' --set train.renderer=false --label-fraction 0.1 --set "$le.geometry_weight=1.0" ;;
    l10_photo)       printf '%s\n' --set train.renderer=true --label-fraction 0.1 --set "$le.photometric_weight=0.2" ;;
    l10_geo_photo)   printf '%s\n' --set train.renderer=true --label-fraction 0.1 --set "$le.geometry_weight=1.0" \
                                   --set "$le.photometric_weight=0.2" ;;
    l10_teacher)     printf '%s\n' --set train.renderer=false --label-fraction 0.1 \
                                   --set "$le.teacher_checkpoint=$RUNS/l10_sup/seed$2/latest.pt" --set "$le.teacher_weight=1.0" ;;
    *) echo "unknown variant $1" >&2; return 1 ;;
  esac
}

left_s() {  # seconds left before the deadline (a large number without one)
  if [ -z "$DEADLINE_S" ]; then echo 1000000; else echo $(( START + DEADLINE_S - $(date +%s) )); fi
}

train_one() {  # variant seed
  local out="$RUNS/$1/seed$2" left
  [ -f "$out/step_$(printf %06d "$STEPS").pt" ] || [ -f "$out/done" ] && return 0
  left=$(left_s)
  if [ "$left" -le 0 ]; then echo "not started (deadline): $1 seed $2"; return 0; fi
  mkdir -p "$RUNS/$1"
  mapfile -t extra < <(variant_args "$1" "$2")
  if timeout -s TERM "$left" $PY -m tacocc_core.cli train "${common[@]}" --set "train.seed=$2" --out "$out" \
      $([ -f "$out/latest.pt" ] && echo --resume) "${extra[@]}" > "$out.log" 2>&1; then
    touch "$out/done"
    echo "trained: $1 seed $2 ($(( $(date +%s) - START )) s)"
  else
    echo "stopped or failed: $1 seed $2 ($(( $(date +%s) - START )) s), see $out.log"
  fi
}

chain() {  # seed variant [variant...]: one after the other
  local seed=$1; shift
  for v in "$@"; do train_one "$v" "$seed"; done
}

has() { [[ " $VARIANTS " == *" $1 "* ]]; }

mkdir -p "$RUNS"
for seed in $SEEDS; do
  for v in $VARIANTS; do
    [ "$v" = l10_teacher ] && continue
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    if [ "$v" = l10_sup ] && has l10_teacher; then chain "$seed" l10_sup l10_teacher &
    else chain "$seed" "$v" &
    fi
  done
  if has l10_teacher && ! has l10_sup; then chain "$seed" l10_teacher & fi
done
wait

# The step every run is scored at: STEPS when every non-teacher run finished, else the last kept step all reached.
kept_steps() {  # run dir -> its kept steps
  for f in "$1"/step_*.pt; do [ -e "$f" ] && basename "$f" .pt | sed 's/^step_0*//'; done
}
score_step=$STEPS
for seed in $SEEDS; do
  for v in $VARIANTS; do
    [ "$v" = l10_teacher ] && continue
    out="$RUNS/$v/seed$seed"
    [ -f "$out/done" ] && continue
    last=$(kept_steps "$out" | sort -n | tail -1)
    score_step=$(( ${last:-0} < score_step ? ${last:-0} : score_step ))
  done
done
echo "scoring every run at step $score_step of $STEPS"
[ "$score_step" -gt 0 ] || { echo "no step reached by every run: nothing to score" >&2; exit 1; }

score_one() {  # variant seed
  local out="$RUNS/$1/seed$2" ckpt
  ckpt="$out/step_$(printf %06d "$score_step").pt"
  [ -f "$ckpt" ] || { [ "$score_step" = "$STEPS" ] && [ -f "$out/done" ] && ckpt="$out/latest.pt"; }
  if [ ! -f "$ckpt" ]; then echo "not scored (no checkpoint of step $score_step): $1 seed $2"; return 0; fi
  $PY -m tacocc_core.cli eval --checkpoint "$ckpt" --data "$DATA" --split val --device "$DEVICE" --out "$out" \
    ${EVAL_FRAMES:+--max-frames "$EVAL_FRAMES"} > "$out.eval.log" 2>&1 \
    && echo "scored: $1 seed $2 at step $score_step" || echo "scoring failed: $1 seed $2, see $out.eval.log"
}
for seed in $SEEDS; do
  for v in $VARIANTS; do
    rm -f "$RUNS/$v/seed$seed/eval_val.json"
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    score_one "$v" "$seed" &
  done
done
wait

# shellcheck disable=SC2086  # one variant per word
$PY -m benchmarks.experiments.summarize_seeds "$RUNS" $VARIANTS
