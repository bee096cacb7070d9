#!/usr/bin/env bash
# Fine-tuning without labels on a domain the start checkpoint has never seen: scenes of another "vehicle"
# (a generator domain YAML: colours, lighting, LiDAR beams and intensity, camera mount), train scenes as
# rosbag2 bags used WITHOUT labels, held-out scenes of the same domain scored with their labels. Runs
# run_bag_finetune.sh (ssl_geo and ssl_geo_teacher, the same START for every seed) in JOBS parallel lanes,
# scores START on the original domain's held-out scenes for reference (REF_DATA, when present), scores START
# and every fine-tune on the same held-out streets recorded by the built-in vehicle (BUILTIN_DATA: the domain
# gap on identical scenes, and what the fine-tune costs on the vehicle it left), and prints mean +- std and
# every seed beside plain LiDAR accumulation on the same frames. Usage:
#   START=checkpoints/demo.pt RUNS=runs/domain_finetune STEPS=150 SEEDS="0 1 2" JOBS=2 \
#     bash benchmarks/experiments/run_domain_finetune.sh
# Smoke check (minutes): SCENES=3 VAL_SCENES=1 KEYFRAMES=4 STEPS=2 SEEDS=0 EVAL_FRAMES=2 DATA=data/smoke ...
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "usage: [SETTING=value ...] bash $0"; sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail
DOMAIN=${DOMAIN:-config/domains/vehicle_b.yaml}
DATA=${DATA:-data/vehicle_b}           # generated here when missing, from the settings below
SCENES=${SCENES:-9}
VAL_SCENES=${VAL_SCENES:-3}            # held-out scenes (the last ones); the others become bags
KEYFRAMES=${KEYFRAMES:-16}
GEN_SEED=${GEN_SEED:-7}                # not 0 (the demo checkpoint's training scenes) nor 1 (the demo's)
IMAGE_SIZE=${IMAGE_SIZE:-352x198}      # what the demo checkpoint was trained on
REF_DATA=${REF_DATA-data/synth10_reflectance}   # the original domain ('' or missing: not scored)
BUILTIN_DATA=${BUILTIN_DATA-${DATA%/}_builtin}  # DATA's scenes by the built-in vehicle (generated; '': skipped)
START=${START:-checkpoints/demo.pt}
RUNS=${RUNS:-runs/domain_finetune}
JOBS=${JOBS:-1}                        # 2: geometry-only and geometry + teacher side by side
SEEDS=${SEEDS:-0 1 2}
PY=${PYTHON:-python}
export START RUNS DATA SEEDS
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
here=$(dirname "$0")

if [ ! -d "$DATA" ]; then
  $PY -m tacocc_core.cli generate-scenes --out "$DATA" --scenes "$SCENES" --val-scenes "$VAL_SCENES" \
    --keyframes "$KEYFRAMES" --seed "$GEN_SEED" --image-size "$IMAGE_SIZE" --domain "$DOMAIN" --workers 1
fi
# bags and the start's scores first (kept when RUNS has them), then the fine-tunes (each lane trains and
# scores its own runs; a run whose latest.pt exists is scored again, not trained again)
if [ ! -f "$RUNS/start/seed0/eval_val.json" ]; then
  SEEDS="" TEACHER_SEEDS="" bash "$here/run_bag_finetune.sh" > /dev/null
fi
if [ "$JOBS" -ge 2 ]; then
  SCORE_START=0 TEACHER_SEEDS="" bash "$here/run_bag_finetune.sh" > "$RUNS/lane_geo.log" 2>&1 &
  geo=$!
  SCORE_START=0 TEACHER_SEEDS="$SEEDS" SEEDS="" bash "$here/run_bag_finetune.sh" > "$RUNS/lane_teacher.log" 2>&1 &
  teacher=$!
  wait "$geo" || { echo "ssl_geo failed, see $RUNS/lane_geo.log" >&2; exit 1; }
  wait "$teacher" || { echo "ssl_geo_teacher failed, see $RUNS/lane_teacher.log" >&2; exit 1; }
else
  SCORE_START=0 TEACHER_SEEDS="$SEEDS" bash "$here/run_bag_finetune.sh" > "$RUNS/lane.log" 2>&1
fi
if [ -n "$REF_DATA" ] && [ -d "$REF_DATA" ]; then
  mkdir -p "$RUNS/reference/start/seed0"
  $PY -m tacocc_core.cli eval --checkpoint "$START" --data "$REF_DATA" --split val --device "${DEVICE:-cpu}" \
    --out "$RUNS/reference/start/seed0" ${EVAL_FRAMES:+--max-frames "$EVAL_FRAMES"} > /dev/null
  echo "START on the original domain's held-out scenes ($REF_DATA):"
  $PY -m benchmarks.experiments.summarize_seeds --lidar "$RUNS/reference" start
  echo
fi
if [ -n "$BUILTIN_DATA" ]; then
  if [ ! -d "$BUILTIN_DATA" ]; then
    $PY -m tacocc_core.cli generate-scenes --out "$BUILTIN_DATA" --scenes "$SCENES" --val-scenes "$VAL_SCENES" \
      --keyframes "$KEYFRAMES" --seed "$GEN_SEED" --image-size "$IMAGE_SIZE" --workers 1
  fi
  for run in start/seed0 $(for s in $SEEDS; do echo "ssl_geo/seed$s ssl_geo_teacher/seed$s"; done); do
    checkpoint=$START
    [[ $run == start/* ]] || checkpoint=$RUNS/$run/latest.pt
    mkdir -p "$RUNS/builtin/$run"
    $PY -m tacocc_core.cli eval --checkpoint "$checkpoint" --data "$BUILTIN_DATA" --split val \
      --device "${DEVICE:-cpu}" --out "$RUNS/builtin/$run" ${EVAL_FRAMES:+--max-frames "$EVAL_FRAMES"} > /dev/null
  done
  echo "The same held-out streets recorded by the built-in vehicle ($BUILTIN_DATA):"
  $PY -m benchmarks.experiments.summarize_seeds --per-seed --lidar "$RUNS/builtin" start ssl_geo ssl_geo_teacher
  echo
fi
echo "On the new domain's held-out scenes ($DATA, $DOMAIN):"
$PY -m benchmarks.experiments.summarize_seeds --per-seed --lidar "$RUNS" start ssl_geo ssl_geo_teacher
