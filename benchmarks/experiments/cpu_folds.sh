#!/bin/bash
# Leave-one-image-out on the CPU: one focal-dice U-Net per fold with the recipe of the
# shipped bag's members (no early stopping, 2,600 steps, seed 0), written to
# ${OUT:-runs/cpufold}/U0_{0,1,2}.safetensors (fold i holds out training image i+1).
# Run from the repository root; about 18 minutes per fold on two cores. Then:
#   python benchmarks/experiments/heldout_tta.py "runs/cpufold/U0_{i}.safetensors"
set -e
source .venv/bin/activate
mkdir -p "${OUT:-runs/cpufold}"
T=../shared/data/shale-sem/train
for i in 1 2 3; do
  rest=$(for j in 1 2 3; do if [ $j != $i ]; then echo $j; fi; done)
  imgs=$(for j in $rest; do echo $T/images/$j.tif; done)
  labs=$(for j in $rest; do echo $T/labels/$j.tif; done)
  rockseg train --method unet --patience 0 --seed 0 --steps 2600 --threads 2 --images $imgs --labels $labs \
      --out ${OUT:-runs/cpufold}/U0_$((i-1)).safetensors > ${OUT:-runs/cpufold}/U0_$((i-1)).log 2>&1
done
echo done
