"""Reading training checkpoints (pickle-free tensors only)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InputError


def load_checkpoint(path) -> dict:
    """A training checkpoint, loaded with ``weights_only=True``: tensors and plain
    containers only, never arbitrary pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"cannot resume from {path}: not a rockseg checkpoint, or corrupt ({first})"
        ) from None
    if not isinstance(ckpt, dict) or "method" not in ckpt or "model" not in ckpt:
        raise InputError(f"cannot resume from {path}: not a rockseg checkpoint")
    return ckpt


def checkpoint_info(path) -> dict:
    """A checkpoint's stage and step, loaded without unpickling."""
    ckpt = load_checkpoint(path)
    return {"method": ckpt["method"], "stage": int(ckpt["stage"]), "step": int(ckpt["step"])}
