"""The trainer: stages, steps, validation, early stopping and checkpoints, as a generator of progress events. A caller may stop iterating at any time (cancel); trainer.result() then gives the best model validated so far. Checkpoints are written atomically and resume continues a killed run."""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, replace

import numpy as np
import torch

from ..analysis.metrics import per_class_iou
from ..classes import ClassScheme
from ..errors import InputError
from ..events import Progress
from ..inference.device import autocast, autocast_dtype, resolve_device
from ..io import SEMImage, atomic_path, resolve_data_bar, valid_mask
from ..models.bundle import provenance
from ..models.ensemble import Bag, Ensemble, NetModel
from ..models.forest import PixelForest
from ..models.info import ModelInfo
from ..models.lda import GreyLDA
from ..models.nets import UNet
from .checkpoints import load_checkpoint
from .config import METHODS, TrainConfig
from .data import plan_pixel_size, prepare_items
from .distributed import _agree, _rng_from_tensor, _rng_to_tensor, dist_info
from .losses import binary_focal_dice, multiclass_loss
from .sampler import TileSampler, TrainImage, split_validation


def binary_alpha(alpha, k: int, freqs=None) -> list[float]:
    """Focal alpha of each binary member.  By default a rare class weighs its
    positives more (alpha = 1 - frequency, within 0.25..0.9)."""
    if alpha is None:
        if freqs is None:
            return [0.75] * k
        return [float(np.clip(1 - f, 0.25, 0.9)) for f in freqs]
    if isinstance(alpha, (int, float)):
        return [float(alpha)] * k
    if len(alpha) != k:
        raise InputError(f"--alpha gives {len(alpha)} values for {k} classes")
    return [float(a) for a in alpha]


def _eval_iou(model_fn, val: list[TrainImage], n_classes: int, dev) -> np.ndarray:
    """Per-class IoU on the validation blocks, pooled over blocks."""
    preds, truths = [], []
    with torch.inference_mode():
        for it in val:
            x = torch.from_numpy(it.image[None, None]).to(dev)
            preds.append(model_fn(x)[0].cpu().numpy())
            truths.append(it.labels)
    return per_class_iou(np.concatenate([p.ravel() for p in preds]),
                         np.concatenate([t.ravel() for t in truths]), n_classes)


#: a labelled class below this validation IoU was not learned
NOT_LEARNED = 0.05
#: a model this far below a quick random forest's validation mean IoU learned too little
FOREST_MARGIN = 0.1
#: training pixels up to which the quick random forest is fitted for the comparison
FOREST_CHECK_PIXELS = 2_000_000


class Trainer:
    """Trains a model of ``config.method`` on images and label masks."""

    def __init__(self, config: TrainConfig, images: list[SEMImage], labels: list[np.ndarray],
                 scheme: ClassScheme, init=None, resume: str | None = None, data_source: str = "",
                 command: str | None = None):
        if config.method not in METHODS:
            raise InputError(f"unknown method {config.method!r}; choose {', '.join(METHODS)}")
        if not 0 <= config.forest_weight < 1:
            raise InputError(f"the forest's weight must be at least 0 and below 1, not {config.forest_weight}")
        if not 0 <= config.ema < 1:
            raise InputError(f"the weight average's decay (--ema) must be at least 0 (off) and below 1, "
                             f"not {config.ema}")
        if not 0 <= config.balance <= 1:
            raise InputError(f"the share of class-centred crops (--balance) must be between 0 and 1, "
                             f"not {config.balance}")
        if not 0 <= config.noise <= 1:
            raise InputError(f"the noise augmentation's sigma must be between 0 (off) and 1 normalised unit "
                             f"(64 grey levels of an 8-bit image; --noise), not {config.noise}")
        if not 0 <= config.contrast <= 2:
            raise InputError(f"the contrast augmentation's range (--contrast) must be between 0 (off) and 2 "
                             f"(exp(+-2): 0.14-7.4x), not {config.contrast}")
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
                raise InputError(f"{img.stem}: image {img.data.shape} and labels {lab.shape} differ in size")
            self.scheme.check_labels(lab, what=f"labels of {img.stem}")
            present |= set(np.unique(lab).tolist())
        present.discard(0)
        if not present:
            raise InputError("the training labels are all unlabelled (0); paint or load some labels first")
        if len(present) < 2:
            name = self.scheme.names[min(present) - 1]
            raise InputError(f"the training labels hold only one class ({name}); label at least two classes")
        missing = [n for c, n in zip(self.scheme.labels, self.scheme.names) if c not in present]
        return [f"class '{n}' has no labelled pixel; the model will never predict it" for n in missing]

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
        info.provenance = provenance(data=self.data_source, settings=settings, command=self.command,
                                     fine_tuned_from=self.init.info.provenance if self.init else None)
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
        sampler = TileSampler(train_items, c.tile, self.scheme.n_classes, c.seed + rank, c.balance, c.cutout,
                              c.sampling, c.stride, scale_jitter=c.scale_jitter, noise=c.noise,
                              blur=c.blur, focus=focus, focus_share=c.stroke_share, lowmag=c.lowmag,
                              contrast=c.contrast)
        model = self._new_model(info)
        self.model = model.to(dev)
        counts = sum(np.bincount(it.labels.ravel(), minlength=self.scheme.n_classes + 1)[1:]
                     for it in train_items)
        self.class_freqs = counts / max(1, counts.sum())
        stages = self._stages(model)
        state = {"stage": 0, "step": 0, "elapsed": 0.0}
        ckpt = load_checkpoint(self.resume) if self.resume else None
        if ckpt is not None:
            self._check_resume(ckpt)
            model.load_state_dict(ckpt["model"])
            state = {"stage": int(ckpt["stage"]), "step": int(ckpt["step"]), "elapsed": float(ckpt["elapsed"])}
            self.history = list(ckpt.get("history", []))
        for index in range(state["stage"], len(stages)):
            resume_here = ckpt if (ckpt is not None and index == int(ckpt["stage"])) else None
            yield from self._run_stage(stages, index, model, sampler, val, dev, resume_here,
                                       state["step"] if resume_here else 0,
                                       state["elapsed"] if resume_here else 0.0)
        model.info.provenance["steps"] = dict(self.stage_steps)
        model.info.provenance["best_steps"] = dict(self.best_steps)
        model.cpu().eval()
        if model.kind == "bag" and self.init is None and c.forest_weight > 0:
            yield Progress("forest", 0, 1, message="pixel features and forest")
            model.forest = PixelForest(model.info).fit([it.image for it in items], [it.labels for it in items],
                                                       n_trees=c.trees or 20, seed=c.seed)
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
        """Generator: fill :attr:`warnings` when the model learned little, judged on the
        validation blocks: a labelled class with IoU below :data:`NOT_LEARNED`, or a mean IoU
        :data:`FOREST_MARGIN` below a quick random forest fitted on the same training pixels
        (only from scratch and up to :data:`FOREST_CHECK_PIXELS`, so that it stays cheap)."""
        if not val:
            return
        k = self.scheme.n_classes
        cpu = torch.device("cpu")
        iou = _eval_iou(lambda x: model.probabilities(x).argmax(1) + 1, val, k, cpu)
        present = sorted(set(np.unique(np.concatenate([v.labels.ravel() for v in val]))) - {0})
        if not present:
            return
        warnings = [f"class '{self.scheme.names[c - 1]}' was not learned (validation IoU "
                    f"{iou[c - 1]:.2f}): train longer (--minutes), label more pixels of it, or "
                    f"try --method rf" for c in present if iou[c - 1] < NOT_LEARNED]
        mean = float(np.mean([iou[c - 1] for c in present]))
        pixels = sum(it.image.size for it in train_items)
        if self.init is None and pixels <= FOREST_CHECK_PIXELS:
            yield Progress("check", 0, 1, message="a quick random forest to compare with")
            forest = PixelForest(model.info).fit([it.image for it in train_items],
                                                 [it.labels for it in train_items], n_trees=10,
                                                 seed=self.config.seed)
            pred = [forest.probabilities(v.image).argmax(0) + 1 for v in val]
            rf = per_class_iou(np.concatenate([p.ravel() for p in pred]),
                               np.concatenate([v.labels.ravel() for v in val]), k)
            rf_mean = float(np.mean([rf[c - 1] for c in present]))
            if mean < rf_mean - FOREST_MARGIN:
                warnings.append(f"validation mean IoU {mean:.2f} is far below a quick random "
                                f"forest's {rf_mean:.2f} on the same blocks: train longer "
                                f"(--minutes) or use --method rf")
        self.warnings = warnings
        yield Progress("check", 1, 1,
                       message="; ".join(f"warning: {w}" for w in warnings) or "model checked")

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
            yield Progress("keep", j, n, message="the starting model's predictions for unpainted pixels")
            seg = drain(segment(self.init, img, data_bar=c.data_bar, device=dev, probabilities=True))
            sure = (lab == 0) & (seg.labels > 0) & (seg.probabilities.max(0) >= thr)
            filled = lab.copy()
            filled[sure] = seg.labels[sure]
            out.append(filled)
        yield Progress("keep", n, n, message="the starting model's predictions for unpainted pixels")
        return out

    def _run_lda(self):
        yield Progress("lda", 0, 1, message="fitting LDA on grey values")
        masks = [valid_mask(img.data.shape, resolve_data_bar(img.data, self.config.data_bar))
                 for img in self.images]
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
        model = PixelForest(info).fit([it.image for it in items], [it.labels for it in items],
                                      n_trees=self.config.trees or 60, seed=self.config.seed, progress=tick)
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
                raise InputError(f"--init is a {model.kind} model; fine-tune it with --method {model.kind}")
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

    @staticmethod
    def _stages(model) -> list[str]:
        if model.kind == "ensemble":
            return ["members", "synth"]
        if model.kind == "bag":
            return [f"net{i + 1}" for i in range(len(model.members))]
        return ["unet"]

    def _stage_nets(self, stage, model):
        if stage.startswith("net"):
            return [model.members[int(stage[3:]) - 1]]
        if stage == "members":
            return [*model.binaries, model.multi]
        if stage == "synth":
            return [model.synth]
        return [model.net]

    def _budget(self, stages, index):
        """(steps, seconds) this stage may use; either may be None."""
        c = self.config
        share = 1.0 / len(stages)
        if stages == ["members", "synth"]:
            share = c.synth_share if stages[index] == "synth" else 1 - c.synth_share
        total = c.total_steps()
        steps = None if total is None else max(1, int(round(total * share)))
        secs = None if c.minutes is None else c.minutes * 60 * share
        if steps is None and secs is None:
            steps = max(1, int(round(2000 * share)))
        return steps, secs

    def _losses(self, stage, model, xb, yb):
        c = self.config
        k = self.scheme.n_classes
        valid = yb > 0
        if stage == "members":
            alphas = binary_alpha(c.alpha, k, self.class_freqs)
            loss = 0.0
            for ci, net in enumerate(model.binaries):
                loss = loss + binary_focal_dice(net(xb), yb == ci + 1, valid, alphas[ci], c.gamma)
            return loss + self._multi_loss()(model.multi(xb), yb)
        if stage == "synth":
            with torch.no_grad():
                maps = model.member_maps(xb)
            return self._multi_loss()(model.synth(maps), yb)
        net = self._stage_nets(stage, model)[0]
        return self._multi_loss()(net(xb), yb)

    def _multi_loss(self):
        c = self.config
        alpha = c.alpha if isinstance(c.alpha, list) else None
        return multiclass_loss(c.loss, alpha, c.gamma, alpha)

    def _validate(self, stage, model, val, dev) -> dict:
        k = self.scheme.n_classes
        if not val:
            return {}
        if stage == "members":
            multi = _eval_iou(lambda x: model.multi(x).argmax(1) + 1, val, k, dev)
            binary = _eval_iou(lambda x: model.probabilities(x, "binary").argmax(1) + 1, val, k, dev)
            score = 0.5 * (multi.mean() + binary.mean())
            return {"iou": multi.tolist(), "binary_iou": binary.tolist(), "miou": float(multi.mean()),
                    "score": float(score)}
        if stage == "synth":  # the synthesizer, whatever fusion the model uses by default
            probs = lambda x: model.probabilities(x, "stacked")
        else:  # the one network the stage trains: the U-Net, or one member of a bag
            net = self._stage_nets(stage, model)[0]
            probs = lambda x: torch.softmax(net(x).float(), dim=1)
        iou = _eval_iou(lambda x: probs(x).argmax(1) + 1, val, k, dev)
        return {"iou": iou.tolist(), "miou": float(iou.mean()), "score": float(iou.mean())}

    def _run_stage(self, stages, index, model, sampler, val, dev, ckpt, step0, elapsed0):
        c = self.config
        stage = stages[index]
        self._stage = stage
        nets = self._stage_nets(stage, model)
        params = [p for n in nets for p in n.parameters()]
        for p in params:  # a model copied from a run stopped mid-stage may have them off
            p.requires_grad_(True)
        base_lr = c.finetune_lr if self.init is not None else c.lr
        opt = torch.optim.AdamW(params, lr=base_lr, weight_decay=c.weight_decay)
        max_steps, max_secs = self._budget(stages, index)
        best, bad_evals = -1.0, 0
        ema = WeightAverage(nets, c.ema) if c.ema > 0 else None
        self.weight_average = ema  # the stage's, for inspection
        if ckpt is not None:
            opt.load_state_dict(ckpt["optimizer"])
            if ema is not None and ckpt.get("ema"):
                ema.load(ckpt["ema"])
            sampler.rng.bit_generator.state = _rng_from_tensor(ckpt["sampler_rng"])
            torch.set_rng_state(ckpt["torch_rng"])
            best, bad_evals = float(ckpt["best"]), int(ckpt["bad_evals"])
            self.best_state = ckpt.get("best_state") or None
            self.best_steps.update(ckpt.get("best_steps") or {})
        else:
            self.best_state = None
        loss_scaling = autocast_dtype(dev, c.precision) == torch.float16  # float16 on CUDA only
        scaler = torch.amp.GradScaler("cuda", enabled=loss_scaling)
        rank, world = dist_info()
        frozen = [p for p in model.parameters() if not any(p is q for q in params)]
        for p in frozen:
            p.requires_grad_(False)
        runner = _StageLoss(self, stage, model)
        freeze_norm = self.init is not None and c.freeze_norm
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # gradients are averaged over the processes; BatchNorm statistics follow rank 0
            runner = DistributedDataParallel(runner, device_ids=[dev.index] if dev.type == "cuda" else None)
        step, t_start = step0, time.perf_counter() - elapsed0
        loss_avg = None
        try:
            while True:
                elapsed = time.perf_counter() - t_start
                frac = max(step / max_steps if max_steps else 0.0, elapsed / max_secs if max_secs else 0.0)
                if _agree(frac >= 1.0, dev):
                    break
                for n in nets:
                    n.train()
                    if freeze_norm:
                        for m in n.modules():
                            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                                m.eval()
                if stage == "synth":
                    for n in [*model.binaries, model.multi]:
                        n.eval()
                lr = base_lr * (min(1.0, (step + 1) / 20) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))))
                for g in opt.param_groups:
                    g["lr"] = lr
                xb, yb = sampler.batch(c.batch_size)
                xb = torch.from_numpy(xb).to(dev)
                yb = torch.from_numpy(yb).to(dev)
                with autocast(dev, c.precision):
                    loss = runner(xb, yb)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                if ema is not None:
                    ema.update()
                step += 1
                lv = float(loss.detach())
                loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
                elapsed = time.perf_counter() - t_start
                frac = max(step / max_steps if max_steps else 0.0, elapsed / max_secs if max_secs else 0.0)
                total = max_steps if max_steps else max(step, int(round(step / max(frac, 1e-9))))
                eta = elapsed / max(frac, 1e-9) * (1 - frac)
                metrics = {}
                last = _agree(frac >= 1.0, dev)
                if step % c.eval_every == 0 or last:
                    for n in nets:
                        n.eval()
                    with ema.applied() if ema is not None else nullcontext():  # the average is what is kept
                        metrics = self._validate(stage, model, val, dev)
                        score = metrics.get("score", -lv)
                        # rank 0 decides, so all processes keep the same model; with nothing to
                        # validate on, the moving average is always the model to keep
                        if _agree(score > best or (ema is not None and not metrics), dev):
                            best, bad_evals = score, 0
                            self.best_steps[stage] = step
                            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                        else:
                            bad_evals += 1
                    self.history.append({"stage": stage, "step": step, "loss": loss_avg, **metrics})
                stop_early = _agree(bool(c.patience) and bad_evals >= c.patience, dev)
                if c.checkpoint and rank == 0 and (step % c.checkpoint_every == 0 or last or stop_early):
                    self._save_checkpoint(model, opt, sampler, index, step, elapsed, best, bad_evals, ema)
                yield Progress(stage, step, total, loss_avg, metrics, eta,
                               message=f"stage {index + 1}/{len(stages)}: {stage}")
                if stop_early:
                    break
        finally:
            for p in frozen:
                p.requires_grad_(True)
            self.stage_steps[stage] = step
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        if c.checkpoint and rank == 0 and index + 1 < len(stages):
            self.best_state = None
            self._save_checkpoint(model, None, sampler, index + 1, 0, 0.0, -1.0, 0)

    def _save_checkpoint(self, model, opt, sampler, stage, step, elapsed, best, bad_evals, ema=None):
        data = {
            "method": self.config.method,
            "stage": stage, "step": step, "elapsed": elapsed,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict() if opt is not None else {},
            "sampler_rng": _rng_to_tensor(sampler.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "best": best, "bad_evals": bad_evals,
            "best_state": self.best_state or {},
            "history": self.history,
            "best_steps": dict(self.best_steps),
            "ema": ema.state() if ema is not None else {},
        }
        with atomic_path(self.config.checkpoint, suffix=".pt") as tmp:
            torch.save(data, tmp)


class WeightAverage:
    """Exponential moving average of the weights and batch-norm statistics of ``nets``
    (Polyak averaging, as timm's ModelEmaV2): after each step, average <- d average +
    (1 - d) weights, with d = min(decay, (1 + n) / (10 + n)) after n updates so that the
    first steps' random weights fade fast.  ``applied()`` puts the average into the nets
    for a while (to validate or keep it)."""

    def __init__(self, nets, decay: float):
        if not 0 < decay < 1:
            raise InputError(f"the weight average's decay must be above 0 and below 1, not {decay}")
        self.nets, self.decay, self.updates = nets, decay, 0
        self.shadow = [{k: v.detach().clone() for k, v in n.state_dict().items()} for n in nets]

    def _pairs(self):
        for n, sh in zip(self.nets, self.shadow):
            for k, v in n.state_dict().items():
                yield sh[k], v

    @torch.no_grad()
    def update(self):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        avg, cur = [], []
        for a, v in self._pairs():
            if v.dtype.is_floating_point:
                avg.append(a)
                cur.append(v.detach())
            else:  # batch counters
                a.copy_(v)
        torch._foreach_lerp_(avg, cur, 1 - d)

    def put(self):
        """Load the average into the nets."""
        for n, sh in zip(self.nets, self.shadow):
            n.load_state_dict(sh)

    @contextmanager
    def applied(self):
        saved = [{k: v.detach().clone() for k, v in n.state_dict().items()} for n in self.nets]
        self.put()
        try:
            yield
        finally:
            for n, st in zip(self.nets, saved):
                n.load_state_dict(st)

    def state(self) -> dict:
        out = {f"{i}.{k}": v.detach().cpu().clone() for i, sh in enumerate(self.shadow) for k, v in sh.items()}
        out["updates"] = torch.tensor(self.updates)
        return out

    def load(self, state: dict):
        self.updates = int(state["updates"])
        for i, sh in enumerate(self.shadow):
            for k in sh:
                sh[k].copy_(state[f"{i}.{k}"])


class _StageLoss(torch.nn.Module):
    """The loss of one training stage as a module, so that DistributedDataParallel
    can wrap it and average the gradients of every net the stage trains."""

    def __init__(self, trainer: Trainer, stage: str, model):
        super().__init__()
        self.trainer, self.stage, self.model = trainer, stage, model

    def forward(self, xb, yb):
        return self.trainer._losses(self.stage, self.model, xb, yb)
