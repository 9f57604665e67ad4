#!/bin/bash
# The GPU rows of the speed table in one go, on a machine lent with a CUDA GPU (device tool):
# prediction of the 1024 x 768 sample by the original configuration and by ours (fused bag,
# unfused loop, dense block-diagonal fusion, tiles from free memory against the CPU's 512-pixel
# tiles, 8 tiles a batch, ours on the CPU in the same run), the networks alone, time to first
# pixel and whole-process `rockseg predict`. Writes OUTDIR/speed_cuda.md and .json.
#
#   bash benchmarks/gpu_speed.sh OUTDIR            # on the GPU machine
#   bash benchmarks/gpu_speed.sh --dry-run OUTDIR  # here: the same script on the CPU, tiny sizes
set -eu
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:?usage: gpu_speed.sh [--dry-run] OUTDIR}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
[ -x .venv/bin/python ] && [ -z "${PY_SET:-}" ] && PY=.venv/bin/python
t0=$(date +%s)
if [ "$DRY" = 1 ]; then
  # every case the GPU run uses, each once on the CPU and small, so that a lent GPU's minutes
  # are not spent finding a typo
  for c in "nets 0.02" "ours 0.02 0 none" "ours 0.02 0 loop" "ours 0.02 0 tiled" "first_pixel" \
           "original 0.02" "train_steps 1" "cli"; do
    $PY benchmarks/speed.py --device cpu --case $c > "$OUT/case.json" || { echo "case $c failed"; exit 1; }
    echo "ok: $c -> $(tail -c 200 "$OUT/case.json")"
  done
  echo "dry run passed in $(( $(date +%s) - t0 )) s"
  exit 0
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY benchmarks/speed.py --device cuda --parts predict breakdown --threads "$(nproc)" --out "$OUT" \
  2>&1 | tee "$OUT/speed_cuda.log"
echo "took $(( $(date +%s) - t0 )) s"
