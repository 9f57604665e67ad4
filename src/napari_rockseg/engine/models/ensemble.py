"""Models built from U-Nets: a single multi-class U-Net, the stacked ensemble of
the original work (one binary U-Net per class, one multi-class U-Net, and a
synthesizer U-Net on their 2K probability maps), and a bag of independently
trained multi-class U-Nets whose probabilities are averaged."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .info import ModelInfo
from .nets import FusedUNets, UNet
from .protocol import TILES

#: the default first
FUSIONS = ("mean", "stacked", "binary")


class NetModel(nn.Module):
    """One multi-class U-Net with its model information."""

    kind = "unet"
    reads, texture_levels = TILES, True

    def __init__(self, net: UNet, info: ModelInfo):
        super().__init__()
        self.net, self.info = net, info

    @property
    def multiple(self) -> int:
        return self.net.multiple

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x).float(), dim=1)

    def config(self) -> dict:
        return {"net": self.net.config}

    @classmethod
    def build(cls, config: dict, info: ModelInfo) -> NetModel:
        return cls(UNet(**config["net"]), info)


class Ensemble(nn.Module):
    """The stacked Paw-Net ensemble.

    ``fusion`` picks how member outputs become class probabilities:
    ``stacked`` (the synthesizer), ``mean`` (average of the normalised binary
    maps and the multi-class softmax; the default: on held-out training images
    it generalised better than the synthesizer, which is fitted to the members'
    outputs on the images they were trained on) or ``binary`` (argmax of the
    binary maps, the original's "backbone" test).
    """

    kind = "ensemble"
    reads, texture_levels = TILES, False

    def __init__(
        self,
        binaries: list[UNet],
        multi: UNet,
        synth: UNet | None,
        info: ModelInfo,
        fusion: str = "mean",
    ):
        super().__init__()
        self.binaries = nn.ModuleList(binaries)
        self.multi = multi
        self.synth = synth
        self.info = info
        self.fusion = fusion

    @property
    def n_classes(self) -> int:
        return self.multi.config["n_classes"]

    @property
    def multiple(self) -> int:
        nets = [*self.binaries, self.multi] + ([self.synth] if self.synth is not None else [])
        return max(n.multiple for n in nets)

    def member_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2K, H, W): the K binary probabilities then the K multi-class ones."""
        binary = torch.cat([torch.sigmoid(b(x).float()) for b in self.binaries], dim=1)
        multi = torch.softmax(self.multi(x).float(), dim=1)
        return torch.cat([binary, multi], dim=1)

    def probabilities(self, x: torch.Tensor, fusion: str | None = None) -> torch.Tensor:
        fusion = fusion or self.fusion
        maps = self.member_maps(x)
        k = self.n_classes
        if fusion == "stacked" and self.synth is not None:
            return torch.softmax(self.synth(maps).float(), dim=1)
        binary = maps[:, :k] / maps[:, :k].sum(dim=1, keepdim=True).clamp_min(1e-6)
        if fusion == "binary":
            return binary
        return 0.5 * (binary + maps[:, k:])

    def config(self) -> dict:
        return {
            "binary": self.binaries[0].config,
            "multi": self.multi.config,
            "synth": None if self.synth is None else self.synth.config,
            "fusion": self.fusion,
        }

    @classmethod
    def build(cls, config: dict, info: ModelInfo) -> Ensemble:
        k = config["multi"]["n_classes"]
        binaries = [UNet(**config["binary"]) for _ in range(k)]
        synth = None if config.get("synth") is None else UNet(**config["synth"])
        return cls(binaries, UNet(**config["multi"]), synth, info, config.get("fusion", "stacked"))

    @classmethod
    def new(
        cls,
        info: ModelInfo,
        width: int = 16,
        depth: int = 4,
        up: str = "bilinear",
        synth_width: int | None = None,
    ) -> Ensemble:
        k = info.scheme.n_classes
        binaries = [UNet(1, 1, width, depth, up) for _ in range(k)]
        multi = UNet(1, k, width, depth, up)
        synth = UNet(2 * k, k, synth_width or width, depth, up)
        return cls(binaries, multi, synth, info)


def check_compatible(i: int, info: ModelInfo, first: ModelInfo, what: str = "model"):
    """Refuse to combine a model whose classes, pixel size or intensity normalisation
    differ from the first one's (they are applied once for all of them)."""
    from ..errors import InputError

    if info.scheme.names != first.scheme.names or info.scheme.labels != first.scheme.labels:
        raise InputError(
            f"{what} {i} has classes ({', '.join(info.scheme.names)}); model 1 has "
            f"({', '.join(first.scheme.names)})"
        )
    if info.pixel_size_nm != first.pixel_size_nm:
        raise InputError(
            f"{what} {i} was trained at {info.pixel_size_nm} nm per pixel, model 1 at "
            f"{first.pixel_size_nm}: combine models trained at the same pixel size"
        )
    if info.normalization != first.normalization or abs(
        (info.contrast or 0) - (first.contrast or 0)
    ) > 0.01 * max(abs(first.contrast or 0), 1e-9):
        raise InputError(
            f"{what} {i} normalises intensities differently from model 1 "
            "(trained on other images?); combine models trained on the same images"
        )


class Bag(nn.Module):
    """A bag of multi-class U-Nets trained independently (different seeds or data
    orders): the class probabilities are the mean of the members' softmax outputs,
    optionally blended with a random forest on multiscale pixel features
    (``(1 - forest_weight) * mean + forest_weight * forest``, at the model's scale).
    On held-out training images a bag of four long-trained focal-dice U-Nets beat
    the stacked ensemble trained for the same time per run, natively and zoomed, and
    a forest at weight 0.2 left a bag of six at least as good on all six held-out
    views, better on five (README, "Results"); the shipped default is that bag of six
    with its forest."""

    kind = "bag"
    reads, texture_levels = TILES, True

    def __init__(
        self,
        members: list[UNet],
        info: ModelInfo,
        forest=None,
        forest_weight: float = 0.0,
        fused: str | None = "auto",
    ):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.info = info
        #: a PixelForest (not a torch module: its arrays are saved beside the weights)
        self.forest = forest
        self.forest_weight = float(forest_weight) if forest is not None else 0.0
        #: how eval-mode probabilities run the members: "grouped" (one pass of grouped
        #: convolutions per configuration), "dense" (block-diagonal convolutions), None (one
        #: member after another, as training does) or "auto": grouped on GPUs, the loop on
        #: CPUs, where it measured faster on a quiet 2-core machine (benchmarks/speed.py)
        self.fused = fused

    @property
    def n_classes(self) -> int:
        return self.members[0].config["n_classes"]

    @property
    def multiple(self) -> int:
        return max(m.multiple for m in self.members)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        fuse = (
            self.fused if self.fused != "auto" else (None if x.device.type == "cpu" else "grouped")
        )
        if fuse and not self.training and not torch.is_grad_enabled():
            total = sum(net.m * net(x) for net in self._fused_nets())
            return total / len(self.members)
        total = 0
        for m in self.members:
            total = total + torch.softmax(m(x).float(), dim=1)
        return total / len(self.members)

    def _fused_nets(self) -> list[FusedUNets]:
        """The members fused, one network per configuration, rebuilt whenever a member's
        weights change (training steps and loading bump their versions; ``to`` moves them).
        Kept outside the module's registry so that state dicts and files hold the members
        only."""
        params = [*self.members.parameters(), *self.members.buffers()]
        # inference tensors (moved inside inference_mode) keep no version: they cannot change
        key = (
            self.fused,
            tuple((p.data_ptr(), 0 if p.is_inference() else p._version) for p in params),
        )
        cached = self.__dict__.get("_fused_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        groups: dict = {}
        for m in self.members:
            groups.setdefault(tuple(sorted(m.config.items())), []).append(m)
        probe = self.members[0].inc[3].weight  # a 3x3 conv of width channels: its memory layout
        layout = (
            torch.channels_last
            if probe.is_contiguous(memory_format=torch.channels_last) and not probe.is_contiguous()
            else torch.contiguous_format
        )
        with torch.inference_mode(False), torch.no_grad():  # plain tensors, usable in any mode
            nets = []
            for members in groups.values():
                net = FusedUNets(members, dense=self.fused == "dense")
                net = net.to(probe.device, memory_format=layout)
                nets.append(net.eval())
        self.__dict__["_fused_cache"] = (key, nets)
        return nets

    def blend(self, probs: np.ndarray, x: np.ndarray, device=None) -> np.ndarray:
        """(K, H, W) probabilities of the members (``probs``) blended with the forest's
        on the same normalised image ``x`` at the model's scale (its trees walked on
        ``device`` if that is a GPU); unchanged without a forest."""
        if self.forest is None or self.forest_weight == 0:
            return probs
        w = self.forest_weight
        out = self.forest.probabilities(x, device=device)
        out *= w
        out += (1 - w) * probs
        return out

    def config(self) -> dict:
        cfg = {"members": [m.config for m in self.members]}
        if self.forest is not None:
            cfg["forest"] = {"weight": self.forest_weight, **self.forest.config()}
        return cfg

    @classmethod
    def build(cls, config: dict, info: ModelInfo) -> Bag:
        members = config.get("members") or []
        if not members:
            raise ValueError("a bag needs at least one member")
        if len({(c.get("in_channels"), c.get("n_classes")) for c in members}) != 1:
            raise ValueError("the members of a bag differ in their inputs or classes")
        return cls([UNet(**c) for c in members], info)

    @classmethod
    def of(
        cls, models: list, provenance: dict | None = None, forest=None, forest_weight: float = 0.2
    ) -> Bag:
        """The bag of trained models: single U-Nets, or bags whose members join,
        blended with ``forest`` (a random forest) at ``forest_weight`` if given.
        They must share classes, pixel size and intensity normalisation, which the
        bag applies once for all of them."""
        from ..errors import InputError

        if not models:
            raise InputError("give at least one model to bag")
        nets, first = [], models[0].info
        for i, m in enumerate(models):
            kind = getattr(m, "kind", None)
            if kind not in ("unet", "bag"):
                raise InputError(
                    f"model {i + 1} is a {kind} model; only U-Nets and bags of U-Nets can be bagged"
                )
            if kind == "bag" and m.forest is not None:
                raise InputError(
                    f"model {i + 1} is a bag with a forest; bag its U-Nets and give "
                    "the forest separately (--forest)"
                )
            check_compatible(i + 1, m.info, first)
            nets += [m.net] if kind == "unet" else list(m.members)
        info = copy.deepcopy(first)
        info.provenance = provenance if provenance is not None else {}
        info.provenance["members"] = [m.info.provenance for m in models]
        if forest is not None:
            if getattr(forest, "kind", None) != "rf":
                raise InputError(
                    f"the forest given is a {getattr(forest, 'kind', None)} model; "
                    "give a random forest (rockseg train --method rf)"
                )
            if not 0 < forest_weight < 1:
                raise InputError(
                    f"the forest's weight must be between 0 and 1, not {forest_weight}"
                )
            check_compatible(len(models) + 1, forest.info, first, what="the forest, model")
            info.provenance["forest"] = forest.info.provenance
        return cls([copy.deepcopy(n) for n in nets], info, forest, forest_weight)

    @classmethod
    def new(
        cls,
        info: ModelInfo,
        members: int = 4,
        width: int = 16,
        depth: int = 4,
        up: str = "bilinear",
    ) -> Bag:
        k = info.scheme.n_classes
        return cls([UNet(1, k, width, depth, up) for _ in range(members)], info)
