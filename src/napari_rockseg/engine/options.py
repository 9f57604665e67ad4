"""The one source of the training and prediction options: default, type, range, unit and help.

``rockseg train`` / ``rockseg predict`` build their parsers from :data:`TRAIN` /
:data:`PREDICT` (``cli._common.add_arguments``) and validate with :func:`check_all`;
``TrainConfig`` takes its defaults from :data:`TRAIN`; the widgets read them.  Imports
nothing heavy, so ``rockseg --help`` loads no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import InputError

METHODS = ("unet", "bag", "ensemble", "rf", "lda")
#: training.losses.LOSSES, repeated here so that the parser needs no torch (a test keeps them equal)
LOSSES = ("focal-dice", "focal-dice-lovasz", "focal", "ce", "dice", "lovasz")
#: inference.device.PRECISIONS, repeated for the same reason
PRECISIONS = ("auto", "fp32", "bf16")
NORMALIZATIONS = ("median", "percentile")
#: plausible pixel sizes: 0.05 nm (below atomic resolution) to 1 mm (10^6 nm; coarser than any
#: micro-CT); anything outside is a unit mistake (µm for nm, m for nm) or a broken header
PIXEL_SIZE_RANGE = (0.05, 1e6)
#: TrainConfig.noise is in median-normalised units (full scale 4); the option in grey levels
#: of an 8-bit image (1/255 of the full scale)
GREY_LEVEL = 4.0 / 255


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    type: type
    help: str
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    @property
    def flag(self) -> str:
        """The option as the command line spells it."""
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        if self.min is None and self.max is None:
            return ""
        shut = ("", " (excluded)")
        lo = "" if self.min is None else f"{self.min:g}{shut[not self.min_inclusive]}"
        hi = "" if self.max is None else f"{self.max:g}{shut[not self.max_inclusive]}"
        if self.min is not None and self.max is not None:
            text = f"between {lo} and {hi}"
        elif self.min is not None:
            text = f"at least {lo}" if self.min_inclusive else f"above {self.min:g}"
        else:
            text = f"at most {hi}" if self.max_inclusive else f"below {self.max:g}"
        return text + (f" {self.unit}" if self.unit else "")

    def check(self, value):
        """``value`` if it is allowed, else an InputError that names the option and its range.
        None (not given) passes for options whose default is None."""
        if value is None:
            if self.default is None:
                return None
            raise InputError(f"{self.flag} needs a value ({self.range_text()})")
        if self.type is bool:
            return bool(value)
        if self.choices is not None:
            if value not in self.choices:
                raise InputError(f"{self.flag} must be {self.range_text()}, got {value!r}")
            return value
        if self.type in (int, float):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InputError(f"{self.flag} must be a number, got {value!r}") from None
            if self.type is int and (not math.isfinite(number) or number != int(number)):
                raise InputError(f"{self.flag} must be a whole number, got {value!r}")
            ok = math.isfinite(number)
            if ok and self.min is not None:
                ok = number >= self.min if self.min_inclusive else number > self.min
            if ok and self.max is not None:
                ok = number <= self.max if self.max_inclusive else number < self.max
            if not ok:
                got = f"{value:g}" if isinstance(value, float) else repr(value)
                raise InputError(f"{self.flag} must be {self.range_text()}, got {got}")
            return self.type(number) if self.type is int else number
        return value

    def help_text(self) -> str:
        parts = [self.help]
        rng = self.range_text()
        if rng and self.choices is None:
            parts.append(rng)
        if self.type is not bool and self.default is not None:
            parts.append(
                f"default {self.default:g}"
                if isinstance(self.default, float)
                else f"default {self.default}"
            )
        return "; ".join(parts).replace("%", "%%")


def _opts(*options: Option) -> dict[str, Option]:
    return {o.name: o for o in options}


def _o(name, default, type_, help_, **kw) -> Option:
    return Option(name, default, type_, help_, **kw)


#: options that training and prediction share, word for word
DEVICE = _o("device", "auto", str, "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
THREADS = _o("threads", None, int, "CPU threads for torch", min=1, max=1024)
DATA_BAR = _o(
    "data_bar",
    None,
    int,
    "rows of data bar at the bottom (not given: detect; 0: none)",
    unit="rows",
    min=0,
    max=1_000_000,
)


TRAIN: dict[str, Option] = _opts(
    _o(
        "method",
        "bag",
        str,
        "bag (default): focal-dice U-Nets trained in turn and averaged, blended with a random "
        "forest: the one method that beat the forest on both a shale SEM and a battery nano-CT "
        "set at 15 CPU minutes (research/README.md); unet: one focal-dice U-Net; ensemble: the "
        "Paw-Net stack; rf: random forest on multiscale features; lda: the grey-value baseline",
        choices=METHODS,
    ),
    _o(
        "members",
        4,
        int,
        "U-Nets in a bag (--method bag); each trains for this share of the budget",
        min=1,
        max=32,
    ),
    _o(
        "trees",
        None,
        int,
        "trees of the random forest (--method rf: 60; a bag's forest: 20)",
        min=1,
        max=2000,
    ),
    _o(
        "forest_weight",
        0.2,
        float,
        "--method bag: blend the bag's probabilities with a random forest fitted on the same "
        "images at this weight (0: no forest; chosen on held-out images)",
        min=0.0,
        max=1.0,
        max_inclusive=False,
    ),
    _o("tile", 128, int, "side of the training crops", unit="pixels", min=16, max=2048),
    _o(
        "stride",
        None,
        int,
        "walk a grid of crops with this stride instead of random crops",
        unit="pixels",
        min=1,
        max=4096,
    ),
    _o(
        "cutout",
        None,
        float,
        "drop crops where one class exceeds this fraction",
        min=0.0,
        max=1.0,
        min_inclusive=False,
    ),
    _o(
        "balance",
        0.5,
        float,
        "share of the crops centred on a pixel of a class drawn uniformly among the classes "
        "present, so that rare classes are seen (0: uniform crops)",
        min=0.0,
        max=1.0,
    ),
    _o(
        "loss",
        "focal-dice",
        str,
        "multi-class loss; focal-dice-lovasz adds the Lovasz-softmax IoU loss",
        choices=LOSSES,
    ),
    _o("alpha", None, str, "focal alpha: one value, or one per class separated by commas"),
    _o("gamma", 2.0, float, "focal gamma", min=0.0, max=10.0),
    _o("epochs", None, int, "epochs of 100 steps", min=1, max=1_000_000),
    _o("steps", None, int, "training steps (nothing given: 2000)", min=1, max=100_000_000),
    _o(
        "minutes",
        None,
        float,
        "time budget",
        unit="minutes",
        min=0.0,
        max=100000.0,
        min_inclusive=False,
    ),
    _o("batch_size", 8, int, "crops per training step", min=1, max=256),
    _o("width", 16, int, "channels of the U-Net's first level", min=1, max=256),
    _o(
        "depth",
        4,
        int,
        "poolings of the U-Net (the crops must be at least 2^depth pixels)",
        min=1,
        max=6,
    ),
    _o("lr", 0.002, float, "learning rate from scratch", min=0.0, max=1.0, min_inclusive=False),
    _o(
        "finetune_lr",
        0.002,
        float,
        "learning rate when fine-tuning (--init)",
        min=0.0,
        max=1.0,
        min_inclusive=False,
    ),
    _o(
        "stroke_share",
        0.5,
        float,
        "fine-tuning with --keep-confident: share of the crops centred on the labelled pixels",
        min=0.0,
        max=1.0,
    ),
    _o(
        "keep_confident",
        0.9,
        float,
        "fine-tuning on sparse labels: unlabelled pixels the --init model predicts with at least "
        "this probability are trained on with its prediction (0: labelled pixels only)",
        min=0.0,
        max=1.0,
    ),
    _o(
        "synth_share",
        0.3,
        float,
        "share of the budget that the ensemble's synthesizer gets",
        min=0.0,
        max=1.0,
        min_inclusive=False,
        max_inclusive=False,
    ),
    _o(
        "patience",
        0,
        int,
        "stop a stage after this many validations without a better score (0: never, measured best "
        "from scratch; the best validated weights are kept either way)",
        min=0,
        max=100_000,
    ),
    _o(
        "ema",
        0.0,
        float,
        "validate and keep an exponential moving average of the weights with this decay (e.g. "
        "0.999; 0: off)",
        min=0.0,
        max=1.0,
        max_inclusive=False,
    ),
    _o(
        "val_fraction",
        0.2,
        float,
        "share of the image blocks held back to validate; 0: train on every pixel and keep the "
        "weights of the lowest training loss",
        min=0.0,
        max=1.0,
        max_inclusive=False,
    ),
    _o(
        "blur",
        0.0,
        float,
        "sharpness augmentation: half the crops are blurred with a Gaussian of sigma up to this "
        "(0: off)",
        unit="pixels",
        min=0.0,
        max=10.0,
    ),
    _o(
        "lowmag",
        0.0,
        float,
        "lower-magnification augmentation: this share of the crops is shrunk 1.4-2.5x and "
        "enlarged back as prediction does (0: off)",
        min=0.0,
        max=1.0,
    ),
    _o(
        "contrast",
        0.2,
        float,
        "detector-contrast augmentation: each crop's contrast is scaled by up to exp(+-R) (0.2: "
        "0.82-1.22x)",
        min=0.0,
        max=2.0,
    ),
    _o(
        "noise",
        0.02 / GREY_LEVEL,
        float,
        "noise augmentation: white noise of sigma up to this added to each crop",
        unit="grey levels of an 8-bit image",
        min=0.0,
        max=1.0 / GREY_LEVEL,
    ),
    _o(
        "pixel_size",
        None,
        float,
        "resample the training images to this pixel size (not given: keep the images' own; images "
        "of one run at different pixel sizes go to their median; 0: use every image as it is)",
        unit="nm",
        min=PIXEL_SIZE_RANGE[0],
        max=PIXEL_SIZE_RANGE[1],
    ),
    _o(
        "normalization",
        "median",
        str,
        "per-image intensity normalisation: median (shift the median grey to 0, keep the "
        "microscope's contrast; chosen on held-out images) or percentile (stretch the 0.5-99.5 % "
        "range)",
        choices=NORMALIZATIONS,
    ),
    DEVICE,
    THREADS,
    _o(
        "precision",
        "auto",
        str,
        "arithmetic of the training steps: auto = float16 on CUDA, bfloat16 on CPUs with native "
        "bfloat16, else float32",
        choices=PRECISIONS,
    ),
    _o("seed", 0, int, "seed of every random choice", min=0, max=2**32 - 1),
    _o("checkpoint_every", 100, int, "steps between checkpoints", min=1, max=100_000_000),
    DATA_BAR,
    _o("half", False, bool, "store the weights as float16 (half the file size)"),
)

PREDICT: dict[str, Option] = _opts(
    _o(
        "tile",
        512,
        int,
        "largest tile; tiles shrink to fit the image",
        unit="pixels",
        min=32,
        max=8192,
    ),
    _o("overlap", 64, int, "overlap of neighbouring tiles", unit="pixels", min=0, max=2048),
    _o("batch_size", 2, int, "tiles per network call", min=1, max=256),
    DEVICE,
    _o(
        "precision",
        None,
        str,
        "network arithmetic: auto (default) = float16 on CUDA, bfloat16 on CPUs with native "
        "bfloat16 (1.5-1.9x faster, <0.03 % of labels change), else float32",
        choices=PRECISIONS,
    ),
    _o("tta", False, bool, "average the 8 flips/rotations (5-6x the time)"),
    _o(
        "rescale",
        True,
        bool,
        "resample the images to the model's pixel size (--no-rescale: segment them as they are)",
    ),
    _o(
        "pixel_size",
        None,
        float,
        "the images' pixel size, for files that do not record it (overrides their metadata)",
        unit="nm",
        min=PIXEL_SIZE_RANGE[0],
        max=PIXEL_SIZE_RANGE[1],
    ),
    DATA_BAR,
    _o("probabilities", False, bool, "also write class probabilities"),
    _o("uncertainty", False, bool, "also write a per-pixel entropy map"),
    THREADS,
)


def check_all(values: dict, options: dict[str, Option]) -> dict:
    """``values`` with every entry named in ``options`` checked (:meth:`Option.check`);
    entries the options do not know pass unchanged."""
    out = dict(values)
    for name, value in values.items():
        if name in options:
            out[name] = options[name].check(value)
    return out


def defaults(options: dict[str, Option]) -> dict[str, Any]:
    return {name: opt.default for name, opt in options.items()}
