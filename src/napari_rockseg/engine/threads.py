"""How many CPU threads torch may use in this process: the cores it may run on (affinity,
cgroup quota) shared among the processes that run beside it (dask workers on one machine).

Torch's default is one thread per core the machine has, in every process: two processes on
two cores then run four spinning threads, and each step costs 4x instead of 2x (issue 30).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

#: how long torch's OpenMP threads (libgomp) spin before they sleep between parallel regions:
#: 10,000 turns instead of libgomp's 300,000.  `rockseg train --steps 40` on the sample, 2 cores
#: (research/README.md): alone 15.7 s (libgomp's default 15.5 s, OMP_WAIT_POLICY=PASSIVE 18.8 s);
#: beside a busy process 46.6 s (default 77.0 s, PASSIVE 42.6 s)
SPIN_ENV = {"GOMP_SPINCOUNT": "10000"}


def spin_briefly() -> bool:
    """Make torch's OpenMP threads spin briefly, then sleep, while they wait (see
    :data:`SPIN_ENV`), unless the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` or
    torch is already loaded (then it is too late); True when set."""
    import sys

    if "torch" in sys.modules or {"OMP_WAIT_POLICY", *SPIN_ENV} & set(os.environ):
        return False
    os.environ.update(SPIN_ENV)
    return True


def choose_threads(
    cores: int,
    quota: float | None = None,
    workers: int = 1,
    threads_per_worker: int = 1,
    requested: int | None = None,
) -> int:
    """Torch threads for one process: ``requested`` if given, else the ``cores`` it may
    run on, capped by a CPU ``quota`` (in cores; a fraction runs one thread), divided among
    the ``workers`` processes on this machine and the ``threads_per_worker`` tasks each
    runs at once; at least 1."""
    if requested is not None:
        return max(1, int(requested))
    usable = max(1, int(cores))
    if quota is not None and quota > 0:
        usable = min(usable, max(1, math.floor(quota)))
    return max(1, usable // max(1, int(workers) * int(threads_per_worker)))


def affinity_cores() -> int:
    """CPUs this process may be scheduled on (its affinity mask), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_cpu_max(text: str) -> float | None:
    """Cores granted by a cgroup v2 ``cpu.max`` line (``"quota period"``; ``max``: none)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(
    root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The tightest CPU quota (in cores) of this process's cgroup v2 and its parents, or of
    a cgroup v1 ``cpu`` controller; None without one."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # v2: the limit may sit on any ancestor
            group = root / rel.lstrip("/")
            while True:
                q = _read_quota(group / "cpu.max", parse_cpu_max)
                best = q if best is None or (q is not None and q < best) else best
                if group == root or root not in group.parents:
                    break
                group = group.parent
        elif "cpu" in controllers.split(","):
            base = root / "cpu" / rel.lstrip("/")
            q = _read_quota(base / "cpu.cfs_quota_us", None, base / "cpu.cfs_period_us")
            best = q if best is None or (q is not None and q < best) else best
    return best


def _read_quota(path: Path, parse, period_path: Path | None = None) -> float | None:
    try:
        if parse is not None:
            return parse(path.read_text())
        quota, period = int(path.read_text()), int(period_path.read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def dask_share() -> tuple[int, int] | None:
    """(worker processes on this machine, tasks each runs at once) when this process is a
    dask worker; None otherwise."""
    import sys

    if "distributed" not in sys.modules:  # a dask worker has imported it; importing it costs 0.2 s
        return None
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    try:
        info = worker.client.scheduler_info()["workers"].values()
        host = worker.address.split("://")[-1].rsplit(":", 1)[0]
        here = sum(1 for w in info if w.get("host") == host)
    except (OSError, KeyError, AttributeError, ValueError, RuntimeError, TimeoutError):
        # the scheduler unreachable or its reply changed: count this worker alone
        here = 1
    return max(1, here), max(1, int(getattr(worker, "nthreads", 1) or 1))


# -- the other rockseg processes on this machine ------------------------------------------
def registry() -> Path:
    """The folder in which each working rockseg process of this user leaves a file named by
    its process id (holding its start time, so that a reused id is not counted)."""
    import tempfile

    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"rockseg-{user}-processes"


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot; Linux), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_registered = False


def register_process() -> None:
    """Count this process among the machine's rockseg processes until it exits."""
    global _registered
    if _registered:
        return
    import atexit

    entry = registry() / str(os.getpid())
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(_start_time(os.getpid()) or "")
    except OSError:  # a read-only or full temporary folder: share as if alone
        return
    _registered = True
    atexit.register(lambda: entry.unlink(missing_ok=True))


def active_processes() -> int:
    """Live rockseg processes of this user on this machine (at least 1: this one); the
    entries of processes that are gone are removed."""
    from .io.write import pid_alive

    live = 0
    try:
        entries = list(registry().iterdir())
    except OSError:
        return 1
    for entry in entries:
        try:
            pid, started = int(entry.name), entry.read_text().strip()
        except (OSError, ValueError):
            continue
        if pid_alive(pid) and (not started or _start_time(pid) in (started, None)):
            live += 1
        else:
            entry.unlink(missing_ok=True)
    return max(1, live)


_applied: int | None = None
_requested: int | None = None
_checked = 0.0
#: seconds between two looks at the other processes during long work (a listing of a folder)
REFRESH_SECONDS = 5.0


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads (and, once per process, its inter-op threads) from
    :func:`choose_threads` with this process's affinity, quota, and the processes beside it:
    its dask workers on this machine and the other rockseg processes (two on two cores run
    one thread each instead of four spinning ones); returns the number.  Called at the
    start of prediction and training, and again by :func:`refresh_threads` while they run;
    ``requested`` is ``--threads``.  Outside dask an explicit ``OMP_NUM_THREADS`` counts as
    requested; in a dask worker it does not (dask's nanny sets it to 1 in every worker,
    which would leave a lone worker on a many-core machine one core)."""
    global _applied, _requested, _checked
    import time

    import torch

    _requested, _checked = requested, time.monotonic()
    register_process()
    share = dask_share()
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested is None and share is None and env.isdigit():
        requested = int(env)
    workers, per_worker = share or (1, 1)
    if requested is None:
        workers = max(workers, active_processes())
    n = choose_threads(affinity_cores(), cgroup_quota(), workers, per_worker, requested)
    if n == _applied and torch.get_num_threads() == n:
        return n
    torch.set_num_threads(n)
    if _applied is None:
        try:  # allowed only before the first inter-op work of the process
            torch.set_num_interop_threads(max(1, min(n, 2)))
        except RuntimeError:
            pass
    _applied = n
    return n


def refresh_threads() -> int | None:
    """During long work (training steps, images of a batch, chunks of a volume): the threads
    again, at most every :data:`REFRESH_SECONDS`, as processes start and end beside this
    one.  Nothing before :func:`configure_threads` was called (the engine used as a library)."""
    import time

    if _applied is None or time.monotonic() - _checked < REFRESH_SECONDS:
        return None
    return configure_threads(_requested)
