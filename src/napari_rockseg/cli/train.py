"""`rockseg train`: fit a model on images and painted labels; data-parallel with torchrun."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..engine.errors import RockSegError
from ._common import _bar, _load, _scheme


def cmd_train(args):
    import torch

    from ..engine.io import check_writable
    from ..engine.models import bundle
    from ..engine.training.config import TrainConfig
    from ..engine.training.data import load_training_pairs, pairs_in_dir
    from ..engine.training.distributed import end_distributed, init_distributed
    from ..engine.training.trainer import Trainer

    scheme = _scheme(args.classes)
    if args.data_dir:
        image_paths, label_paths = pairs_in_dir(args.data_dir)
        source = str(args.data_dir)
    elif args.images and args.labels:
        image_paths, label_paths = args.images, args.labels
        source = ", ".join(map(str, image_paths))
    else:
        raise RockSegError("give --data-dir DIR, or --images A.tif ... with --labels A.tif ...")
    out = Path(args.out)
    check_writable(out)  # fail now, not after hours of training
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, device = init_distributed(args.device)
    images, labels = load_training_pairs(image_paths, label_paths, scheme)
    init = _load(args.init) if args.init else None
    alpha = None
    if args.alpha:
        alpha = [float(a) for a in args.alpha.split(",")]
        alpha = alpha[0] if len(alpha) == 1 else alpha
    cfg = TrainConfig(
        method=args.method, tile=args.tile, batch_size=args.batch_size, loss=args.loss, alpha=alpha,
        gamma=args.gamma, steps=args.steps, epochs=args.epochs, minutes=args.minutes, width=args.width,
        depth=args.depth, cutout=args.cutout, balance=args.balance, sampling="grid" if args.stride else "random",
        stride=args.stride, pixel_size_nm=None if args.pixel_size == 0 else args.pixel_size,
        seed=args.seed, device=device, data_bar=args.data_bar,
        checkpoint=args.checkpoint or (str(out) + ".ckpt.pt" if args.method in ("ensemble", "unet", "bag") else None),
        checkpoint_every=args.checkpoint_every, lr=args.lr, finetune_lr=args.finetune_lr,
        keep_confident=args.keep_confident, stroke_share=args.stroke_share, normalization=args.normalization,
        synth_share=args.synth_share, patience=args.patience or None, blur=args.blur, members=args.members,
        trees=args.trees, forest_weight=args.forest_weight, precision=args.precision, ema=args.ema,
        val_fraction=args.val_fraction, lowmag=args.lowmag, contrast=args.contrast,
        **({} if args.noise is None else {"noise": args.noise * 4.0 / 255}),
    )
    import shlex

    trainer = Trainer(cfg, images, labels, scheme, init=init, resume=args.resume,
                            data_source=source, command=shlex.join(["rockseg", *args.argv]))
    for note in trainer.notes:
        print(f"note: {note}", file=sys.stderr)
    t0 = time.perf_counter()
    interrupted = False
    try:
        model = _bar(trainer.run(), f"train {args.method}", quiet=rank != 0)
    except KeyboardInterrupt:
        interrupted = True
        model = trainer.result()
        if model is None:
            raise RockSegError("training interrupted before anything was learned; nothing written") from None
        print("interrupted: saving the best model validated so far", file=sys.stderr)
    end_distributed(wait=not interrupted)
    if rank != 0:
        return 0
    bundle.save_model(model, out, half=args.half)
    print(f"wrote {out} ({args.method}, {time.perf_counter() - t0:.0f} s)")
    scored = [h for h in trainer.history if "miou" in h]
    for stage in dict.fromkeys(h["stage"] for h in scored):  # each stage kept its own best weights
        best = max((h for h in scored if h["stage"] == stage), key=lambda h: h.get("score", h["miou"]))
        print(f"best validation mIoU {best['miou']:.3f} at {best['stage']} step {best['step']}")
    return 0




def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model (ensemble, U-Net, bag of U-Nets, forest or LDA)")
    t.add_argument("--method", choices=["ensemble", "unet", "bag", "lda", "rf"], default="unet",
                   help="unet (default: one focal-dice U-Net, best on held-out images at a 10-minute "
                        "budget), ensemble (Paw-Net stack), bag (several U-Nets trained in turn, "
                        "probabilities averaged), lda (original baseline), rf (random forest on "
                        "multiscale features)")
    t.add_argument("--members", type=int, default=4,
                   help="U-Nets in a bag (--method bag); each trains for this share of the budget")
    t.add_argument("--trees", type=int,
                   help="trees of the random forest (--method rf: 60; a bag's forest: 20)")
    t.add_argument("--forest-weight", type=float, default=0.2,
                   help="--method bag: blend the bag's probabilities with a random forest fitted on the "
                        "same images at this weight (0: no forest; default 0.2, chosen on held-out images)")
    t.add_argument("--data-dir", type=Path, help="folder with images/ and labels/ (matching names)")
    t.add_argument("--images", nargs="+", type=Path)
    t.add_argument("--labels", nargs="+", type=Path)
    t.add_argument("--out", required=True, type=Path, help="model file to write (.safetensors)")
    t.add_argument("--classes", type=Path, help="class scheme JSON (default: shale)")
    t.add_argument("--tile", type=int, default=128)
    t.add_argument("--stride", type=int, help="walk the original's stride grid instead of random crops")
    t.add_argument("--cutout", type=float, help="drop tiles where one class exceeds this fraction")
    t.add_argument("--balance", type=float, default=0.5,
                   help="share of the training crops centred on a pixel of a class drawn uniformly among "
                        "the classes present, so that rare classes are seen (default 0.5; 0: uniform crops)")
    t.add_argument("--loss", choices=["focal-dice", "focal-dice-lovasz", "focal", "ce", "dice", "lovasz"],
                   default="focal-dice",  # losses.LOSSES (no torch for --help)
                   help="multi-class loss (losses.multiclass_loss); focal-dice-lovasz adds the "
                        "Lovasz-softmax IoU loss")
    t.add_argument("--alpha", help="focal alpha: one value, or one per class separated by commas")
    t.add_argument("--gamma", type=float, default=2.0)
    t.add_argument("--epochs", type=int, help="epochs of 100 steps")
    t.add_argument("--steps", type=int)
    t.add_argument("--minutes", type=float, help="time budget (default 2000 steps when nothing is given)")
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--width", type=int, default=16)
    t.add_argument("--depth", type=int, default=4)
    t.add_argument("--lr", type=float, default=2e-3, help="learning rate from scratch")
    t.add_argument("--finetune-lr", type=float, default=2e-3, help="learning rate when fine-tuning (--init)")
    t.add_argument("--stroke-share", type=float, default=0.5,
                   help="fine-tuning with --keep-confident: share of the crops centred on the labelled pixels")
    t.add_argument("--keep-confident", type=float, default=0.9,
                   help="fine-tuning on sparse labels: unlabelled pixels the --init model predicts with at "
                        "least this probability are trained on with its prediction (0: labelled pixels only)")
    t.add_argument("--synth-share", type=float, default=0.3,
                   help="share of the time or step budget that the ensemble's synthesizer gets")
    t.add_argument("--patience", type=int, default=0,
                   help="stop a stage after this many validations without a better score (default 0: "
                        "never; the best validated weights are kept)")
    t.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="validate and keep an exponential moving average of the weights with this decay "
                        "(e.g. 0.999; default 0: off)")
    t.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the image blocks held back to validate (default 0.2); 0: train on every "
                        "pixel and keep the weights of the lowest training loss (with --ema, the final average)")
    t.add_argument("--blur", type=float, default=0.0,
                   help="sharpness augmentation: half the training crops are blurred with a Gaussian of "
                        "sigma up to this many pixels (0: off)")
    t.add_argument("--lowmag", type=float, default=0.0,
                   help="lower-magnification augmentation: this share of the training crops is shrunk 1.4-2.5x "
                        "(noise restored) and enlarged back as prediction does (0: off)")
    t.add_argument("--contrast", type=float, default=0.2, metavar="R",
                   help="detector-contrast augmentation: each training crop's contrast is scaled by up to "
                        "exp(+-R) (default 0.2: 0.82-1.22x)")
    t.add_argument("--noise", type=float, default=None, metavar="S",
                   help="noise augmentation: white noise of sigma up to S grey levels of an 8-bit image "
                        "(1/255 of the full scale) added to each training crop (default 1.3)")
    t.add_argument("--pixel-size", type=float, default=11.16,
                   help="resample training images to this pixel size in nm (0: keep as they are)")
    t.add_argument("--normalization", choices=["median", "percentile"], default="median",
                   help="per-image intensity normalisation: median (shift the median grey to 0, keep the "
                        "microscope's contrast; default, chosen on held-out images) or percentile (stretch "
                        "the 0.5-99.5 %% range)")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="arithmetic of the training steps: auto = float16 on CUDA, bfloat16 on "
                        "CPUs with native bfloat16 (AVX512-BF16/AMX), else float32")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint", type=Path, help="checkpoint file (default: OUT.ckpt.pt)")
    t.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    t.add_argument("--resume", type=Path, help="continue a run from its checkpoint")
    t.add_argument("--init", type=Path, help="fine-tune this model bundle")
    t.add_argument("--data-bar", type=int, help="rows of data bar at the bottom (default: detect; 0: none)")
    t.add_argument("--half", action="store_true", help="store the weights as float16 (half the file size)")
    t.set_defaults(func=cmd_train)
