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
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(cin, cin // 2, 1),
            )
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

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 4,
        width: int = 16,
        depth: int = 4,
        up: str = "bilinear",
    ):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError("width and depth must be positive")
        self.config = {
            "in_channels": in_channels,
            "n_classes": n_classes,
            "width": width,
            "depth": depth,
            "up": up,
        }
        chans = [width * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, chans[0])
        self.downs = nn.ModuleList(DoubleConv(chans[i], chans[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(
            Up(chans[i + 1], chans[i], chans[i], up) for i in reversed(range(depth))
        )
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


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``conv`` followed by ``bn`` in eval mode: one affine map, so the
    fused network runs no batch-norm at all."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return conv.weight * scale.view(-1, 1, 1, 1), bias


def _stacked(
    parts: list[tuple[torch.Tensor, torch.Tensor]],
    shared_input: bool,
    dense: bool,
    transpose: bool = False,
) -> nn.Module:
    """One convolution computing M members' convolutions side by side, member-major channels:
    grouped (``groups=M``), or ``dense`` (block-diagonal weights: M times the arithmetic, one
    plain convolution, which some GPU kernels run faster than a grouped one).  A first layer
    (``shared_input``) reads the same input channels for every member."""
    m = len(parts)
    weights, biases = [p[0] for p in parts], torch.cat([p[1] for p in parts])
    cout, cin, kh, kw = weights[0].shape
    if transpose:  # ConvTranspose2d weights are (in, out, kh, kw)
        conv = nn.ConvTranspose2d(m * cout, m * cin, (kh, kw), stride=2, groups=m)
        conv.weight.data = torch.cat(weights)
    elif shared_input:
        conv = nn.Conv2d(cin, m * cout, (kh, kw), padding=kh // 2)
        conv.weight.data = torch.cat(weights)
    elif dense:
        conv = nn.Conv2d(m * cin, m * cout, (kh, kw), padding=kh // 2)
        conv.weight.data = torch.block_diag(*[w.reshape(cout, -1) for w in weights]).reshape(
            m * cout, m * cin, kh, kw
        )
    else:
        conv = nn.Conv2d(m * cin, m * cout, (kh, kw), padding=kh // 2, groups=m)
        conv.weight.data = torch.cat(weights)
    conv.bias.data = biases
    return conv.requires_grad_(False)


def _double(doubles: list[DoubleConv], shared_input: bool, dense: bool) -> nn.Sequential:
    first = _stacked([_folded(d[0], d[1]) for d in doubles], shared_input, dense)
    second = _stacked([_folded(d[3], d[4]) for d in doubles], False, dense)
    return nn.Sequential(first, nn.ReLU(inplace=True), second, nn.ReLU(inplace=True))


def _member_cat(a: torch.Tensor, b: torch.Tensor, m: int) -> torch.Tensor:
    """``torch.cat([a_i, b_i])`` for each member i of member-major ``a`` and ``b``, in the
    memory layout they come in (channels-last stays channels-last, with one copy as cat)."""
    n, _, h, w = a.shape
    if a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous():
        nhwc = torch.cat(
            [
                a.permute(0, 2, 3, 1).reshape(n, h, w, m, -1),
                b.permute(0, 2, 3, 1).reshape(n, h, w, m, -1),
            ],
            dim=-1,
        )
        return nhwc.reshape(n, h, w, -1).permute(0, 3, 1, 2)
    both = torch.cat([a.reshape(n, m, -1, h, w), b.reshape(n, m, -1, h, w)], dim=2)
    return both.reshape(n, -1, h, w)


class FusedUNets(nn.Module):
    """M U-Nets of one configuration run as one network (eval mode only: batch-norm is
    folded into the convolutions): every layer computes all members side by side with
    grouped convolutions, so a bag costs one pass of M-times-wider layers instead of M
    passes, and ``forward`` returns the mean of the members' softmax probabilities.
    Built from trained members; it holds copies, not views, of their weights."""

    def __init__(self, members: list[UNet], dense: bool = False):
        super().__init__()
        configs = {tuple(sorted(u.config.items())) for u in members}
        if len(configs) != 1:
            raise ValueError("fused U-Nets must share one configuration")
        self.m, self.config = len(members), dict(members[0].config)
        with torch.no_grad():
            self.inc = _double([u.inc for u in members], True, dense)
            self.downs = nn.ModuleList(
                _double([u.downs[i] for u in members], False, dense)
                for i in range(len(members[0].downs))
            )
            self.ups, self.convs = nn.ModuleList(), nn.ModuleList()
            for i in range(len(members[0].ups)):
                ups = [u.ups[i] for u in members]
                if self.config["up"] == "bilinear":
                    one = _stacked([(u.up[1].weight, u.up[1].bias) for u in ups], False, dense)
                    up = nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), one
                    )
                else:
                    up = _stacked(
                        [(u.up.weight, u.up.bias) for u in ups], False, dense, transpose=True
                    )
                self.ups.append(up)
                self.convs.append(_double([u.conv for u in ups], False, dense))
            self.head = _stacked([(u.head.weight, u.head.bias) for u in members], False, dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for up, conv in zip(self.ups, self.convs):
            skip = skips.pop()
            x = up(x)
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = conv(_member_cat(skip, x, self.m))
        logits = self.head(x)
        n, _, h, w = logits.shape
        return torch.softmax(logits.float().reshape(n, self.m, -1, h, w), dim=2).mean(dim=1)
