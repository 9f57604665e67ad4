#!/bin/bash
# Leave-one-image-out on the CPU: one focal-dice U-Net per fold with the recipe of the
# shipped bag's members (no early stopping, 2,600 steps, seed 0) plus extra training
# arguments ARGS (default none), written to ${OUT:-runs/cpufold}/${NAME:-U0}_{0,1,2}.safetensors
# (fold i holds out training image i+1). Run from the repository root; about 16-19 minutes
# per fold on two cores (THREADS, default 2: torch threads of each run). TRAIN: another folder
# with images/ and labels/ named 1-3.tif (default: the sample training data).
#   research/experiments/cpu_folds.sh                                   # the members' recipe
#   NAME=P8 ARGS="--pixel-size 8" research/experiments/cpu_folds.sh     # training images at 8 nm
#   NAME=B1 ARGS="--blur 1" research/experiments/cpu_folds.sh           # sharpness augmentation
# BASE replaces the recipe itself, e.g. the training defaults at a 10-minute budget:
#   NAME=DEF BASE="--minutes 10" research/experiments/cpu_folds.sh
# Then:
#   python research/experiments/heldout_tta.py "runs/cpufold/U0_{i}.safetensors"
#   python research/experiments/resampling.py "runs/cpufold/P8_{i}.safetensors" --no-forest --aa-only
set -e
source .venv/bin/activate
NAME=${NAME:-U0}
mkdir -p "${OUT:-runs/cpufold}"
T=${TRAIN:-../shared/data/shale-sem/train}
for i in 1 2 3; do
  rest=$(for j in 1 2 3; do if [ $j != $i ]; then echo $j; fi; done)
  imgs=$(for j in $rest; do echo $T/images/$j.tif; done)
  labs=$(for j in $rest; do echo $T/labels/$j.tif; done)
  rockseg train ${BASE:---method unet --patience 0 --seed 0 --steps 2600} --threads ${THREADS:-2} ${ARGS:-} \
      --images $imgs --labels $labs \
      --out ${OUT:-runs/cpufold}/${NAME}_$((i-1)).safetensors > ${OUT:-runs/cpufold}/${NAME}_$((i-1)).log 2>&1
done
echo done
