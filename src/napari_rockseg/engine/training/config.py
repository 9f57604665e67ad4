"""What a training run is asked to do: the method, its budget and its settings."""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("ensemble", "unet", "bag", "lda", "rf")


@dataclass
class TrainConfig:
    method: str = "ensemble"
    tile: int = 128
    batch_size: int = 8
    loss: str = "focal-dice"
    #: focal alpha: binary members weight positives by alpha (scalar or one per
    #: class); multi-class losses weight class c by alpha[c] (None: all 1)
    alpha: float | list | None = None
    gamma: float = 2.0
    steps: int | None = None
    epochs: int | None = None
    steps_per_epoch: int = 100
    minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 16
    depth: int = 4
    up: str = "bilinear"
    eval_every: int = 50
    patience: int | None = 12
    balance: float = 0.5
    cutout: float | None = None
    sampling: str = "random"
    stride: int | None = None
    scale_jitter: float = 0.15
    #: largest standard deviation of the white noise added to each crop (median-normalised
    #: units, full scale 4: 0.02 = 1.3 grey levels of an 8-bit image); CLI --noise in grey levels
    noise: float = 0.02
    #: largest Gaussian blur sigma (pixels) of the sharpness augmentation; 0: off
    blur: float = 0.0
    #: share of the crops made to look like a 1.4-2.5x lower magnification, enlarged back as
    #: prediction enlarges such images (tiles.lower_magnification); 0: off
    lowmag: float = 0.0
    #: detector-contrast augmentation: each crop's contrast is scaled by exp(u), u uniform in
    #: +-``contrast`` (0.2: 0.82-1.22x)
    contrast: float = 0.2
    #: resample training images to this pixel size (nm); None keeps them as they are
    pixel_size_nm: float | None = None
    normalization: str = "median"
    #: share of the image blocks held back to validate (and keep the best-validated weights);
    #: 0: train on every pixel and keep the weights of the lowest training loss (with ``ema``,
    #: the final average)
    val_fraction: float = 0.2
    #: decay of an exponential moving average of the weights (and batch-norm statistics) that
    #: is validated and kept instead of the raw weights; 0: off
    ema: float = 0.0
    val_block: int = 256
    #: share of the budget that the synthesizer gets (ensemble only)
    synth_share: float = 0.3
    #: U-Nets in a bag (method "bag"), trained one after the other, each for 1/members of the budget
    members: int = 4
    #: a new bag's probabilities are blended with a random forest fitted on the same images,
    #: at this weight (0: no forest); a fine-tuned bag keeps the forest it had
    forest_weight: float = 0.2
    #: trees of the random forest (about 0.13 MB each): None = 60 for method "rf", 20 for a
    #: bag's forest (blended, 20 trees scored as 60 on held-out images)
    trees: int | None = None
    seed: int = 0
    device: str = "auto"
    #: arithmetic of the training steps (predict.PRECISIONS): auto = float16 with loss scaling
    #: on CUDA, bfloat16 on CPUs with native bfloat16, float32 elsewhere; fp32 / bf16 force one
    precision: str = "auto"
    checkpoint: str | None = None
    checkpoint_every: int = 100
    data_bar: int | None = None
    #: the following apply to fine-tuning (``init``), chosen on held-out images with simulated
    #: corrections (README, "Correcting a segmentation"); learning rate when fine-tuning
    finetune_lr: float = 2e-3
    #: unlabelled pixels that the starting model predicts with at least this probability are
    #: trained on with its own prediction, so that it keeps what was not corrected (0: only
    #: the painted pixels)
    keep_confident: float = 0.9
    #: with keep_confident: share of the training crops centred on the painted pixels, so that
    #: a few strokes weigh more against the kept predictions (0: crops drawn as from scratch)
    stroke_share: float = 0.5
    #: keep the starting model's batch-norm statistics instead of re-estimating them on the
    #: new images' crops (worse on held-out images: off)
    freeze_norm: bool = False

    def total_steps(self) -> int | None:
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return self.epochs * self.steps_per_epoch
        return None
