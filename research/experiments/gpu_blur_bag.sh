#!/bin/bash
# The shipped members' recipe with the sharpness augmentation (recipes B0-B5 of gpu_sweep.py:
# seeds 0-5, 2,600 / 2,600 / 3,600 / 3,600 / 6,000 / 6,000 steps, `--blur 1`) on the three
# leave-one-image-out folds and on all training images: 24 `rockseg train` runs sharing one
# GPU, interrupted after DEADLINE minutes (an interrupted run saves its best validated
# weights). Written for a lent GPU machine, run from the repository root there:
#
#   bash research/experiments/gpu_blur_bag.sh OUTDIR [DEADLINE_MINUTES]
#
# The sample data must be in ../shared/data/shale-sem or in gpu/shale-sem (copied there by
# hand and carried, since ../shared does not travel to the device machine).
# CUDA MPS is started when the driver has it and a CUDA check passes under it, so that the
# 24 processes' small kernels run side by side instead of time-sliced; without it the runs
# share the GPU by time slices (about 150 steps/s in all on an H200, README).
# The fold bags are then scored there with each fold's forest at 0.2 (heldout_bag.py; the
# forests come from gpu/rf/ when carried, else they are trained first). OUTDIR gets
# logs.tgz (logs, jobs.json with steps and seconds of every run, heldout.json/.txt) and
# the all-image models as models.tar.* (15 MB parts); the fold models stay there unless
# FOLDS_BACK=1, which also packs them as folds.tar.* (18 at float16: about 22 MB), so that
# bags mixing them with other fold models can be scored later on a CPU.
# The bags are scored twice: with prediction's texture rule before session 17
# (ROCKSEG_TEXTURE=window, heldout*.json: the rule every GPU candidate's bar was measured
# with) and as prediction is now (heldout*_now.json).
# Other recipes: RECIPES (names in gpu_sweep.py), SPLITS=--folds-only (no all-image runs),
# HELDOUT (the fold-model patterns scored as one bag, {i} = fold) and NAME. The shipped
# recipe trained again (README, Third GPU session):
#   RECIPES=S0,S1,S2,S3,L4,L5 SPLITS=--folds-only SWEEP=/tmp/sweep2 NAME="shipped recipe, rerun" \
#   HELDOUT="/tmp/sweep2/folds/S0_{i}.safetensors ... /tmp/sweep2/folds/L5_{i}.safetensors" \
#   bash research/experiments/gpu_blur_bag.sh OUTDIR 4.3
# The same recipe with the Lovasz-softmax loss added (README, Fourth GPU session):
#   RECIPES=Z0,Z1,Z2,Z3,Z4,Z5 HELDOUT="/tmp/sweep/folds/Z{k}_{i}.safetensors" NAME="Z0-Z5 (Lovasz)" \
#   bash research/experiments/gpu_blur_bag.sh OUTDIR 6
# Several bags scored one after the other: BAGS="NAME=PATTERN;..." (each PATTERN with {k} over
# MEMBERS), e.g. the loss and sampler screen (two seeds per setting, README):
#   RECIPES=S0,S1,Q0,Q1,R0,R1,C0,C1,K0,K1 SPLITS=--folds-only MEMBERS=0-1 \
#   BAGS="S=/tmp/sweep/folds/S{k}_{i}.safetensors;Q=/tmp/sweep/folds/Q{k}_{i}.safetensors;..." \
#   bash research/experiments/gpu_blur_bag.sh OUTDIR 5.5
# The shipped recipe with --lr 1e-3 (recipes H0-H5; rule in README, "The loss's and the
# sampler's settings..."), folds and all images:
#   RECIPES=H0,H1,H2,H3,H4,H5 HELDOUT="/tmp/sweep/folds/H{k}_{i}.safetensors" NAME="H0-H5 (--lr 1e-3)" \
#   bash research/experiments/gpu_blur_bag.sh OUTDIR 6
# The same with the detector-contrast augmentation widened (recipes G0-G5), the fold models
# brought back to score held-out images of another contrast on a CPU (contrast.py):
#   RECIPES=G0,G1,G2,G3,G4,G5 HELDOUT="/tmp/sweep/folds/G{k}_{i}.safetensors" FOLDS_BACK=1 \
#   NAME="G0-G5 (--contrast 0.5)" bash research/experiments/gpu_blur_bag.sh OUTDIR 6
# A dry run on a CPU: RECIPES=B0 MEMBERS=0 DEVICE=cpu SWEEP=/tmp/dry bash ... /tmp/dryout 0.5
set -u
OUT=${1:?usage: gpu_blur_bag.sh OUTDIR [DEADLINE_MINUTES]}
DEADLINE=${2:-7}
SWEEP=${SWEEP:-/tmp/sweep}
RECIPES=${RECIPES:-B0,B1,B2,B3,B4,B5}
MEMBERS=${MEMBERS:-0-5}
DEVICE=${DEVICE:-cuda}
HELDOUT=${HELDOUT:-$SWEEP/folds/B\{k\}_\{i\}.safetensors}  # fold-model patterns scored as one bag
NAME=${NAME:-B0-B5 (--blur 1)}
SPLITS=${SPLITS:-}  # --folds-only: no all-image models
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ ! -d ../shared/data/shale-sem ]; then
  mkdir -p ../shared/data && cp -r gpu/shale-sem ../shared/data/ || exit 1
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
python3 -c "import torch; print('torch', torch.__version__)"

check='import torch; c = torch.nn.Conv2d(1, 4, 3).cuda(); print("cuda check", float(c(torch.ones(1, 1, 8, 8, device="cuda")).sum()))'
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
MPS=off
if command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d; then
  if timeout 60 python3 -c "$check"; then
    MPS=on
  else
    echo quit | timeout 10 nvidia-cuda-mps-control
    sleep 2
  fi
fi
echo "MPS: $MPS" | tee "$OUT/mps.txt"
[ $MPS = on ] || [ "$DEVICE" != cuda ] || timeout 60 python3 -c "$check" || exit 1

mkdir -p runs/rf && cp -n gpu/rf/*.safetensors runs/rf/ 2>/dev/null  # fold forests, if carried
t0=$(date +%s)
python3 research/experiments/gpu_sweep.py --recipes "$RECIPES" --no-eval --half-folds $SPLITS \
  --deadline "$DEADLINE" --device "$DEVICE" --out "$SWEEP"
echo "training took $(( $(date +%s) - t0 )) s"
[ $MPS = on ] && echo quit | timeout 10 nvidia-cuda-mps-control
cp "$OUT/mps.txt" "$SWEEP/"
export ROCKSEG_THREADS=${ROCKSEG_THREADS:-$(nproc)}
if [ -n "${BAGS:-}" ]; then  # several bags: "NAME=PATTERN;NAME=PATTERN", each with MEMBERS
  : > "$SWEEP/heldout.txt"
  IFS=';' read -ra bags <<< "$BAGS"
  for b in "${bags[@]}"; do
    for t in window now; do
      ROCKSEG_TEXTURE=$t python3 research/experiments/heldout_bag.py "${b#*=}" --members "$MEMBERS" \
        --name "${b%%=*} (texture: $t)" --json "$SWEEP/heldout_${b%%=*}$([ $t = now ] && echo _now).json" \
        2>&1 | tee -a "$SWEEP/heldout.txt"
    done
  done
else
  : > "$SWEEP/heldout.txt"
  for t in window now; do
    ROCKSEG_TEXTURE=$t python3 research/experiments/heldout_bag.py $HELDOUT --members "$MEMBERS" \
      --name "$NAME (texture: $t)" --json "$SWEEP/heldout$([ $t = now ] && echo _now).json" \
      2>&1 | tee -a "$SWEEP/heldout.txt"
  done
fi
echo "training and scoring took $(( $(date +%s) - t0 )) s"
(cd "$SWEEP" && tar czf "$OUT/logs.tgz" logs jobs.json heldout*.json heldout.txt mps.txt)
[ -z "$SPLITS" ] && (cd "$SWEEP" && tar cf - models/*_full.safetensors) | split -b 15M - "$OUT/models.tar."
[ "${FOLDS_BACK:-0}" = 1 ] && (cd "$SWEEP" && tar cf - folds/*.safetensors) | split -b 15M - "$OUT/folds.tar."
ls -l "$OUT"
exit 0
