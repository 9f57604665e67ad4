"""Data-parallel training (torchrun / DDP): rank and world size, agreement between ranks, RNG states across ranks."""

from __future__ import annotations

import torch


def dist_info() -> tuple[int, int]:
    """(rank, world size) of a torchrun launch; (0, 1) otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _agree(flag: bool, dev) -> bool:
    """Rank 0's value of ``flag`` on every process (the flag itself when alone)."""
    _, world = dist_info()
    if world == 1:
        return bool(flag)
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=dev if dev.type == "cuda" else "cpu")
    dist.broadcast(t, src=0)
    return bool(t.item())


def _rng_to_tensor(state: dict) -> torch.Tensor:
    """numpy PCG64 state -> int64 tensor (weights_only loading needs no pickle of it)."""
    s = state["state"]
    vals = [s["state"], s["inc"], state["has_uint32"], state["uinteger"]]
    words = []
    for v in vals:
        v = int(v)
        words += [(v >> (32 * i)) & 0xFFFFFFFF for i in range(4)]
    return torch.tensor(words, dtype=torch.int64)


def _rng_from_tensor(t: torch.Tensor) -> dict:
    w = [int(v) for v in t.tolist()]
    vals = [sum(w[j * 4 + i] << (32 * i) for i in range(4)) for j in range(4)]
    return {"bit_generator": "PCG64", "state": {"state": vals[0], "inc": vals[1]},
            "has_uint32": vals[2], "uinteger": vals[3]}
