#!/usr/bin/env bash
# Fine-tuning a checkpoint trained with labels on bags WITHOUT labels, through training_node (mode
# self_supervised), scored on held-out scenes against the checkpoint it started from:
#   start      the initial checkpoint as it is
#   ssl_geo    LiDAR geometry loss only (label_efficient.geometry_weight), renderer off
#   ssl_photo  photometric loss only (renderer on, label_efficient.photometric_weight), optional
#   ssl_geo_teacher  geometry loss + the confident labels of START as a frozen teacher, optional
#   sup_render_off / sup_render_on  the bags' labels (mode supervised), renderer off / on (L_occ against
#              L_occ + pc_lambda L_pc: the paper's Table III last row as a fine-tune), optional
# Every run of every seed starts from the same weights (START); the seed changes the batch order and the
# renderer's anchor draws. The train split of DATA (splits.json) is converted to rosbag2 first (labels are in
# the bags but the self_supervised mode drops them); the val split is scored with `tacocc eval` and the table
# prints mean +- std over the seeds. Usage:
#   DATA=data/synth10_objects START=checkpoints/demo.pt RUNS=runs/bag_finetune SEEDS="0 1 2" \
#     bash benchmarks/experiments/run_bag_finetune.sh
#   ... PHOTO_SEEDS="0 1 2" PHOTO_RENDERER="neighbour_frames=0 inner_steps=3" DEVICE=cuda   # photometric
# Smoke check (minutes): STEPS=2 SEEDS="0 1" PHOTO_SEEDS=0 PHOTO_STEPS=1 EVAL_FRAMES=4 ...
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "usage: [SETTING=value ...] bash $0"; sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail
DATA=${DATA:-data/synth10_objects}
BAGS=${BAGS:-${DATA%/}_bags}           # one bag per train scene; converted here when missing
START=${START:-checkpoints/demo.pt}
PRESET=${PRESET:-demo}                 # model preset of START (the network must match it)
RUNS=${RUNS:-runs/bag_finetune}
TRAIN_CONFIG=${TRAIN_CONFIG:-config/train_finetune_bags.yaml}
STEPS=${STEPS:-300}
LR=${LR:-1e-4}
SEEDS=${SEEDS-0 1 2}                  # "" runs no ssl_geo (only the start is scored)
GEO_WEIGHT=${GEO_WEIGHT:-1.0}
PHOTO_SEEDS=${PHOTO_SEEDS:-}           # seeds of ssl_photo ('' = not run: its renderer steps are slow on a CPU)
TEACHER_SEEDS=${TEACHER_SEEDS:-}       # seeds of ssl_geo_teacher ('' = not run)
TEACHER_WEIGHT=${TEACHER_WEIGHT:-1.0}
SUP_SEEDS=${SUP_SEEDS:-}               # seeds of sup_render_off and sup_render_on ('' = not run)
SUP_STEPS=${SUP_STEPS:-$STEPS}
SUP_VARIANTS=${SUP_VARIANTS:-off on}   # which of sup_render_off / sup_render_on
SUP_RENDERER=${SUP_RENDERER:-}         # renderer settings of sup_render_on over PRESET's, e.g. "pc_lambda=0.9"
PHOTO_STEPS=${PHOTO_STEPS:-$STEPS}
PHOTO_WEIGHT=${PHOTO_WEIGHT:-1.0}
PHOTO_RENDERER=${PHOTO_RENDERER:-}     # renderer settings over PRESET's, e.g. "neighbour_frames=0 inner_steps=3"
EVAL_FRAMES=${EVAL_FRAMES:-}           # score only the first N held-out frames (smoke runs)
SCORE_START=${SCORE_START:-1}          # 0: do not score START (a parallel run of other seeds already does)
DEVICE=${DEVICE:-cpu}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}

train_scenes=$($PY -c "import json, sys; print(' '.join(json.load(open(sys.argv[1]))['train']))" "$DATA/splits.json")
missing=()
for scene in $train_scenes; do [ -d "$BAGS/$scene" ] || missing+=("$scene"); done
if [ ${#missing[@]} -gt 0 ]; then
  $PY -m tacocc_core.cli convert-nuscenes --dataroot "$DATA" --version "${VERSION:-v1.0-mini}" --out "$BAGS" \
    --scenes "${missing[@]}" --no-progress
fi
bags="[$(for scene in $train_scenes; do printf "'%s'," "$BAGS/$scene"; done | sed 's/,$//')]"

# write_yaml OUT BASE KEY=VALUE...: BASE (a YAML file) with dotted keys set (values parsed as YAML, 1e-4 a number)
write_yaml() {
  $PY - "$@" <<'EOF'
import sys, yaml
out, base, *pairs = sys.argv[1:]
data = yaml.safe_load(open(base))
for pair in pairs:
    key, value = pair.split("=", 1)
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node[part]
    if last not in node:
        sys.exit(f"{base}: no key {key}")
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    node[last] = parsed
with open(out, "w") as handle:
    yaml.safe_dump(data, handle, sort_keys=False)
EOF
}

score() {  # run folder, checkpoint
  $PY -m tacocc_core.cli eval --checkpoint "$2" --data "$DATA" --split val --device "$DEVICE" --out "$1" \
    ${EVAL_FRAMES:+--max-frames "$EVAL_FRAMES"} > /dev/null
}

finetune() {  # variant, seed, steps, model config, train-config settings...
  local name=$1 seed=$2 steps=$3 model=$4 mode=self_supervised; shift 4
  [[ $name == sup_* ]] && mode=supervised
  local out="$RUNS/$name/seed$seed"
  if [ ! -f "$out/latest.pt" ]; then
    write_yaml "$RUNS/$name/train_seed$seed.yaml" "$TRAIN_CONFIG" "seed=$seed" "steps=$steps" "lr=$LR" \
      "warmup_steps=$(( steps > 20 ? 10 : 0 ))" "ckpt_every=$steps" "$@"
    $PY -m tacocc_ros.training.training_node --ros-args -p bags:="$bags" -p model_config:="$model" \
      -p train_config:="$RUNS/$name/train_seed$seed.yaml" -p out_dir:="$out" -p checkpoint:="$START" \
      -p mode:=$mode -p device:="$DEVICE" > "$out.log" 2>&1 \
      || { echo "fine-tuning $name seed $seed failed, see $out.log" >&2; exit 1; }
  fi
  score "$out" "$out/latest.pt"
  echo "done: $name seed $seed ($(grep -c '"step"' "$out.log") steps logged)"
}

mkdir -p "$RUNS"/{start/seed0,ssl_geo,ssl_photo,ssl_geo_teacher,sup_render_off,sup_render_on}
[ "$SCORE_START" = 0 ] || score "$RUNS/start/seed0" "$START"
for seed in $SEEDS; do
  finetune ssl_geo "$seed" "$STEPS" "$PRESET" renderer=false "label_efficient.geometry_weight=$GEO_WEIGHT" \
    label_efficient.photometric_weight=0.0
done
for seed in $TEACHER_SEEDS; do
  finetune ssl_geo_teacher "$seed" "$STEPS" "$PRESET" renderer=false "label_efficient.geometry_weight=$GEO_WEIGHT" \
    label_efficient.photometric_weight=0.0 "label_efficient.teacher_checkpoint=$START" \
    "label_efficient.teacher_weight=$TEACHER_WEIGHT"
done
if [ -n "$PHOTO_SEEDS" ]; then
  renderer_settings=()
  for pair in $PHOTO_RENDERER; do renderer_settings+=("renderer.$pair"); done
  write_yaml "$RUNS/ssl_photo/model.yaml" "$($PY -c "from tacocc_core.config import preset_path; print(preset_path('$PRESET'))")" \
    renderer.enabled=true "${renderer_settings[@]}"
fi
if [ -n "$SUP_SEEDS" ]; then
  sup_settings=()
  for pair in $SUP_RENDERER; do sup_settings+=("renderer.$pair"); done
  write_yaml "$RUNS/sup_render_on/model.yaml" "$($PY -c "from tacocc_core.config import preset_path; print(preset_path('$PRESET'))")" \
    renderer.enabled=true "${sup_settings[@]}"
fi
for seed in $SUP_SEEDS; do
  if [[ " $SUP_VARIANTS " == *" off "* ]]; then
    finetune sup_render_off "$seed" "$SUP_STEPS" "$PRESET" renderer=false label_efficient.geometry_weight=0.0 \
      label_efficient.photometric_weight=0.0
  fi
  if [[ " $SUP_VARIANTS " == *" on "* ]]; then
    finetune sup_render_on "$seed" "$SUP_STEPS" "$RUNS/sup_render_on/model.yaml" renderer=true \
      label_efficient.geometry_weight=0.0 label_efficient.photometric_weight=0.0
  fi
done
if [ -n "$PHOTO_SEEDS" ]; then
  for seed in $PHOTO_SEEDS; do
    finetune ssl_photo "$seed" "$PHOTO_STEPS" "$RUNS/ssl_photo/model.yaml" renderer=true \
      label_efficient.geometry_weight=0.0 "label_efficient.photometric_weight=$PHOTO_WEIGHT"
  done
fi

$PY -m benchmarks.experiments.summarize_seeds "$RUNS" start ssl_geo ssl_geo_teacher ssl_photo sup_render_off sup_render_on
