"""The trainer: a run of one method as a generator of progress events.

A caller may stop iterating at any time (cancel); ``trainer.result()`` then gives the best
model validated so far.  The steps of each stage live in :mod:`.steps`; checkpoints are
written atomically and ``resume`` continues a killed run.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, replace

import numpy as np
import torch

from ..classes import ClassScheme
from ..errors import InputError
from ..events import Progress
from ..inference.device import resolve_device
from ..io import SEMImage, resolve_data_bar, valid_mask
from ..models.bundle import provenance
from ..models.ensemble import Bag, Ensemble, NetModel
from ..models.forest import PixelForest
from ..models.info import ModelInfo
from ..models.lda import GreyLDA
from ..models.nets import UNet
from .checkpoints import load_checkpoint
from .config import METHODS, TrainConfig
from .data import plan_pixel_size, prepare_items
from .distributed import dist_info
from .sampler import TileSampler, split_validation
from .steps import StageSteps
from .validation import quality_warnings


class Trainer(StageSteps):
    """Trains a model of ``config.method`` on images and label masks."""

    def __init__(
        self,
        config: TrainConfig,
        images: list[SEMImage],
        labels: list[np.ndarray],
        scheme: ClassScheme,
        init=None,
        resume: str | None = None,
        data_source: str = "",
        command: str | None = None,
    ):
        if config.method not in METHODS:
            raise InputError(f"unknown method {config.method!r}; choose {', '.join(METHODS)}")
        if not 0 <= config.forest_weight < 1:
            raise InputError(
                f"the forest's weight must be at least 0 and below 1, not {config.forest_weight}"
            )
        if not 0 <= config.ema < 1:
            raise InputError(
                f"the weight average's decay (--ema) must be at least 0 (off) and below 1, "
                f"not {config.ema}"
            )
        if not 0 <= config.balance <= 1:
            raise InputError(
                f"the share of class-centred crops (--balance) must be between 0 and 1, "
                f"not {config.balance}"
            )
        if not 0 <= config.noise <= 1:
            raise InputError(
                f"the noise augmentation's sigma must be between 0 (off) and 1 normalised unit "
                f"(64 grey levels of an 8-bit image; --noise), not {config.noise}"
            )
        if not 0 <= config.contrast <= 2:
            raise InputError(
                f"the contrast augmentation's range (--contrast) must be between 0 (off) and 2 "
                f"(exp(+-2): 0.14-7.4x), not {config.contrast}"
            )
        if not images:
            raise InputError("no training images given")
        if len(images) != len(labels):
            raise InputError(f"{len(images)} images but {len(labels)} label masks")
        self.config, self.images, self.labels, self.scheme = config, images, labels, scheme
        self.init, self.resume = init, resume
        self.data_source = data_source
        self.command = command
        self.model = None
        self.best_state = None
        self.weight_average = None
        self.class_freqs = None
        self.history: list[dict] = []
        #: steps each stage ran (recorded in the model's provenance)
        self.stage_steps: dict[str, int] = {}
        #: the step of each stage's best validation (the weights that are kept)
        self.best_steps: dict[str, int] = {}
        #: what the run did not achieve (a class not learned; far below a quick random forest),
        #: each with what to try; filled when run() finishes (:meth:`_quality`)
        self.warnings: list[str] = []
        self._stage: str | None = None
        self._finished = False
        self.notes = self._check_labels() + self._check_pixel_sizes()
        if init is not None:
            init_scheme = init.info.scheme
            if init_scheme.names != scheme.names:
                raise InputError(
                    f"the model to fine-tune has classes ({', '.join(init_scheme.names)}) but the "
                    f"labels use ({', '.join(scheme.names)})"
                )

    def _check_labels(self) -> list[str]:
        """Refuse labels a model cannot learn from; note classes nobody labelled."""
        present = set()
        for img, lab in zip(self.images, self.labels):
            if img.data.shape != lab.shape:
                raise InputError(
                    f"{img.stem}: image {img.data.shape} and labels {lab.shape} differ in size"
                )
            self.scheme.check_labels(lab, what=f"labels of {img.stem}")
            present |= set(np.unique(lab).tolist())
        present.discard(0)
        if not present:
            raise InputError(
                "the training labels are all unlabelled (0); paint or load some labels first"
            )
        if len(present) < 2:
            name = self.scheme.names[min(present) - 1]
            raise InputError(
                f"the training labels hold only one class ({name}); label at least two classes"
            )
        missing = [n for c, n in zip(self.scheme.labels, self.scheme.names) if c not in present]
        return [
            f"class '{n}' has no labelled pixel; the model will never predict it" for n in missing
        ]

    def _check_pixel_sizes(self) -> list[str]:
        """Settle the pixel size the run trains at (data.plan_pixel_size: by default the images'
        own, their median where they differ) before anything is resampled; a fine-tuned model
        keeps its own, LDA uses raw grey values."""
        if self.init is not None or self.config.method == "lda":
            return []
        size, notes = plan_pixel_size(self.images, self.config.pixel_size_nm)
        self.config = replace(self.config, pixel_size_nm=size)
        return notes

    # -- public -------------------------------------------------------------
    def info(self) -> ModelInfo:
        c = self.config
        if self.init is not None:
            info = copy.deepcopy(self.init.info)
        else:
            info = ModelInfo(self.scheme, c.pixel_size_nm, c.normalization)
            if c.method == "lda":
                info.normalization = "none"
                info.pixel_size_nm = None
        settings = {k: v for k, v in asdict(c).items() if k not in ("checkpoint", "device")}
        info.provenance = provenance(
            data=self.data_source,
            settings=settings,
            command=self.command,
            fine_tuned_from=self.init.info.provenance if self.init else None,
        )
        return info

    def run(self):
        c = self.config
        if c.method == "lda":
            return (yield from self._run_lda())
        if c.method == "rf":
            return (yield from self._run_forest())
        dev = resolve_device(c.device)
        torch.manual_seed(c.seed)
        info = self.info()
        labels = yield from self._with_kept_predictions(dev)
        items = prepare_items(self.images, labels, info, c.data_bar)
        train_items, val = split_validation(items, c.val_block, c.val_fraction, c.seed)
        focus = None
        if labels is not self.labels and c.stroke_share > 0:  # crops also centre on the strokes
            strokes = prepare_items(self.images, self.labels, info, c.data_bar)
            focus = [(s.labels > 0) & (t.labels > 0) for s, t in zip(strokes, train_items)]
        rank, _ = dist_info()
        sampler = TileSampler(
            train_items,
            c.tile,
            self.scheme.n_classes,
            c.seed + rank,
            c.balance,
            c.cutout,
            c.sampling,
            c.stride,
            scale_jitter=c.scale_jitter,
            noise=c.noise,
            blur=c.blur,
            focus=focus,
            focus_share=c.stroke_share,
            lowmag=c.lowmag,
            contrast=c.contrast,
        )
        model = self._new_model(info)
        self.model = model.to(dev)
        counts = sum(
            np.bincount(it.labels.ravel(), minlength=self.scheme.n_classes + 1)[1:]
            for it in train_items
        )
        self.class_freqs = counts / max(1, counts.sum())
        stages = self._stages(model)
        state = {"stage": 0, "step": 0, "elapsed": 0.0}
        ckpt = load_checkpoint(self.resume) if self.resume else None
        if ckpt is not None:
            self._check_resume(ckpt)
            model.load_state_dict(ckpt["model"])
            state = {
                "stage": int(ckpt["stage"]),
                "step": int(ckpt["step"]),
                "elapsed": float(ckpt["elapsed"]),
            }
            self.history = list(ckpt.get("history", []))
        for index in range(state["stage"], len(stages)):
            resume_here = ckpt if (ckpt is not None and index == int(ckpt["stage"])) else None
            yield from self._run_stage(
                stages,
                index,
                model,
                sampler,
                val,
                dev,
                resume_here,
                state["step"] if resume_here else 0,
                state["elapsed"] if resume_here else 0.0,
            )
        model.info.provenance["steps"] = dict(self.stage_steps)
        model.info.provenance["best_steps"] = dict(self.best_steps)
        model.cpu().eval()
        if model.kind == "bag" and self.init is None and c.forest_weight > 0:
            yield Progress("forest", 0, 1, message="pixel features and forest")
            model.forest = PixelForest(model.info).fit(
                [it.image for it in items],
                [it.labels for it in items],
                n_trees=c.trees or 20,
                seed=c.seed,
            )
            model.forest_weight = c.forest_weight
            yield Progress("forest", 1, 1, message="forest fitted")
        self._finished = True
        yield from self._quality(model, train_items, val)
        return model

    def result(self):
        """The model of a finished run; after a cancel, the best model validated so far, with
        the steps of that best in its provenance; None before the first validation (nothing
        learned that was checked).  A bag cancelled before a member's first validation keeps
        the members before it; an ensemble's untrained synthesizer is unused by its default
        mean fusion."""
        if self.model is None or self._finished:
            return self.model
        if not self.history or self._stage is None:
            return None
        model = self.model
        steps = {s: n for s, n in self.stage_steps.items() if s != self._stage}
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
            ran = self.stage_steps.get(self._stage, 0)
            steps[self._stage] = self.best_steps.get(self._stage, ran)
        elif model.kind == "bag" and self._stage.startswith("net"):
            done = int(self._stage[3:]) - 1
            if done == 0:
                return None
            model.members = torch.nn.ModuleList(list(model.members)[:done])
        if getattr(model, "info", None) is not None:
            model.info.provenance["steps"] = steps
        for p in model.parameters():  # a stage stopped mid-way froze the other members
            p.requires_grad_(True)
        return model.cpu().eval()

    # -- internals ------------------------------------------------------------
    def _quality(self, model, train_items, val):
        """Generator: fill :attr:`warnings` when the model learned little (see
        :func:`.validation.quality_warnings`)."""
        self.warnings = yield from quality_warnings(
            model, self.scheme, train_items, val, self.init is None, self.config.seed
        )

    def _with_kept_predictions(self, dev):
        """Generator: the training labels, where fine-tuning on sparse labels, with the
        unlabelled pixels that the starting model is sure of (``keep_confident``) set to
        its prediction; the labels as given otherwise."""
        c = self.config
        thr = c.keep_confident
        if self.init is None or not thr or all((lab > 0).all() for lab in self.labels):
            return self.labels
        from ..events import drain
        from ..inference.segment import segment

        out = []
        n = len(self.images)
        for j, (img, lab) in enumerate(zip(self.images, self.labels)):
            yield Progress(
                "keep", j, n, message="the starting model's predictions for unpainted pixels"
            )
            seg = drain(
                segment(self.init, img, data_bar=c.data_bar, device=dev, probabilities=True)
            )
            sure = (lab == 0) & (seg.labels > 0) & (seg.probabilities.max(0) >= thr)
            filled = lab.copy()
            filled[sure] = seg.labels[sure]
            out.append(filled)
        yield Progress(
            "keep", n, n, message="the starting model's predictions for unpainted pixels"
        )
        return out

    def _run_lda(self):
        yield Progress("lda", 0, 1, message="fitting LDA on grey values")
        masks = [
            valid_mask(img.data.shape, resolve_data_bar(img.data, self.config.data_bar))
            for img in self.images
        ]
        model = GreyLDA(info=self.info()).fit([i.data for i in self.images], self.labels, masks)
        self.model = model
        yield Progress("lda", 1, 1)
        return model

    def _run_forest(self):
        info = self.info()
        items = prepare_items(self.images, self.labels, info, self.config.data_bar)
        n = len(items)
        done = [0]
        events = []

        def tick():
            done[0] += 1
            events.append(Progress("rf", done[0], n + 1, message="pixel features"))

        yield Progress("rf", 0, n + 1, message="pixel features")
        model = PixelForest(info).fit(
            [it.image for it in items],
            [it.labels for it in items],
            n_trees=self.config.trees or 60,
            seed=self.config.seed,
            progress=tick,
        )
        yield from events
        self.model = model
        yield Progress("rf", n + 1, n + 1, message="forest fitted")
        return model

    def _new_model(self, info):
        c = self.config
        if self.init is not None:
            model = copy.deepcopy(self.init)
            model.info = info
            if c.method != model.kind:
                raise InputError(
                    f"--init is a {model.kind} model; fine-tune it with --method {model.kind}"
                )
            return model
        k = self.scheme.n_classes
        if c.method == "ensemble":
            return Ensemble.new(info, c.width, c.depth, c.up)
        if c.method == "bag":
            if c.members < 1:
                raise InputError("a bag needs at least one member (--members)")
            return Bag.new(info, c.members, c.width, c.depth, c.up)
        return NetModel(UNet(1, k, c.width, c.depth, c.up), info)

    def _check_resume(self, ckpt):
        saved = ckpt.get("method")
        if saved != self.config.method:
            raise InputError(f"the checkpoint is of a {saved} run; resume it with --method {saved}")
