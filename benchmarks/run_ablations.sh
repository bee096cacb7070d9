#!/usr/bin/env bash
# Ablations in the shape of the paper's Tables III/IV on generated data, tiny preset, CPU:
#   base (no fuser) | fixed k=1 | fixed k=2 | fixed k=3 | adaptive k in {1,2,3}
#   adaptive with the Gumbel temperature annealed within the run
#   adaptive without / with the renderer
#   full labels vs 10% of the frames labelled, without / with LiDAR geometry self-supervision
# Each run trains STEPS steps (short schedules) and is scored with `tacocc eval` on the held-out scenes;
# the reports land in RUNS/<name>/eval_val.{md,json}. Usage:
#   DATA=data/synth10 RUNS=runs/ablations STEPS=150 [CALIB=calib.json] benchmarks/run_ablations.sh
# CALIB (optional) generates the data with a measured rig instead of the built-in one.
set -euo pipefail
DATA=${DATA:-data/synth10}
RUNS=${RUNS:-runs/ablations}
STEPS=${STEPS:-150}
CALIB=${CALIB:-}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread: faster than two fighting over shared cores

if [ ! -d "$DATA" ]; then
  $PY -m tacocc_core.cli generate-scenes --out "$DATA" --scenes 10 --keyframes 16 --seed 0 --image-size 352x198 \
    ${CALIB:+--calib "$CALIB"}
fi

common=(--config tiny --data "$DATA" --device cpu --set "train.steps=$STEPS" --set train.warmup_steps=10
        --set "train.val_every=$STEPS" --set train.ckpt_every=50)

run() {  # name, extra arguments...
  local name=$1; shift
  if [ ! -f "$RUNS/$name/latest.pt" ]; then
    $PY -m tacocc_core.cli train "${common[@]}" --out "$RUNS/$name" "$@"
  fi
  $PY -m tacocc_core.cli eval --checkpoint "$RUNS/$name/latest.pt" --data "$DATA" --split val --device cpu \
    --out "$RUNS/$name" > /dev/null
}

run base          --set model.fuser.mode=none  --set train.renderer=false
run fixed_k1      --set model.fuser.mode=fixed --set model.fuser.fixed_k=1 --set train.renderer=false
run fixed_k2      --set model.fuser.mode=fixed --set model.fuser.fixed_k=2 --set train.renderer=false
run fixed_k3      --set model.fuser.mode=fixed --set model.fuser.fixed_k=3 --set train.renderer=false
run adaptive      --set train.renderer=false
# the Gumbel temperature annealed within the short schedule (the preset anneals over 500 steps)
run adaptive_tau_in_run --set train.renderer=false --set "model.fuser.tau_anneal_steps=$STEPS"
run adaptive_render --set train.renderer=true
run labels10      --set train.renderer=false --label-fraction 0.1
run labels10_geo  --set train.renderer=false --label-fraction 0.1 --set train.label_efficient.geometry_weight=1.0

$PY - "$RUNS" <<'PYEOF'
import json, sys
from pathlib import Path
runs = Path(sys.argv[1])
print("| run | IoU | mIoU |")
print("|---|---:|---:|")
for report in sorted(runs.glob("*/eval_val.json")):
    s = json.loads(report.read_text())["scores"]["all"]
    fmt = lambda v: "-" if v is None else f"{100 * v:.2f}"
    print(f"| {report.parent.name} | {fmt(s['geometry_iou'])} | {fmt(s['miou'])} |")
PYEOF
