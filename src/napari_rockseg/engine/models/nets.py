"""The U-Net family: configurable input channels, classes, width, depth and upsampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: the configuration of the original work (Paw-Net's backbones)
ORIGINAL = {"width": 64, "depth": 4, "up": "bilinear"}


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, mode: str):
        super().__init__()
        if mode == "bilinear":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(cin, cin // 2, 1))
        elif mode == "transpose":
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        else:
            raise ValueError(f"upsampling must be 'bilinear' or 'transpose', not {mode!r}")
        self.conv = DoubleConv(cin // 2 + cskip, cout)

    def forward(self, x, skip):
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net: ``depth`` poolings, ``width`` channels at full resolution doubling
    at each level, BatchNorm; outputs ``n_classes`` logits per pixel."""

    def __init__(self, in_channels: int = 1, n_classes: int = 4, width: int = 16, depth: int = 4,
                 up: str = "bilinear"):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError("width and depth must be positive")
        self.config = {"in_channels": in_channels, "n_classes": n_classes, "width": width,
                       "depth": depth, "up": up}
        chans = [width * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, chans[0])
        self.downs = nn.ModuleList(DoubleConv(chans[i], chans[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(Up(chans[i + 1], chans[i], chans[i], up) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], n_classes, 1)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** self.config["depth"]

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
