#!/bin/bash
# Leave-one-image-out on the CPU: one focal-dice U-Net per fold with the recipe of the
# shipped bag's members (as cpu_folds.sh) but the training images resampled to
# PX nm per pixel (default 8, finer than the 11.16 nm of the default), written to
# ${OUT:-runs/cpufold}/P${PX}_{0,1,2}.safetensors. About 18 minutes per fold on two cores. Then:
#   python benchmarks/experiments/resampling.py "runs/cpufold/P8_{i}.safetensors" --no-forest --aa-only
set -e
source .venv/bin/activate
PX=${PX:-8}
mkdir -p "${OUT:-runs/cpufold}"
T=../shared/data/shale-sem/train
for i in 1 2 3; do
  rest=$(for j in 1 2 3; do if [ $j != $i ]; then echo $j; fi; done)
  imgs=$(for j in $rest; do echo $T/images/$j.tif; done)
  labs=$(for j in $rest; do echo $T/labels/$j.tif; done)
  rockseg train --method unet --patience 0 --seed 0 --steps 2600 --threads 2 --pixel-size $PX --images $imgs --labels $labs \
      --out ${OUT:-runs/cpufold}/P${PX}_$((i-1)).safetensors > ${OUT:-runs/cpufold}/P${PX}_$((i-1)).log 2>&1
done
echo done
