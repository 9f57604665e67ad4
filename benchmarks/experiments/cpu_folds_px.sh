#!/bin/bash
# Leave-one-image-out on the CPU: one focal-dice U-Net per fold with the recipe of the
# shipped bag's members (as cpu_folds.sh) plus extra training arguments ARGS (default
# "--pixel-size 8": training images resampled to 8 nm instead of 11.16), written to
# ${OUT:-runs/cpufold}/${NAME:-P8}_{0,1,2}.safetensors. About 19 minutes per fold on two cores.
#   benchmarks/experiments/cpu_folds_px.sh                                 # 8 nm per pixel
#   NAME=B1 ARGS="--blur 1" benchmarks/experiments/cpu_folds_px.sh         # sharpness augmentation
# Then:
#   python benchmarks/experiments/resampling.py "runs/cpufold/P8_{i}.safetensors" --no-forest --aa-only
set -e
source .venv/bin/activate
NAME=${NAME:-P8}
ARGS=${ARGS:---pixel-size 8}
mkdir -p "${OUT:-runs/cpufold}"
T=../shared/data/shale-sem/train
for i in 1 2 3; do
  rest=$(for j in 1 2 3; do if [ $j != $i ]; then echo $j; fi; done)
  imgs=$(for j in $rest; do echo $T/images/$j.tif; done)
  labs=$(for j in $rest; do echo $T/labels/$j.tif; done)
  rockseg train --method unet --patience 0 --seed 0 --steps 2600 --threads 2 $ARGS --images $imgs --labels $labs \
      --out ${OUT:-runs/cpufold}/${NAME}_$((i-1)).safetensors > ${OUT:-runs/cpufold}/${NAME}_$((i-1)).log 2>&1
done
echo done
