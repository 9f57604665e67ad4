"""Writing outputs: every write goes to a temporary name in the destination folder and is
renamed, so a crash leaves the old file or the new one, never a torn one.

Temporary names are ``.<name>.<pid>-XXXXXXXX<suffix>``: the process id lets the next run
remove those of a killed run (:func:`clean_stale`).  :func:`result_set` extends this from
one file to a set of files that belong together (labels, overlay, JSON, ...): all are
written to temporary names under a lock and renamed together at the end, or none is."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from ..classes import ClassScheme
from ..condition import normalize
from ..errors import InputError

#: a temporary file without a process id in its name (older versions) counts as stale after this
STALE_SECONDS = 600.0
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[A-Za-z0-9_]{8}(?P<suffix>\.[^.]*)?$")


def pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there
        try:
            import psutil
        except ImportError:
            return True  # cannot tell: leave its files alone
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or a number we cannot check): leave it alone
    return True


def clean_stale(folder, name: str | None = None) -> list[Path]:
    """Remove the temporary files (``.<name>.<pid>-XXXXXXXX.*``) that a killed run left in
    ``folder``: those whose process is gone, and those without a process id older than
    :data:`STALE_SECONDS`.  ``name``: only the temporaries of that file.  Returns the removed."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if (
            not m
            or (name is not None and m["name"] != name)
            or not entry.is_file(follow_symlinks=False)
        ):
            continue
        if m["pid"] is not None:
            stale = int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"]))
        else:  # an older version's name: only when it ends as its file does, and is old
            suffix, stale = m["suffix"] or "", False
            with contextlib.suppress(OSError):
                stale = (
                    m["name"].endswith(suffix)
                    and time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
                )
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _make_parent(parent: Path) -> None:
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create folder {parent}: {exc.strerror}") from None


def _temp_beside(path: Path, suffix: str | None = None) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}-", suffix=suffix or path.suffix, dir=path.parent
        )
    except OSError as exc:
        raise InputError(f"cannot write in {path.parent}: {exc.strerror}") from None
    os.close(fd)
    return Path(tmp)


def _publish(tmp: Path, path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; keep the user's usual permissions
    os.replace(tmp, path)


# -- writing ---------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    path = parent / path.name
    _make_parent(parent)
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a file name")
    clean_stale(parent, path.name)
    tmp = _temp_beside(path, suffix)
    try:
        yield tmp
        _publish(tmp, path)
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
        kwargs = {
            "resolution": (1.0 / (pixel_size_nm / 1000.0),) * 2,
            "imagej": True,
            "metadata": {"unit": "um"},
        }
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp, labels.astype(np.uint8), compression=None if kwargs else "zlib", **kwargs
        )
    return Path(path)


def write_image(path, image: np.ndarray, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, image, **kwargs)
    return Path(path)


def write_png(path, rgb: np.ndarray) -> Path:
    from PIL import Image

    # Pillow directly: scikit-image's imsave imports imageio and matplotlib (0.1 s); a
    # low compression level: the overlay is a preview, written on every prediction
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format="PNG", compress_level=1)
    return Path(path)


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def overlay(
    grey: np.ndarray, labels: np.ndarray, scheme: ClassScheme, alpha: float = 0.45
) -> np.ndarray:
    """The labels in the scheme's colours blended over the grey image (RGB uint8): the grey
    normalised to 0-255 (its 0.5 and 99.5 percentiles; beyond them black and white), each
    (label, grey level) pair looked up in a table of the blended colours."""
    grey8 = (np.clip(normalize(grey), 0.0, 1.0) * 255).astype(np.uint8)
    levels = np.arange(256, dtype=np.float32)[None, :, None]
    colors = scheme.encode_colors(np.arange(256)).astype(np.float32)[:, None, :]
    table = np.broadcast_to(levels, (256, 256, 3)).copy()
    table[1:] = (1 - alpha) * levels + alpha * colors[1:]  # label 0 (unlabelled): the grey
    table = np.clip(table, 0, 255).astype(np.uint8).reshape(-1, 3)
    codes = np.clip(labels, 0, 255).astype(np.intp) * 256 + grey8
    return table[codes]


# -- JSON ------------------------------------------------------------------
def json_safe(obj):
    """``obj`` with NaN and infinities as None (JSON has no such numbers) and numpy
    scalars and arrays as plain Python values."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps_json(obj, **kwargs) -> str:
    """Valid JSON always: non-finite numbers become null (:func:`json_safe`)."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def write_json(path, obj) -> Path:
    return write_text(path, dumps_json(obj, indent=2))


# -- result sets -------------------------------------------------------------
def check_output_folder(folder) -> None:
    """Fail now if ``folder`` could not be made or written later; creates nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file; give a folder")
    probe = folder.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"cannot create folder {folder}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {probe}: permission denied")


def _lock_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _take_lock(path: Path) -> Path:
    """Create ``.<name>.lock`` beside ``path`` (O_EXCL), holding this process's id and
    host; a lock of a dead process on this host is taken over, a live one refused."""
    lock = _lock_name(path)
    stamp = f"{os.getpid()} {socket.gethostname()}\n".encode()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid, host = lock.read_text().split()[:2]
                dead = host == socket.gethostname() and not pid_alive(int(pid))
            except (OSError, ValueError):
                dead = False
            if dead:
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                continue
            raise InputError(
                f"another rockseg run is writing {path} (lock {lock}); wait for it to "
                "finish or choose another output folder"
            ) from None
        except OSError as exc:
            raise InputError(f"cannot write in {path.parent}: {exc.strerror}") from None
        os.write(fd, stamp)
        os.close(fd)
        return lock
    raise InputError(f"cannot lock {path}: remove {lock} if no rockseg run is writing there")


class ResultSet:
    """Files written together: :meth:`path` gives the temporary name to write a member to."""

    def __init__(self, members: list[Path]):
        self.members = members
        self.temps: dict[Path, Path] = {}

    def path(self, final) -> Path:
        final = Path(final)
        final = final.parent / final.name
        if final not in self.members:
            raise ValueError(f"{final} is not a member of this result set")
        if final not in self.temps:
            self.temps[final] = _temp_beside(final)
        return self.temps[final]

    def _commit(self) -> None:
        for final, tmp in self.temps.items():
            _publish(tmp, final)
        for final in self.members:  # an earlier set's member that this one does not have
            if final not in self.temps and final.exists():
                os.unlink(final)


@contextlib.contextmanager
def result_set(paths, overwrite: bool = False, flag: str = "--overwrite"):
    """Write the files ``paths`` as one set: all or none.

    ``with result_set([a, b, c], overwrite) as rs: write(rs.path(a), ...)`` writes to
    temporary names in the destination folders (made here, and removed again if the
    set fails and they stayed empty) and renames them all at the end; members not
    written are removed, so no file of an earlier set survives beside the new ones.
    Each member is locked (``.<name>.lock``, O_EXCL) for the whole block, so
    concurrent runs into one folder never mix: the second is refused.  Without
    ``overwrite`` an existing member is refused with one line naming ``flag``.  An
    exception (Ctrl-C included) removes the temporaries and leaves the earlier set
    as it was; stale temporaries of killed runs are removed on entry."""
    members = []
    for p in map(Path, paths):
        p = (p.parent if str(p.parent) else Path(".")) / p.name
        if p not in members:
            members.append(p)
    made = []
    for parent in dict.fromkeys(p.parent for p in members):
        missing = [q for q in (parent, *parent.parents) if not q.exists()]
        _make_parent(parent)
        made += missing
    locks: list[Path] = []
    rs = ResultSet(members)
    try:
        for p in sorted(members):
            locks.append(_take_lock(p))
        for p in members:
            if p.is_dir():
                raise InputError(f"{p} is a directory; it cannot be replaced by a result")
            if p.exists() and not overwrite:
                raise InputError(
                    f"{p} exists (an earlier result); add {flag} to replace its "
                    "result set, or choose another output folder"
                )
        for parent in dict.fromkeys(p.parent for p in members):
            clean_stale(parent)
        yield rs
        try:
            rs._commit()
        except OSError as exc:
            raise InputError(
                f"cannot write the results in {members[0].parent}: {exc.strerror or exc}"
            ) from None
        made = []
    finally:
        for tmp in rs.temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for lock in locks:
            with contextlib.suppress(OSError):
                os.unlink(lock)
        for folder in made:  # deepest first: folders this set made, now empty again
            with contextlib.suppress(OSError):
                folder.rmdir()
