"""Training recipes compared on the leave-one-image-out folds, all trained at once on one
GPU: every recipe is trained with the ``rockseg train`` command on each fold (two of the
three training images) and on all three, as concurrent processes, for the same time
budget; then each fold model is scored on its held-out image natively and zoomed 2.5x,
bags (probabilities averaged over several models) are scored the same way, and the
all-image models are scored on the test image.  Written for a lent GPU machine, where
16 CPU cores feed the processes; it also runs (slowly) on a CPU.

    python research/experiments/gpu_sweep.py --minutes 5 --out runs/sweep [--recipes E,U0] [--device cuda]

The README's table came from two runs on one H200 (16 CPU cores), the second on the
same machine while the first's models were still there:

    python research/experiments/gpu_sweep.py --minutes 5.5 --deadline 6.2 --device cuda --out /tmp/sweep
    python research/experiments/gpu_sweep.py --minutes 3.2 --deadline 3.7 --recipes U2,U3 --device cuda --out /tmp/sweep
    python research/experiments/gpu_sweep.py --eval-only --recipes E,U0,U1,W,U2,U3 --device cuda --out /tmp/sweep

A later session added fixed-step recipes: two 6,000-step U-Nets on every split, then the
fold models of the shipped members' recipe (seeds 0-3 at 2,600 / 3,600 steps), scored on
the CPU after copying the fold models to runs/gpu2/folds and the all-image models to
runs/gpu2/models (S0..S3_full = the shipped U0..U3; research/results/gpu_sweep_h200_long.json):

    python research/experiments/gpu_sweep.py --recipes L4,L5 --minutes 6 --deadline 6.3 --device cuda --out /tmp/sweep --half-folds
    python research/experiments/gpu_sweep.py --recipes S0,S1,S2,S3 --folds-only --no-eval --half-folds --deadline 5 --device cuda --out /tmp/sweep
    python research/experiments/gpu_sweep.py --eval-only --recipes S0,S1,S2,S3,L4,L5 --out runs/gpu2 --device cpu

Writes OUT/results.md (the tables), OUT/results.json, OUT/jobs.json (steps and seconds of
each training run) and the all-image models as float16 bundles in OUT/models/.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _folds import DATA, held_out_views, images, probabilities, score

from napari_rockseg.engine import bundle, train
from napari_rockseg.engine.classes import SHALE

#: the shipped bag's members' step counts (seeds 0-5; S0-S3, L4, L5 below)
MEMBER_STEPS = (2600, 2600, 3600, 3600, 6000, 6000)


def shipped_members(prefix: str, extra: str) -> dict:
    """Recipes ``prefix``0-5: the shipped members' recipe with the options ``extra``."""
    return {f"{prefix}{k}": f"--method unet --patience 0 --seed {k} --steps {n} {extra}"
            for k, n in enumerate(MEMBER_STEPS)}


def screen(prefix: str, extra: str) -> dict:
    """Recipes ``prefix``0-1: the shipped members' first two (seeds 0, 1, 2,600 steps) with ``extra``."""
    return {k: v for k, v in shipped_members(prefix, extra).items() if k[len(prefix):] in ("0", "1")}


#: recipe name -> ``rockseg train`` options (besides data, budget, device and output)
RECIPES = {
    "E": "--method ensemble --synth-share 0.2 --patience 0",
    "U0": "--method unet --patience 0 --seed 0",
    "U1": "--method unet --patience 0 --seed 1",
    "W": "--method unet --patience 0 --width 32 --tile 256",
    "U2": "--method unet --patience 0 --seed 2",
    "U3": "--method unet --patience 0 --seed 3",
    # fixed step budgets (the shipped members' step counts, and longer members)
    "S0": "--method unet --patience 0 --seed 0 --steps 2600",
    "S1": "--method unet --patience 0 --seed 1 --steps 2600",
    "S2": "--method unet --patience 0 --seed 2 --steps 3600",
    "S3": "--method unet --patience 0 --seed 3 --steps 3600",
    "L4": "--method unet --patience 0 --seed 4 --steps 6000",
    "L5": "--method unet --patience 0 --seed 5 --steps 6000",
    # the shipped members' recipe (S0-S3, L4, L5) with the sharpness augmentation
    **shipped_members("B", "--blur 1"),
    # the same with the Lovasz-softmax IoU loss added to focal-dice
    **shipped_members("Z", "--loss focal-dice-lovasz"),
    # the same with a moving average of the weights (decay 0.999) kept instead of the best
    # validated weights, and no validation blocks held back: every labelled pixel trains
    **shipped_members("M", "--ema 0.999 --val-fraction 0"),
    # the moving average alone: validation blocks held back as in the shipped recipe
    **shipped_members("A", "--ema 0.999"),
    # the loss's and the sampler's settings, screened with two seeds each at the S0/S1 recipe
    # (2,600 steps; compare with the bag S0+S1 trained in the same run): focal gamma 1 and 3
    # (shipped: 2), per-class focal weights ~ 1/sqrt(class share of the training crops)
    # normalised to a mean of 1 over their pixels (shipped: all 1), and 80 % of the crops
    # centred on a class drawn uniformly (shipped: 50 %)
    **screen("Q", "--gamma 1"),
    **screen("R", "--gamma 3"),
    **screen("C", "--alpha 0.7,2.1,5.1,4.1"),
    **screen("K", "--balance 0.8"),
    # the shipped members' recipe with half the learning rate (1e-3): two seeds of one U-Net per
    # fold and their bag of two beat the shipped settings on the CPU; a bag of three only on the
    # shrunk views (README)
    **shipped_members("H", "--lr 1e-3"),
    # the shipped members' recipe with the detector-contrast augmentation widened from
    # exp(+-0.2) to exp(+-0.5): on the CPU, one U-Net per fold (two seeds) kept its held-out
    # scores (-0.004) and gained +0.059 on held-out images of another contrast (README,
    # "Detector contrast")
    **shipped_members("G", "--contrast 0.5"),
}
#: bags scored besides the recipes: members' probabilities averaged
BAGS = {"U0+U1": ["U0", "U1"], "U2+U3": ["U2", "U3"], "U0+U1+U2+U3": ["U0", "U1", "U2", "U3"], "U0+U1+W": ["U0", "U1", "W"], "E+U0+U1": ["E", "U0", "U1"],
        "L4+L5": ["L4", "L5"], "S0+S1+S2+S3": ["S0", "S1", "S2", "S3"],
        "S0+S1+S2+S3+L4+L5": ["S0", "S1", "S2", "S3", "L4", "L5"],
        "B0+...+B5": ["B0", "B1", "B2", "B3", "B4", "B5"],
        "Z0+...+Z5": ["Z0", "Z1", "Z2", "Z3", "Z4", "Z5"],
        "M0+...+M5": ["M0", "M1", "M2", "M3", "M4", "M5"],
        "A0+...+A5": ["A0", "A1", "A2", "A3", "A4", "A5"]}
FUSIONS = ("mean", "stacked", "binary")
SPLITS = ["0", "1", "2", "full"]  # --folds-only drops "full"


def job_command(recipe: str, split: str, minutes: float, device: str, out: Path, half_folds: bool = False) -> list[str]:
    """The ``rockseg train`` command of one recipe on one split (a recipe with ``--steps`` gets no time budget)."""
    budget = [] if "--steps" in RECIPES[recipe] else ["--minutes", f"{minutes:g}"]
    args = ["train", *RECIPES[recipe].split(), *budget, "--device", device,
            "--threads", "1", "--checkpoint-every", "5000", "--out", str(out)]
    if split == "full" or half_folds:
        args += ["--half"]
    if split == "full":
        args += ["--data-dir", os.path.relpath(DATA / "train")]
    else:
        rest = [j for j in range(len(images)) if j != int(split)]
        args += ["--images", *[os.path.relpath(images[j].path) for j in rest],
                 "--labels", *[os.path.relpath(DATA / "train" / "labels" / images[j].path.name) for j in rest]]
    return [sys.executable, "-c", "import sys; from napari_rockseg.cli import main; sys.exit(main())", *args]


def train_all(recipes, minutes, device, out: Path, deadline: float, half_folds: bool = False,
              splits=SPLITS) -> dict:
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    procs = {}
    for r in recipes:
        for s in splits:
            path = out / ("models" if s == "full" else "folds") / f"{r}_{s}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            cmd = job_command(r, s, minutes, device, path, half_folds)
            with open(out / "logs" / f"{r}_{s}.log", "w") as log:  # the child keeps its own handle
                procs[(r, s)] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), path,
                                 time.perf_counter(), cmd)
    jobs, interrupted = {}, set()
    while procs:
        for key, (p, path, t0, cmd) in list(procs.items()):
            if p.poll() is None and time.time() > deadline and key not in interrupted:
                p.send_signal(signal.SIGINT)  # once: the run saves the best model validated so far
                interrupted.add(key)
            if p.poll() is None and time.time() > deadline + 45:
                p.kill()
            if p.poll() is not None:
                ok = p.returncode == 0 and path.exists()
                info = {"ok": ok, "seconds": round(time.perf_counter() - t0, 1), "rc": p.returncode,
                        "command": "rockseg " + " ".join(cmd[3:])}
                if ok:
                    prov = bundle.load_model(path).info.provenance
                    hist = prov.get("settings", {})
                    info["steps"] = prov.get("steps")
                    info["tile"], info["width"] = hist.get("tile"), hist.get("width")
                jobs["_".join(key)] = info
                print(f"job {key}: {info}", flush=True)
                del procs[key]
        time.sleep(2)
    return jobs


def evaluate_all(recipes, out: Path, device: str) -> dict:
    """mIoU and per-class IoU of every recipe, fusion and bag: held-out folds and test."""
    results = {}
    test_img, test_lab = train.load_training_pairs(*train.pairs_in_dir(DATA / "test"), SHALE)
    from napari_rockseg.engine.io import resolve_data_bar

    tb = resolve_data_bar(test_img[0].data, None)
    test_view = ("test", test_img[0], test_lab[0], tb, test_img[0].data[: test_img[0].data.shape[0] - tb])
    for split in ["0", "1", "2", "full"]:
        views = [test_view] if split == "full" else held_out_views(int(split))
        base = out / ("models" if split == "full" else "folds")
        for tag, img, lab, b, region in views:
            probs = {}
            for r in recipes:
                path = base / f"{r}_{split}.safetensors"
                if not path.exists():
                    continue
                model = bundle.load_model(path)
                if model.kind == "ensemble":
                    for fusion in FUSIONS:
                        model.fusion = fusion
                        probs[r if fusion == "mean" else f"{r}:{fusion}"] = probabilities(model, img, region, device=device)
                else:
                    probs[r] = probabilities(model, img, region, device=device)
            for name, members in BAGS.items():
                if all(m in probs for m in members):
                    probs[name] = sum(probs[m] for m in members) / len(members)
            for name, p in probs.items():
                res = score(p, img, lab, b)
                results.setdefault(name, {})[f"{split}:{tag}"] = {"miou": float(res["miou"]),
                                                                  "iou": [float(v) for v in res["iou"]]}
                print(f"{name:10s} split {split} {tag:6s} {res['miou']:.3f} {np.round(res['iou'], 3)}", flush=True)
    return results


def table(results: dict, jobs: dict) -> str:
    lines = [("| recipe | held-out 1 / 2 / 3 native | mean | held-out 1 / 2 / 3 zoomed 2.5x | mean | "
              "test mIoU | test mineral / organic / pores / clay | steps (all images) |"),
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        nat = [r.get(f"{i}:native", {}).get("miou", np.nan) for i in range(3)]
        zoo = [r.get(f"{i}:zoom", {}).get("miou", np.nan) for i in range(3)]
        t = r.get("full:test")
        test = (f"{t['miou']:.3f} | {' / '.join(f'{v:.3f}' for v in t['iou'])}") if t else " | "
        steps = jobs.get(f"{name}_full", {}).get("steps", "")
        lines.append(f"| {name} | {' / '.join(f'{v:.3f}' for v in nat)} | **{np.mean(nat):.3f}** | "
                     f"{' / '.join(f'{v:.3f}' for v in zoo)} | **{np.mean(zoo):.3f}** | {test} | {steps} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0, help="training budget of every run")
    p.add_argument("--out", type=Path, default=Path("runs/sweep"))
    p.add_argument("--recipes", default="E,U0,U1,W", help="comma-separated names from RECIPES")
    p.add_argument("--device", default="auto")
    p.add_argument("--deadline", type=float, default=None, help="interrupt training runs after this many minutes (they save their best model)")
    p.add_argument("--eval-only", action="store_true", help="score the models already in OUT")
    p.add_argument("--half-folds", action="store_true", help="save the fold models as float16 too (smaller to copy)")
    p.add_argument("--folds-only", action="store_true", help="train the fold models only (not on all images)")
    p.add_argument("--no-eval", action="store_true", help="train only (score later with --eval-only)")
    args = p.parse_args(argv)
    recipes = args.recipes.split(",")
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    if device == "auto":
        device = "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = {}
    if not args.eval_only:
        deadline = time.time() + 60 * (args.deadline or args.minutes * 1.5 + 1)
        jobs = train_all(recipes, args.minutes, device, args.out, deadline, args.half_folds,
                         SPLITS[:3] if args.folds_only else SPLITS)
        (args.out / "jobs.json").write_text(json.dumps(jobs, indent=1))
    elif (args.out / "jobs.json").exists():
        jobs = json.loads((args.out / "jobs.json").read_text())
    if args.no_eval:
        return 0
    results = evaluate_all(recipes, args.out, device)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    text = table(results, jobs)
    (args.out / "results.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
