"""Writing outputs: every write goes to a temporary name in the destination folder and is renamed, so a crash leaves the old file or the new one, never a torn one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from ..classes import ClassScheme
from ..condition import normalize
from ..errors import InputError


# -- writing ---------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create folder {parent}: {exc.strerror}") from None
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=parent)
    except OSError as exc:
        raise InputError(f"cannot write in {parent}: {exc.strerror}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; keep the user's usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path) -> None:
    """Fail now, with a clear message, if ``path`` cannot be written later (its
    folder is missing and cannot be made, is read-only, or ``path`` is a
    folder); nothing at ``path`` is touched."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a file name")
    with atomic_path(path.parent / f".{path.name}.write-check", suffix=".check") as tmp:
        tmp.write_bytes(b"")
    os.unlink(path.parent / f".{path.name}.write-check")


def write_labels(path, labels: np.ndarray, pixel_size_nm: float | None = None) -> Path:
    """Integer labels -> uint8 TIFF (deflate), with the pixel size when known."""
    labels = np.asarray(labels)
    if labels.max(initial=0) > 255:
        raise InputError("labels above 255 cannot be written as an 8-bit label image")
    kwargs = {}
    if pixel_size_nm:
        kwargs = {"resolution": (1.0 / (pixel_size_nm / 1000.0),) * 2, "imagej": True,
                  "metadata": {"unit": "um"}}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, labels.astype(np.uint8), compression=None if kwargs else "zlib", **kwargs)
    return Path(path)


def write_image(path, image: np.ndarray, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, image, **kwargs)
    return Path(path)


def write_png(path, rgb: np.ndarray) -> Path:
    from skimage.io import imsave

    with atomic_path(path, suffix=".png") as tmp:
        imsave(tmp, rgb, check_contrast=False)
    return Path(path)


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def overlay(grey: np.ndarray, labels: np.ndarray, scheme: ClassScheme, alpha: float = 0.45) -> np.ndarray:
    """The labels in the scheme's colours blended over the grey image (RGB uint8)."""
    g = normalize(grey)
    base = np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=-1).astype(np.float32)
    colors = scheme.encode_colors(labels).astype(np.float32)
    mixed = np.where((labels > 0)[..., None], (1 - alpha) * base + alpha * colors, base)
    return np.clip(mixed, 0, 255).astype(np.uint8)


#: pixels sampled for whole-image intensity statistics
