"""Models built from U-Nets: a single multi-class U-Net, and the stacked
ensemble of the original work (one binary U-Net per class, one multi-class
U-Net, and a synthesizer U-Net on their 2K probability maps)."""

from __future__ import annotations

import torch
from torch import nn

from .info import ModelInfo
from .nets import UNet

#: the default first
FUSIONS = ("mean", "stacked", "binary")


class NetModel(nn.Module):
    """One multi-class U-Net with its model information."""

    kind = "unet"

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

    def __init__(self, binaries: list[UNet], multi: UNet, synth: UNet | None, info: ModelInfo,
                 fusion: str = "mean"):
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
        return {"binary": self.binaries[0].config, "multi": self.multi.config,
                "synth": None if self.synth is None else self.synth.config, "fusion": self.fusion}

    @classmethod
    def build(cls, config: dict, info: ModelInfo) -> Ensemble:
        k = config["multi"]["n_classes"]
        binaries = [UNet(**config["binary"]) for _ in range(k)]
        synth = None if config.get("synth") is None else UNet(**config["synth"])
        return cls(binaries, UNet(**config["multi"]), synth, info, config.get("fusion", "stacked"))

    @classmethod
    def new(cls, info: ModelInfo, width: int = 16, depth: int = 4, up: str = "bilinear",
            synth_width: int | None = None) -> Ensemble:
        k = info.scheme.n_classes
        binaries = [UNet(1, 1, width, depth, up) for _ in range(k)]
        multi = UNet(1, k, width, depth, up)
        synth = UNet(2 * k, k, synth_width or width, depth, up)
        return cls(binaries, multi, synth, info)
