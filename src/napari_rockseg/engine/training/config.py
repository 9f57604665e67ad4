"""What a training run is asked to do: the method, its budget and its settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import GREY_LEVEL, METHODS, TRAIN

__all__ = ["METHODS", "TrainConfig"]


def _d(name: str):
    """The default of a training option (engine/options.py, the one source of defaults)."""
    return TRAIN[name].default


@dataclass
class TrainConfig:
    method: str = _d("method")
    tile: int = _d("tile")
    batch_size: int = _d("batch_size")
    loss: str = _d("loss")
    #: focal alpha: binary members weight positives by alpha (scalar or one per
    #: class); multi-class losses weight class c by alpha[c] (None: all 1)
    alpha: float | list | None = None
    gamma: float = _d("gamma")
    steps: int | None = _d("steps")
    epochs: int | None = _d("epochs")
    steps_per_epoch: int = 100
    minutes: float | None = _d("minutes")
    lr: float = _d("lr")
    weight_decay: float = 1e-4
    width: int = _d("width")
    depth: int = _d("depth")
    up: str = "bilinear"
    eval_every: int = 50
    patience: int | None = _d("patience")
    balance: float = _d("balance")
    cutout: float | None = _d("cutout")
    sampling: str = "random"
    stride: int | None = _d("stride")
    scale_jitter: float = 0.15
    #: largest standard deviation of the white noise added to each crop (median-normalised
    #: units, full scale 4: 0.02 = 1.3 grey levels of an 8-bit image); CLI --noise in grey levels
    noise: float = _d("noise") * GREY_LEVEL
    #: largest Gaussian blur sigma (pixels) of the sharpness augmentation; 0: off
    blur: float = _d("blur")
    #: share of the crops made to look like a 1.4-2.5x lower magnification, enlarged back as
    #: prediction enlarges such images (tiles.lower_magnification); 0: off
    lowmag: float = _d("lowmag")
    #: detector-contrast augmentation: each crop's contrast is scaled by exp(u), u uniform in
    #: +-``contrast`` (0.2: 0.82-1.22x)
    contrast: float = _d("contrast")
    #: resample training images to this pixel size (nm); None: the images' own (their median
    #: where they differ); 0: every image as it is, whatever its pixel size
    pixel_size_nm: float | None = _d("pixel_size")
    normalization: str = _d("normalization")
    #: share of the image blocks held back to validate (and keep the best-validated weights);
    #: 0: train on every pixel and keep the weights of the lowest training loss (with ``ema``,
    #: the final average)
    val_fraction: float = _d("val_fraction")
    #: decay of an exponential moving average of the weights (and batch-norm statistics) that
    #: is validated and kept instead of the raw weights; 0: off
    ema: float = _d("ema")
    val_block: int = 256
    #: share of the budget that the synthesizer gets (ensemble only)
    synth_share: float = _d("synth_share")
    #: U-Nets in a bag (method "bag"), trained one after the other, each for 1/members of the budget
    members: int = _d("members")
    #: a new bag's probabilities are blended with a random forest fitted on the same images,
    #: at this weight (0: no forest); a fine-tuned bag keeps the forest it had
    forest_weight: float = _d("forest_weight")
    #: trees of the random forest (about 0.13 MB each): None = 60 for method "rf", 20 for a
    #: bag's forest (blended, 20 trees scored as 60 on held-out images)
    trees: int | None = _d("trees")
    seed: int = _d("seed")
    device: str = _d("device")
    #: arithmetic of the training steps (predict.PRECISIONS): auto = float16 with loss scaling
    #: on CUDA, bfloat16 on CPUs with native bfloat16, float32 elsewhere; fp32 / bf16 force one
    precision: str = _d("precision")
    checkpoint: str | None = None
    checkpoint_every: int = _d("checkpoint_every")
    data_bar: int | None = _d("data_bar")
    #: the following apply to fine-tuning (``init``), chosen on held-out images with simulated
    #: corrections (README, "Correcting a segmentation"); learning rate when fine-tuning
    finetune_lr: float = _d("finetune_lr")
    #: unlabelled pixels that the starting model predicts with at least this probability are
    #: trained on with its own prediction, so that it keeps what was not corrected (0: only
    #: the painted pixels)
    keep_confident: float = _d("keep_confident")
    #: with keep_confident: share of the training crops centred on the painted pixels, so that
    #: a few strokes weigh more against the kept predictions (0: crops drawn as from scratch)
    stroke_share: float = _d("stroke_share")
    #: keep the starting model's batch-norm statistics instead of re-estimating them on the
    #: new images' crops (worse on held-out images: off)
    freeze_norm: bool = False

    def total_steps(self) -> int | None:
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return self.epochs * self.steps_per_epoch
        return None
