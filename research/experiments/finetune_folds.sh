#!/bin/bash
# Continue training the shipped recipe's fold bags (the six fold U-Nets of
# runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_{i} + the fold's 20-tree forest at 0.2, combined into
# runs/foldbag/bag6rf_{i}.safetensors) on each fold's two training images with extra
# arguments ARGS, as `rockseg train --init BAG` fine-tunes the shipped default (each member
# gets STEPS/6 steps, the forest is kept). Output: ${OUT}/bag_{0,1,2}.safetensors; fold i
# holds out training image i+1. Run from the repository root (2 cores: ~2 min per 250 steps).
#   OUT=runs/ftblur ARGS="--blur 1" research/experiments/finetune_folds.sh
#   OUT=runs/ftplain research/experiments/finetune_folds.sh            # the control
# Then: python research/experiments/finetuned_bag.py runs/ftblur runs/ftplain
# INIT: another fold bag to start from, {i} = the fold (default: the shipped recipe's, above);
# THREADS: torch threads per run (default 2), STEPS: all members' steps together, e.g.
#   OUT=runs/ftlm/LM INIT="runs/ftlm/sss_{i}.safetensors" STEPS=750 THREADS=1 ARGS="--lowmag 0.3" \
#       research/experiments/finetune_folds.sh
set -e
source .venv/bin/activate
T=../shared/data/shale-sem/train
OUT=${OUT:?set OUT}
mkdir -p runs/foldbag "$OUT"
for i in 1 2 3; do
  f=$((i-1))
  init=$INIT
  [ -n "$init" ] || init="runs/foldbag/bag6rf_{i}.safetensors"
  init=$(echo "$init" | sed "s/{i}/$f/g")
  [ -n "$INIT" ] || [ -f runs/foldbag/bag6rf_$f.safetensors ] || rockseg combine runs/gpu2/folds/{S0,S1,S2,S3,L4,L5}_$f.safetensors \
      --forest runs/rf/rf20_$f.safetensors --forest-weight 0.2 --out runs/foldbag/bag6rf_$f.safetensors
  rest=$(for j in 1 2 3; do if [ $j != $i ]; then echo $j; fi; done)
  imgs=$(for j in $rest; do echo $T/images/$j.tif; done)
  labs=$(for j in $rest; do echo $T/labels/$j.tif; done)
  [ -f $OUT/bag_$f.safetensors ] && continue
  rockseg train --method bag --init $init --patience 0 --steps ${STEPS:-1500} \
    --finetune-lr ${LR:-5e-4} --threads ${THREADS:-2} ${ARGS:-} --images $imgs --labels $labs \
    --out $OUT/bag_$f.safetensors > $OUT/bag_$f.log 2>&1
done
echo done
