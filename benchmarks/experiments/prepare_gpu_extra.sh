#!/usr/bin/env bash
# Wheels of what the package imports and a GPU machine's Python 3.12 image may lack (pydantic, the
# nuScenes devkit and their needs), downloaded here into .gpu/ beside what ../shared/device/prepare-gpu.sh
# packs; the GPU machine's `source .gpu/activate.sh` installs every wheel in .gpu/. Run after that script
# (it empties .gpu/*.whl), from the repository root:
#     bash ../shared/device/prepare-gpu.sh && bash benchmarks/experiments/prepare_gpu_extra.sh
[[ ${1:-} == -h || ${1:-} == --help ]] && { echo "usage: [SETTING=value ...] bash $0"; sed -n '2,/^set /s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail
mkdir -p .gpu
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu \
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 \
  nuscenes-devkit==1.2.0 pyquaternion==0.9.9 pytorch-msssim==1.0.0 cachetools==8.0.2 lz4==4.4.5
ls .gpu
