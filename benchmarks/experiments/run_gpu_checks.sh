#!/usr/bin/env bash
# The GPU checks of docs/design/performance.md in one go, inside a wall-clock budget:
#   1. `tacocc bench` on CUDA: nuScenes preset bf16 and fp32, demo preset bf16 (latency, peak memory)
#   2. the CUDA tests (gsplat against our rasteriser, CUDA KNN and traversal against the CPU ones, bf16 encoder)
#   3. one renderer training step per preset on CUDA (benchmarks.speed.bench_render step, gsplat)
#   4. the label-efficiency comparison (bash benchmarks/experiments/run_label_efficiency.sh, every run at once on the GPU)
#   5. the renderer's inner fit on 3 held-out frames with gsplat (benchmarks.studies.measure_renderer fit: L_rgb
#      before / after, steps to convergence, seconds per step, L_pc, the fit from network-independent
#      Gaussians beside it), then the renderer evidence (benchmarks/experiments/run_renderer_evidence.sh: off /
#      converged / today's loop, RE_SEEDS x RE_STEPS from scratch, every run at once, cut at the budget)
#   6. the fuser comparison on data whose LiDAR intensity does not name the class (FUSER_DATA, generated
#      when missing): Eq. 1 as printed (adaptive, fixed k=1, fixed k=3) against the earlier fuser with
#      context terms (context_adaptive), FUSER_SEEDS x FUSER_STEPS from scratch, every run at once
#      (benchmarks/experiments/run_ablations.sh with DEVICE=cuda). Size: 12 runs x 1000 steps of the demo preset; on
#      the 2-core CPU machine that is about 12 x 1000 x 1.0-1.3 s = 3.3-4.3 core-hours, too long for it.
#   7. the exported parts on the GPU: TensorRT engines built and cached (test_tensorrt_cache.py -m gpu), and
#      `tacocc bench --backend both` (eager PyTorch and onnxruntime, TensorRT first) per preset. It needs
#      onnxruntime-gpu and the tensorrt package on the GPU machine; without them the test says why it skipped.
# Everything it measures lands in OUT_DIR (logs, JSON, a timeline). Usage, from the repository root: here
#   bash ../shared/device/prepare-gpu.sh && bash benchmarks/experiments/prepare_gpu_extra.sh
# then, on the GPU machine (the device tool's run, carry [".gpu"]):
#   source .gpu/activate.sh; BUDGET_S=540 bash benchmarks/experiments/run_gpu_checks.sh OUT_DIR
# DATA (default data/synth10_objects) is generated when missing, with the generator's --workers 10.
# LE_STEPS / LE_DEADLINE_S / LE_SEEDS size step 4; RE_STEPS / RE_SEEDS / RE_JOBS size step 5 (the renderer
# evidence alone, with the whole budget: SKIP="bench tests le render fuser"); FUSER_STEPS / FUSER_SEEDS
# size step 6; SKIP="... fit evidence fuser onnx" leaves steps out.
# ENGINE_CACHE (default .gpu/tensorrt) keeps step 7's TensorRT engines between runs.
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "usage: [SETTING=value ...] bash $0 OUT_DIR"; sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0; }
set -uo pipefail
OUT_DIR=${1:?usage: run_gpu_checks.sh OUT_DIR}
BUDGET_S=${BUDGET_S:-540}
DATA=${DATA:-data/synth10_objects}
LE_STEPS=${LE_STEPS:-300}
LE_VARIANTS=${LE_VARIANTS:-full_render_off full_render_on l10_sup l10_geo l10_photo l10_geo_photo}
LE_SEEDS=${LE_SEEDS:-0 1 2}
LE_DEADLINE_S=${LE_DEADLINE_S:-}      # default: what is left of the budget minus 90 s for scoring
RE_STEPS=${RE_STEPS:-1000}
RE_SEEDS=${RE_SEEDS:-0 1 2}
RE_JOBS=${RE_JOBS:-9}
FUSER_DATA=${FUSER_DATA:-$DATA}   # the generator writes material-based LiDAR intensity
FUSER_STEPS=${FUSER_STEPS:-1000}
FUSER_SEEDS=${FUSER_SEEDS:-0 1 2}
ENGINE_CACHE=${ENGINE_CACHE:-.gpu/tensorrt}
SKIP=${SKIP:-}
PY=${PYTHON:-python3}
START=$(date +%s)
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( START + BUDGET_S - $(date +%s) )); }
log() { echo "[$(elapsed) s] $*" | tee -a "$OUT_DIR/timeline.txt"; }
skipped() { [[ " $SKIP " == *" $1 "* ]]; }
capped() {  # seconds command...: run with a time cap that never passes the budget
  local cap=$1; shift
  local l; l=$(left); [ "$l" -lt "$cap" ] && cap=$l
  if [ "$cap" -le 5 ]; then log "no time left for: $*"; return 124; fi
  timeout -s TERM "$cap" "$@"
}

log "start; load: $(cut -d' ' -f1-3 /proc/loadavg)"
nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1
$PY - > "$OUT_DIR/versions.txt" 2>&1 <<'EOF'
import torch, spconv, gsplat, numpy
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
print("spconv", spconv.__version__, "gsplat", gsplat.__version__, "numpy", numpy.__version__)
EOF
cat "$OUT_DIR/versions.txt"

# gsplat compiles its CUDA kernels on first use: start that now, beside the benches of step 1.
( capped 300 $PY -c "
import torch
from gsplat import rasterization
m = torch.zeros(1, 3, device='cuda'); q = torch.tensor([[1.0, 0, 0, 0]], device='cuda')
v = torch.eye(4, device='cuda')[None]; v[0, 2, 3] = 3; k = torch.tensor([[[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]]], device='cuda')
img, _, _ = rasterization(m, q, torch.full((1, 3), 0.1, device='cuda'), torch.ones(1, device='cuda'),
                          torch.ones(1, 3, device='cuda'), v, k, 64, 64)
print('gsplat ready', tuple(img.shape), float(img.sum()))
" > "$OUT_DIR/gsplat_build.txt" 2>&1; log "gsplat build: exit $?" ) &
build=$!

if ! skipped bench; then
  for spec in "nuscenes_r50_256x704 bf16 50" "nuscenes_r50_256x704 fp32 20" "demo bf16 50" "demo fp32 50"; do
    read -r preset dtype frames <<< "$spec"
    name="bench_${preset}_cuda_${dtype}"
    capped 120 $PY -m tacocc_core.cli bench --config "$preset" --device cuda --dtype "$dtype" --frames "$frames" \
      --warmup 5 --out "$OUT_DIR/$name.json" > "$OUT_DIR/$name.txt" 2>&1
    log "$name: exit $?; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  done
fi

# The data of step 3 (CPU, 10 processes) beside the renderer step of step 4 (GPU, one process).
if [ ! -d "$DATA" ] && ! skipped le; then
  ( capped 200 $PY -m tacocc_core.cli generate-scenes --out "$DATA" --scenes 10 --keyframes 16 --seed 0 \
      --image-size 352x198 --workers 10 > "$OUT_DIR/generate.txt" 2>&1
    log "generate $DATA: exit $?"
    (cd "$DATA" && md5sum -c "$OLDPWD/benchmarks/experiments/synth10_objects.md5") >> "$OUT_DIR/generate.txt" 2>&1
    log "data checksums against the CPU machine's copy: $(grep -c ': OK' "$OUT_DIR/generate.txt") of 4 equal" ) &
  generate=$!
fi
wait "$build"
if ! skipped render; then
  for preset in demo nuscenes_r50_256x704; do
    capped 90 $PY -m benchmarks.speed.bench_render step --preset "$preset" --device cuda --backend gsplat --repeats 2 \
      > "$OUT_DIR/render_step_$preset.txt" 2>&1
    log "render step $preset (data generation running beside it): exit $?"
  done
fi
[ -n "${generate:-}" ] && wait "$generate"

if ! skipped onnx; then
  $PY -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" \
    > "$OUT_DIR/onnxruntime.txt" 2>&1
  capped 300 $PY -m pytest -q -p no:cacheprovider -o addopts="" -rs test/unit/test_tensorrt_cache.py \
    > "$OUT_DIR/pytest_tensorrt.txt" 2>&1
  log "TensorRT engine cache tests: exit $? ($(tail -1 "$OUT_DIR/pytest_tensorrt.txt"))"
  for preset in demo nuscenes_r50_256x704; do
    name="bench_${preset}_cuda_fp32_backends"
    XDG_CACHE_HOME=$ENGINE_CACHE capped 240 $PY -m tacocc_core.cli bench --config "$preset" --device cuda \
      --dtype fp32 --backend both --frames 20 --warmup 5 --out "$OUT_DIR/$name.json" > "$OUT_DIR/$name.txt" 2>&1
    log "$name: exit $?"
  done
fi

if ! skipped tests; then
  ( capped 240 $PY -m pytest -q -p no:cacheprovider -o addopts="" test/unit/test_render_rasterize.py test/unit/test_retrieval.py \
      test/unit/test_train_pseudo_labels.py test/unit/test_encoder.py -k "cuda or gsplat or gpu" > "$OUT_DIR/pytest_cuda.txt" 2>&1
    log "CUDA tests: exit $? ($(tail -1 "$OUT_DIR/pytest_cuda.txt"))" ) &
  tests=$!
fi

if ! skipped le; then
  deadline=${LE_DEADLINE_S:-$(( $(left) - 90 ))}
  log "label efficiency: $LE_STEPS steps, seeds $LE_SEEDS, deadline $deadline s"
  DATA=$DATA RUNS=runs/label_eff_gpu CONFIG=demo LR=0.003 WARMUP=30 DEVICE=cuda JOBS=24 STEPS=$LE_STEPS \
    KEEP_EVERY=50 DEADLINE_S=$deadline SEEDS="$LE_SEEDS" VARIANTS="$LE_VARIANTS" PYTHON=$PY \
    capped $(( deadline + 85 )) bash benchmarks/experiments/run_label_efficiency.sh > "$OUT_DIR/label_efficiency.txt" 2>&1
  log "label efficiency: exit $?"
fi
[ -n "${tests:-}" ] && wait "$tests"

if ! skipped fit; then
  capped 150 $PY -m benchmarks.studies.measure_renderer fit --data "$DATA" --checkpoint checkpoints/demo.pt --windows 3 \
    --fixed --device cuda > "$OUT_DIR/renderer_fit_cuda.txt" 2>&1
  log "renderer fit (gsplat): exit $?"
fi
if ! skipped evidence; then
  deadline=$(( $(left) - 60 ))
  log "renderer evidence: $RE_STEPS steps, seeds $RE_SEEDS, deadline $deadline s"
  DATA=$DATA RUNS=runs/renderer_evidence_gpu CONFIG=demo DEVICE=cuda JOBS=$RE_JOBS STEPS=$RE_STEPS \
    SEEDS="$RE_SEEDS" DEADLINE_S=$deadline PYTHON=$PY \
    capped $(( deadline + 55 )) bash benchmarks/experiments/run_renderer_evidence.sh > "$OUT_DIR/renderer_evidence.txt" 2>&1
  log "renderer evidence: exit $?"
  find runs/renderer_evidence_gpu -name "*.log" -o -name "eval_val.json" 2>/dev/null \
    | tar czf "$OUT_DIR/renderer_evidence_gpu.tgz" -T -
fi
if ! skipped fuser; then
  if [ ! -d "$FUSER_DATA" ]; then
    capped 200 $PY -m tacocc_core.cli generate-scenes --out "$FUSER_DATA" --scenes 10 --keyframes 16 --seed 0 \
      --image-size 352x198 --workers 10 > "$OUT_DIR/generate_fuser.txt" 2>&1
    log "generate $FUSER_DATA: exit $?"
  fi
  log "fuser comparison: $FUSER_STEPS steps, seeds $FUSER_SEEDS"
  DATA=$FUSER_DATA RUNS=runs/fuser_gpu CONFIG=demo LR=0.003 WARMUP=30 DEVICE=cuda JOBS=12 STEPS=$FUSER_STEPS \
    SEEDS="$FUSER_SEEDS" MODES="adaptive context_adaptive fixed_k1 fixed_k3" SKIP_BENCH=1 PYTHON=$PY \
    capped "$(left)" bash benchmarks/experiments/run_ablations.sh > "$OUT_DIR/fuser_comparison.txt" 2>&1
  log "fuser comparison: exit $?"
  find runs/fuser_gpu -name "*.log" -o -name "eval_val.json" | tar czf "$OUT_DIR/fuser_gpu.tgz" -T - 2>/dev/null
fi


# What came back of the training runs: logs, eval reports, the list of kept steps, and the scored
# checkpoints of seed 0 with the renderer off and on.
if [ -d runs/label_eff_gpu ]; then
  find runs/label_eff_gpu -name "*.log" -o -name "eval_val.json" -o -name "eval_val.md" -o -name "done" \
    | tar czf "$OUT_DIR/label_eff_gpu.tgz" -T -
  find runs/label_eff_gpu -name "step_*.pt" | sort > "$OUT_DIR/kept_snapshots.txt"
  scored=$(sed -n 's/^scoring every run at step \([0-9]*\) .*/\1/p' "$OUT_DIR/label_efficiency.txt")
  for v in full_render_off full_render_on; do
    f=runs/label_eff_gpu/$v/seed0/step_$(printf %06d "${scored:-0}").pt
    [ -f "$f" ] && cp "$f" "$OUT_DIR/${v}_seed0_step${scored}.pt"
  done
fi
log "end"
