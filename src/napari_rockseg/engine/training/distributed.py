"""Data-parallel training (torchrun / DDP): rank and world size, agreement between ranks,
RNG states across ranks."""

from __future__ import annotations

import sys

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

    t = torch.tensor(
        [1 if flag else 0], dtype=torch.int32, device=dev if dev.type == "cuda" else "cpu"
    )
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
    return {
        "bit_generator": "PCG64",
        "state": {"state": vals[0], "inc": vals[1]},
        "has_uint32": vals[2],
        "uinteger": vals[3],
    }


def init_distributed(device: str):
    """Join a torchrun launch (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs.
    Returns (rank, device for this process)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, device
    import torch
    import torch.distributed as dist

    use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    return dist.get_rank(), device


def end_distributed(wait: bool = True):
    """Leave a torchrun launch: wait for every process (``wait``), then take the process
    group down, so that no process exits while the others' gloo threads still talk to it
    (which can abort a process: "terminate called without an active exception")."""
    dist = sys.modules.get("torch.distributed")  # loaded by init_distributed when launched
    if dist is not None and dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
