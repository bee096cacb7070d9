#!/usr/bin/env bash
# The fuser ablation in the shape of the paper's Tables III/IV on generated data (CPU, or DEVICE=cuda):
#   none (no retrieval) | fixed k=1 | fixed k=3 | adaptive k in {1,2,3}, all with Eq. 1 as printed (the
#   defaults), and context_adaptive: the earlier fuser (F * w + c, the own voxel excluded, noise faded)
# each trained with every seed of SEEDS on the same data and schedule (renderer off), scored with
# `tacocc eval` on the held-out scenes, and timed with `tacocc bench`. For one seed every mode starts from
# the same initial weights (the fuser builds its shared modules from their own seeds). Prints mean +- std
# over the seeds of IoU, mIoU, small-object mIoU (the five small classes present), the mIoU of each
# distance band, the LiDAR accumulation baseline's IoU, and the median frame latency per mode.
#   DATA=data/synth10_objects RUNS=runs/ablations STEPS=1000 SEEDS="0 1 2" JOBS=2 bash benchmarks/experiments/run_ablations.sh
# MODES (default "none fixed_k1 fixed_k3 adaptive") picks the variants; SKIP_BENCH=1 leaves out the latency.
# JOBS runs train at once (one torch thread each: JOBS=2 fills two cores). A run whose eval report exists is
# not trained again.
# Quick smoke of the script: STEPS=10 SEEDS="0 1" WARMUP=2 VAL_MAX_FRAMES=1 EVAL_MAX_FRAMES=8 BENCH_FRAMES=3
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "usage: [SETTING=value ...] bash $0"; sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail
DATA=${DATA:-data/synth10_objects}
RUNS=${RUNS:-runs/ablations}
STEPS=${STEPS:-1000}
SEEDS=${SEEDS:-"0 1 2"}
CONFIG=${CONFIG:-demo}
WARMUP=${WARMUP:-30}
VAL_EVERY=${VAL_EVERY:-$STEPS}
LR=${LR:-0.003}          # peak lr; at 1e-3 (train_tiny's) the demo preset had learnt no object class by step 800
JOBS=${JOBS:-1}
BENCH_FRAMES=${BENCH_FRAMES:-10}
VAL_MAX_FRAMES=${VAL_MAX_FRAMES:-}    # validation frames during training (default: all held-out frames)
EVAL_MAX_FRAMES=${EVAL_MAX_FRAMES:-}  # frames scored by tacocc eval (default: all held-out frames)
KEEP_EVERY=${KEEP_EVERY:-0}           # also keep step_NNNNNN.pt every this many steps (selector gradients over training)
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cpu}
SKIP_BENCH=${SKIP_BENCH:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread: faster than two fighting over shared cores

if [ ! -d "$DATA" ]; then
  $PY -m tacocc_core.cli generate-scenes --out "$DATA" --scenes 10 --keyframes 16 --seed 0 --image-size 352x198 \
    --workers 1
fi

# Every mode names its whole fuser, so that a run means the same whatever the preset's defaults are.
EQ1="--set model.fuser.context_terms=false --set model.fuser.exclude_own_voxel=false --set model.fuser.noise_fade=false"
declare -A MODE_ARGS=(
  [none]="--set model.fuser.mode=none $EQ1"
  [fixed_k1]="--set model.fuser.mode=fixed --set model.fuser.fixed_k=1 $EQ1"
  [fixed_k3]="--set model.fuser.mode=fixed --set model.fuser.fixed_k=3 $EQ1"
  [adaptive]="--set model.fuser.mode=adaptive $EQ1"
  [context_adaptive]="--set model.fuser.mode=adaptive --set model.fuser.context_terms=true
    --set model.fuser.exclude_own_voxel=true --set model.fuser.noise_fade=true"
)
read -r -a MODES <<< "${MODES:-none fixed_k1 fixed_k3 adaptive}"

train_and_score() {  # seed mode
  local seed=$1 mode=$2 out="$RUNS/$2/seed$1"
  # shellcheck disable=SC2086  # MODE_ARGS holds several words on purpose
  $PY -m tacocc_core.cli train --config "$CONFIG" --data "$DATA" --device "$DEVICE" --out "$out" \
    ${MODE_ARGS[$mode]} --set "train.seed=$seed" --set "train.steps=$STEPS" --set "train.warmup_steps=$WARMUP" \
    --set "train.lr=$LR" --set "train.val_every=$VAL_EVERY" --set train.ckpt_every=50 --set train.renderer=false \
    --set "train.keep_every=$KEEP_EVERY" \
    ${VAL_MAX_FRAMES:+--val-max-frames "$VAL_MAX_FRAMES"} $([ -f "$out/latest.pt" ] && echo --resume) \
    > "$out.train.log" 2>&1
  $PY -m tacocc_core.cli eval --checkpoint "$out/latest.pt" --data "$DATA" --split val --device "$DEVICE" \
    --out "$out" ${EVAL_MAX_FRAMES:+--max-frames "$EVAL_MAX_FRAMES"} > /dev/null
  echo "trained and scored $mode seed $seed"
}

for seed in $SEEDS; do
  for mode in "${MODES[@]}"; do
    if [ ! -f "$RUNS/$mode/seed$seed/eval_val.json" ]; then
      mkdir -p "$RUNS/$mode"
      while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
      train_and_score "$seed" "$mode" &
    fi
  done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n; done

# Latency per mode: the same preset with the mode's fuser and the trained weights of the first seed's run
# (a trained head refines fewer voxels than a random one), `tacocc bench`, one torch thread.
mkdir -p "$RUNS/bench"
first_seed=${SEEDS%% *}
for mode in "${MODES[@]}"; do
  if [ -z "$SKIP_BENCH" ] && [ ! -f "$RUNS/bench/$mode.json" ]; then
    $PY - "$CONFIG" "$mode" "$RUNS/bench/$mode.yaml" <<'PYEOF'
import dataclasses, sys
import yaml
from tacocc_core.config import config_to_dict, load_preset
config, mode, out = sys.argv[1:]
c = load_preset(config)
eq1 = dict(context_terms=False, exclude_own_voxel=False, noise_fade=False)
fuser = {"none": dict(mode="none", **eq1), "fixed_k1": dict(mode="fixed", fixed_k=1, **eq1),
         "fixed_k3": dict(mode="fixed", fixed_k=3, **eq1), "adaptive": dict(mode="adaptive", **eq1),
         "context_adaptive": dict(mode="adaptive", context_terms=True, exclude_own_voxel=True, noise_fade=True)}[mode]
c = dataclasses.replace(c, name=f"{c.name}_{mode}", fuser=dataclasses.replace(c.fuser, **fuser))
with open(out, "w") as f:
    yaml.safe_dump(config_to_dict(c), f, sort_keys=False)
PYEOF
    $PY -m tacocc_core.cli bench --config "$RUNS/bench/$mode.yaml" --frames "$BENCH_FRAMES" \
      --checkpoint "$RUNS/$mode/seed$first_seed/latest.pt" --out "$RUNS/bench/$mode.json" > /dev/null
  fi
done

$PY - "$RUNS" "$SEEDS" "${MODES[@]}" <<'PYEOF'
import json, math, sys
from pathlib import Path

runs, seeds, modes = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]
SMALL = ("pedestrian", "bicycle", "motorcycle", "traffic_cone", "barrier")


def stats(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} +- {100 * std:.2f}"


def small_miou(scores):
    ious = [scores["class_iou"].get(c) for c in SMALL]
    ious = [v for v in ious if v is not None]
    return sum(ious) / len(ious) if ious else None


reports = {m: [json.loads((runs / m / f"seed{s}" / "eval_val.json").read_text()) for s in seeds] for m in modes}
bands = [b for b in reports[modes[0]][0]["scores"] if b != "all"]
header = ["mode", "IoU", "mIoU", "small-object mIoU", *[f"mIoU {b.removeprefix('within_')}" for b in bands],
          "LiDAR accumulation IoU", "latency p50 ms"]
print(f"{len(seeds)} seeds ({' '.join(seeds)}), mean +- std (sample std) in %")
print("| " + " | ".join(header) + " |")
print("|---|" + "---:|" * (len(header) - 1))
for m in modes:
    r = reports[m]
    bench = runs / "bench" / f"{m}.json"
    latency = json.loads(bench.read_text())["stages"]["total"]["p50_ms"] if bench.exists() else float("nan")
    cells = [
        stats([x["scores"]["all"]["geometry_iou"] for x in r]),
        stats([x["scores"]["all"]["miou"] for x in r]),
        stats([small_miou(x["scores"]["all"]) for x in r]),
        *[stats([x["scores"][b]["miou"] for x in r]) for b in bands],
        stats([x.get("lidar_accumulation_iou", {}).get("all") for x in r]),
        f"{latency:.0f}",
    ]
    print(f"| {m} | " + " | ".join(cells) + " |")

# Paired differences per seed (same initial weights): mIoU and IoU of each mode minus the adaptive mode's.
if "adaptive" in reports:
    print()
    print("paired differences against adaptive (Eq. 1 as printed), per seed, percentage points")
    print("| mode | " + " | ".join(f"seed {s} mIoU / IoU" for s in seeds) + " | mean +- std mIoU |")
    print("|---|" + "---:|" * (len(seeds) + 1))
    for m in modes:
        if m == "adaptive":
            continue
        d_miou = [a["scores"]["all"]["miou"] - b["scores"]["all"]["miou"] for a, b in zip(reports[m], reports["adaptive"])]
        d_iou = [a["scores"]["all"]["geometry_iou"] - b["scores"]["all"]["geometry_iou"]
                 for a, b in zip(reports[m], reports["adaptive"])]
        cells = [f"{100 * x:+.2f} / {100 * y:+.2f}" for x, y in zip(d_miou, d_iou)]
        print(f"| {m} | " + " | ".join(cells) + f" | {stats(d_miou)} |")

# Paper Table V: the adaptive runs' mean chosen k per size group of the query voxel, mean +- std over seeds.
if "adaptive" in reports and all("k_by_class" in x for x in reports["adaptive"]):
    runs_k = [x["k_by_class"] for x in reports["adaptive"]]
    cand = runs_k[0]["candidates"]
    columns = list(runs_k[0]["by_size_group"])
    groups = list(runs_k[0]["by_size_group"][columns[0]])

    def mean_k(counts):
        return sum(c * n for c, n in zip(cand, counts)) / sum(counts) if sum(counts) else None

    def k_stats(values):
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        return f"{mean:.2f} +- {std:.2f}"

    print()
    print("adaptive: mean chosen k by size group of the query voxel, mean +- std over seeds")
    print("| query voxel | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for g in groups:
        cells = [k_stats([mean_k(r["by_size_group"][c][g]) for r in runs_k]) for c in columns]
        print(f"| {g} | " + " | ".join(cells) + " |")
PYEOF
