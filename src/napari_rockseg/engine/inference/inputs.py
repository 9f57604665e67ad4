"""The checks of a prediction's inputs and outputs that come before any model is loaded: image
files, folders and patterns, their sizes and headers, the result sets' names and collisions.
Imports no torch, so a bad command line is refused at once."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import tifffile

from .. import io
from ..errors import InputError

#: images above this size are segmented block by block from a lazy view of the file
STREAM_MEGAPIXELS = 64.0


def expand_inputs(items) -> list[Path]:
    """Files, folders (their image files, :data:`io.IMAGE_SUFFIXES`) and glob patterns
    -> image paths."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in io.IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{p} holds no images ({', '.join(io.IMAGE_SUFFIXES)})")
            paths += found
        elif any(ch in str(item) for ch in "*?[") and not p.exists():
            found = sorted(Path(q) for q in glob.glob(str(item)))
            if not found:
                raise InputError(f"no file matches {item}")
            paths += found
        else:
            paths.append(p)
    unique = {os.path.realpath(p): p for p in reversed(paths)}  # one file named twice: once
    return [p for p in paths if unique.get(os.path.realpath(p)) is p]


def megapixels(path) -> float:
    try:
        with tifffile.TiffFile(path) as tif:
            shape = tif.pages[0].shape
        return shape[0] * shape[1] / 1e6
    except Exception:
        return 0.0  # read_image reports what is wrong with the file


def check_input_file(path) -> None:
    """Fail now, in one line, for an input that is missing, unreadable or not a file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path} is not a file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    _check_tiff_header(path)


def _check_tiff_header(path: Path) -> None:
    """A TIFF whose header claims more pixel data than the file holds (or a number of
    strips or tiles that does not fit its size) is refused before any pixel is read:
    read whole or block by block, it would allocate what the header claims."""
    import math

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            shape, chunks = page.shape, page.chunked
            offsets, counts = page.dataoffsets, page.databytecounts
    except Exception:  # noqa: BLE001 - not a TIFF, or one read_image explains better
        return
    size = path.stat().st_size
    claim = f"its header claims {shape[1] if len(shape) > 1 else 1} x {shape[0]} pixels"
    if len(offsets) != math.prod(chunks) or len(counts) != len(offsets):
        raise InputError(
            f"{path} is corrupt: {claim} in {math.prod(chunks)} strips or tiles but "
            f"lists {len(offsets)}"
        )
    if any(o + c > size for o, c in zip(offsets, counts) if c):
        raise InputError(
            f"{path} is truncated or corrupt: {claim} but the file ends at {size} bytes"
        )


def check_pixel_size(pixel_size: float | None) -> None:
    """A pixel size given by the user must be a plausible number of nanometres
    (:data:`options.PIXEL_SIZE_RANGE`; None: not given)."""
    from ..options import PREDICT

    PREDICT["pixel_size"].check(pixel_size)


#: the files of one image's result set, by role (``{stem}`` is the image's file name stem)
OUTPUTS = {
    "labels": "{stem}_labels.tif",
    "overlay": "{stem}_overlay.png",
    "json": "{stem}.json",
    "report": "{stem}_report.json",
    "probabilities": "{stem}_probabilities.tif",
    "uncertainty": "{stem}_uncertainty.tif",
}


def output_paths(path, out_dir) -> dict[str, Path]:
    """Every file of the result set of the image ``path`` in ``out_dir``, by role."""
    stem = Path(path).stem
    return {role: Path(out_dir) / name.format(stem=stem) for role, name in OUTPUTS.items()}


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(paths, out_dir, overwrite: bool = False) -> None:
    """Refuse, before anything is read or written, result sets that would collide:
    two inputs with one stem, an output that is an input or another input's output,
    and (without ``overwrite``) an existing result."""
    owner: dict[Path, Path] = {}
    stems: dict[str, Path] = {}
    for path in map(Path, paths):
        if path.stem in stems and not _same_file(path, stems[path.stem]):
            raise InputError(
                f"{stems[path.stem]} and {path} have the same name stem, so "
                "their results would overwrite each other; segment them into "
                "different --out folders or rename one"
            )
        stems[path.stem] = path
        for out in output_paths(path, out_dir).values():
            for other in map(Path, paths):
                if _same_file(out, other):
                    raise InputError(
                        f"the result {out} of {path} would overwrite the input "
                        f"{other}; choose another --out folder"
                    )
            if out in owner and owner[out] != path:
                raise InputError(
                    f"{owner[out]} and {path} would both write {out}; segment them "
                    "into different --out folders"
                )
            owner[out] = path
    if not overwrite:
        for out in owner:
            if out.exists():
                raise InputError(
                    f"{out} exists (an earlier result); add --overwrite to replace "
                    "it, or choose another --out folder"
                )
