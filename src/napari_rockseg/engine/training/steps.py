"""The steps of one training stage: optimiser, learning-rate schedule, losses, validation,
early stopping, best weights and checkpoints.  A mixin of :class:`.trainer.Trainer`, which
holds the run's state (config, scheme, history, best weights)."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext

import torch

from ..events import Progress
from ..inference.device import autocast, autocast_dtype
from ..io import atomic_path
from ..threads import refresh_threads
from .average import WeightAverage
from .distributed import _agree, _rng_from_tensor, _rng_to_tensor, dist_info
from .losses import binary_alpha, binary_focal_dice, multiclass_loss
from .validation import eval_iou


class StageSteps:
    """Stages and steps of a deep model's training (see :class:`.trainer.Trainer`)."""

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
            multi = eval_iou(lambda x: model.multi(x).argmax(1) + 1, val, k, dev)
            binary = eval_iou(lambda x: model.probabilities(x, "binary").argmax(1) + 1, val, k, dev)
            score = 0.5 * (multi.mean() + binary.mean())
            return {
                "iou": multi.tolist(),
                "binary_iou": binary.tolist(),
                "miou": float(multi.mean()),
                "score": float(score),
            }
        net = None if stage == "synth" else self._stage_nets(stage, model)[0]

        def labels(x):
            if net is None:  # the synthesizer, whatever fusion the model uses by default
                return model.probabilities(x, "stacked").argmax(1) + 1
            return net(x).argmax(1) + 1  # the one network the stage trains (softmax keeps order)

        iou = eval_iou(labels, val, k, dev)
        return {"iou": iou.tolist(), "miou": float(iou.mean()), "score": float(iou.mean())}

    def _open_stage(self, stage, model, nets, params, sampler, ckpt, dev):
        """The stage's optimiser and weight average, restored from ``ckpt`` when resuming;
        returns (optimiser, average, best score, validations without improvement)."""
        c = self.config
        for p in params:  # a model copied from a run stopped mid-stage may have them off
            p.requires_grad_(True)
        base_lr = c.finetune_lr if self.init is not None else c.lr
        opt = torch.optim.AdamW(params, lr=base_lr, weight_decay=c.weight_decay)
        ema = WeightAverage(nets, c.ema) if c.ema > 0 else None
        self.weight_average = ema  # the stage's, for inspection
        best, bad_evals = -1.0, 0
        self.best_state = None
        if ckpt is not None:
            opt.load_state_dict(ckpt["optimizer"])
            if ema is not None and ckpt.get("ema"):
                ema.load(ckpt["ema"])
            sampler.rng.bit_generator.state = _rng_from_tensor(ckpt["sampler_rng"])
            torch.set_rng_state(ckpt["torch_rng"])
            best, bad_evals = float(ckpt["best"]), int(ckpt["bad_evals"])
            self.best_state = ckpt.get("best_state") or None
            self.best_steps.update(ckpt.get("best_steps") or {})
        return opt, ema, best, bad_evals

    def _train_mode(self, stage, model, nets):
        freeze_norm = self.init is not None and self.config.freeze_norm
        for n in nets:
            n.train()
            if freeze_norm:
                for m in n.modules():
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        m.eval()
        if stage == "synth":
            for n in [*model.binaries, model.multi]:
                n.eval()

    def _step(self, runner, opt, scaler, sampler, dev, lr) -> float:
        """One optimiser step on one batch; returns its loss."""
        c = self.config
        refresh_threads()  # other processes started or ended beside this one: share the cores
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
        return float(loss.detach())

    def _evaluate(self, stage, model, nets, val, dev, ema, step, loss, best):
        """Validate; keep the weights when they score best (rank 0 decides, so all processes
        keep the same model; with nothing to validate on, the moving average is always the
        model to keep).  Returns (metrics, improved, best)."""
        for n in nets:
            n.eval()
        with ema.applied() if ema is not None else nullcontext():  # the average is what is kept
            metrics = self._validate(stage, model, val, dev)
            score = metrics.get("score", -loss)
            improved = _agree(score > best or (ema is not None and not metrics), dev)
            if improved:
                best = score
                self.best_steps[stage] = step
                self.best_state = {
                    k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                }
        return metrics, improved, best

    def _run_stage(self, stages, index, model, sampler, val, dev, ckpt, step0, elapsed0):
        c = self.config
        stage = stages[index]
        self._stage = stage
        nets = self._stage_nets(stage, model)
        params = [p for n in nets for p in n.parameters()]
        opt, ema, best, bad_evals = self._open_stage(stage, model, nets, params, sampler, ckpt, dev)
        base_lr = c.finetune_lr if self.init is not None else c.lr
        max_steps, max_secs = self._budget(stages, index)
        loss_scaling = autocast_dtype(dev, c.precision) == torch.float16  # float16 on CUDA only
        scaler = torch.amp.GradScaler("cuda", enabled=loss_scaling)
        rank, world = dist_info()
        frozen = [p for p in model.parameters() if not any(p is q for q in params)]
        for p in frozen:
            p.requires_grad_(False)
        runner = _StageLoss(self, stage, model)
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # gradients are averaged over the processes; BatchNorm statistics follow rank 0
            runner = DistributedDataParallel(
                runner, device_ids=[dev.index] if dev.type == "cuda" else None
            )
        step, t_start = step0, time.perf_counter() - elapsed0

        def done_fraction():
            elapsed = time.perf_counter() - t_start
            return elapsed, max(
                step / max_steps if max_steps else 0.0, elapsed / max_secs if max_secs else 0.0
            )

        loss_avg = None
        try:
            while not _agree(done_fraction()[1] >= 1.0, dev):
                self._train_mode(stage, model, nets)
                frac = done_fraction()[1]
                warm = min(1.0, (step + 1) / 20)  # warm-up, then a cosine to 5 % of the rate
                lr = base_lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
                lv = self._step(runner, opt, scaler, sampler, dev, lr)
                if ema is not None:
                    ema.update()
                step += 1
                loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
                elapsed, frac = done_fraction()
                total = max_steps if max_steps else max(step, int(round(step / max(frac, 1e-9))))
                eta = elapsed / max(frac, 1e-9) * (1 - frac)
                metrics = {}
                last = _agree(frac >= 1.0, dev)
                if step % c.eval_every == 0 or last:
                    metrics, improved, best = self._evaluate(
                        stage, model, nets, val, dev, ema, step, lv, best
                    )
                    bad_evals = 0 if improved else bad_evals + 1
                    self.history.append({"stage": stage, "step": step, "loss": loss_avg, **metrics})
                stop_early = _agree(bool(c.patience) and bad_evals >= c.patience, dev)
                if (
                    c.checkpoint
                    and rank == 0
                    and (step % c.checkpoint_every == 0 or last or stop_early)
                ):
                    self._save_checkpoint(
                        model, opt, sampler, index, step, elapsed, best, bad_evals, ema
                    )
                yield Progress(
                    stage,
                    step,
                    total,
                    loss_avg,
                    metrics,
                    eta,
                    message=f"stage {index + 1}/{len(stages)}: {stage}",
                )
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

    def _save_checkpoint(
        self, model, opt, sampler, stage, step, elapsed, best, bad_evals, ema=None
    ):
        data = {
            "method": self.config.method,
            "stage": stage,
            "step": step,
            "elapsed": elapsed,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict() if opt is not None else {},
            "sampler_rng": _rng_to_tensor(sampler.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "best": best,
            "bad_evals": bad_evals,
            "best_state": self.best_state or {},
            "history": self.history,
            "best_steps": dict(self.best_steps),
            "ema": ema.state() if ema is not None else {},
        }
        with atomic_path(self.config.checkpoint, suffix=".pt") as tmp:
            torch.save(data, tmp)


class _StageLoss(torch.nn.Module):
    """The loss of one training stage as a module, so that DistributedDataParallel
    can wrap it and average the gradients of every net the stage trains."""

    def __init__(self, trainer, stage: str, model):
        super().__init__()
        self.trainer, self.stage, self.model = trainer, stage, model

    def forward(self, xb, yb):
        return self.trainer._losses(self.stage, self.model, xb, yb)
