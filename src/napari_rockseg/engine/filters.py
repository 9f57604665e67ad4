"""The Gaussian filter and the linear resize of prediction's conditioning, computed with numpy
and torch (loaded for the networks anyway) rather than scipy.ndimage and scikit-image, whose
imports cost a command-line prediction 0.2 s.  Results equal ``scipy.ndimage.gaussian_filter`` and
``skimage.transform.resize(order=1)`` (their boundary modes and coordinates) to float32
rounding; tests/test_filters.py holds them to it."""

from __future__ import annotations

import numpy as np

#: scipy.ndimage's boundary modes as numpy.pad's: "reflect" repeats the edge sample
#: (d c b a | a b c d), "mirror" does not (d c b | a b c d)
_PAD = {"reflect": "symmetric", "mirror": "reflect"}


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian weights: radius ``int(truncate * sigma + 0.5)``, sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / float(sigma) ** 2 * x**2)
    return phi / phi.sum()


def _pad(x: np.ndarray, radius: int, axis: int, mode: str) -> np.ndarray:
    """``x`` padded by ``radius`` along ``axis``; numpy repeats the reflection where the radius
    exceeds the axis, as scipy.ndimage does."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = (radius, radius)
    if x.shape[axis] == 1:  # every mode of scipy extends a single sample as a constant
        return np.pad(x, widths, mode="edge")
    return np.pad(x, widths, mode=_PAD[mode])


def gaussian_filter(x: np.ndarray, sigma, mode: str = "reflect") -> np.ndarray:
    """A 2-D image smoothed by a Gaussian of ``sigma`` pixels (one value or one per axis; 0
    leaves that axis alone), as ``scipy.ndimage.gaussian_filter(x, sigma, mode=mode)`` with
    ``mode`` "reflect" or "mirror"; float64 stays float64, anything else becomes float32."""
    out = np.asarray(x)
    out = out.astype(np.float64 if out.dtype == np.float64 else np.float32, copy=False)
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (2,))
    for axis, s in enumerate(sigmas):
        if s <= 0:
            continue
        k = gaussian_kernel(s)
        padded = _pad(out, len(k) // 2, axis, mode)
        if len(k) <= SHORT_KERNEL:
            out = _correlate(padded, k, axis).astype(out.dtype, copy=False)
        else:
            out = _conv(padded, k, axis)
    return out


#: kernels up to this many taps (sigma up to 1.75) are summed as shifted slices with numpy,
#: longer ones convolved with torch: on 2 cores a 7-tap pass over 0.7 MP takes 7.5 ms with
#: numpy (in float64) and 16.5 ms as a one-channel torch convolution
SHORT_KERNEL = 15


def _correlate(padded: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    """Sums in float64, as scipy.ndimage does (the same float32 result but for rounding ties)."""
    n = padded.shape[axis] - len(k) + 1

    def shifted(i: int) -> np.ndarray:
        return padded[i : i + n] if axis == 0 else padded[:, i : i + n]

    out = shifted(0) * k[0]
    for i in range(1, len(k)):
        out += shifted(i) * k[i]
    return out


def _conv(padded: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    import torch

    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(padded))[None, None]
        return correlate_torch(t, k, 2 if axis == 0 else 3)[0, 0].numpy()


def correlate_torch(t, taps: np.ndarray, dim: int):
    """A (N, C, H, W) tensor, padded by the taps' radius along ``dim`` (2: rows, 3: columns),
    correlated with the 1-D ``taps``: on the CPU as one convolution in ``t``'s dtype (a sum
    of 129 shifted slices is 129 parallel regions, which crawl when other processes hold the
    cores), elsewhere as that sum in plain float32 arithmetic (a GPU convolution may run in
    TF32)."""
    import torch

    if t.device.type == "cpu":
        import torch.nn.functional as F

        k = torch.from_numpy(np.asarray(taps, np.float64)).to(t.dtype)
        return F.conv2d(t, k.view(1, 1, *((-1, 1) if dim == 2 else (1, -1))))
    n = t.shape[dim] - len(taps) + 1
    out = t.narrow(dim, 0, n) * float(taps[0])
    for i in range(1, len(taps)):
        out = out + t.narrow(dim, i, n) * float(taps[i])
    return out


def axis_coordinates(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``n_out`` output samples along an axis of ``n_in`` input samples: the lower
    input index and the weight of the upper one.  Pixel centres map to pixel centres (the
    output's pixel k covers the input's (k, k + 1) * n_in / n_out); coordinates beyond the
    outer centres are mirrored back, as scipy.ndimage.zoom(grid_mode=True, mode="mirror")."""
    c = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if n_in == 1:
        return np.zeros(n_out, dtype=np.intp), np.zeros(n_out)
    period = 2 * (n_in - 1)
    c = np.abs(c) % period
    c = np.where(c > n_in - 1, period - c, c)
    lower = np.minimum(np.floor(c).astype(np.intp), n_in - 2)
    return lower, c - lower


def _interpolate(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    if x.shape[axis] == 1:
        return np.repeat(x, n_out, axis=axis)
    lower, w = axis_coordinates(x.shape[axis], n_out)
    shape = [1, 1]
    shape[axis] = n_out
    w = w.astype(x.dtype).reshape(shape)
    a, b = np.take(x, lower, axis=axis), np.take(x, lower + 1, axis=axis)
    return a + w * (b - a)


def resize(arr: np.ndarray, shape, order: int = 1) -> np.ndarray:
    """A 2-D image resized to ``shape``, in its own dtype: ``order`` 1 linear (anti-aliased by a
    Gaussian of sigma (factor - 1) / 2 when it shrinks), 0 nearest; as
    ``skimage.transform.resize(arr, shape, order, preserve_range=True)`` with its default
    mirror boundary (the anti-aliasing where the last axis shrinks, as prediction asks)."""
    arr = np.asarray(arr)
    shape = tuple(int(s) for s in shape)
    if arr.ndim != 2 or len(shape) != 2:
        raise ValueError(f"resize takes a 2-D image and a 2-D shape, got {arr.shape} -> {shape}")
    if order == 0:
        rows = _nearest(arr.shape[0], shape[0])
        cols = _nearest(arr.shape[1], shape[1])
        return arr[rows[:, None], cols[None, :]]
    if order != 1:
        raise ValueError(f"resize order must be 0 or 1, got {order}")
    x = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
    factors = np.divide(arr.shape, shape)
    if shape[-1] < arr.shape[-1]:
        x = gaussian_filter(x, np.maximum(0.0, (factors - 1) / 2), mode="mirror")
    out = _interpolate(_interpolate(x, shape[0], 0), shape[1], 1)
    if arr.size:  # as scikit-image clips to the input's range
        np.clip(out, np.min(arr), np.max(arr), out=out)
    return out.astype(arr.dtype, copy=False)


def _nearest(n_in: int, n_out: int) -> np.ndarray:
    """Nearest input index of each output pixel centre (scipy.ndimage.zoom, order 0,
    grid_mode=True: half-way cases go up)."""
    c = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    return np.clip(np.floor(c + 0.5), 0, n_in - 1).astype(np.intp)
