"""Reading and writing SEM images and label masks.

Images come back as 2-D grey arrays with their physical pixel size (nm,
from the microscope's own metadata -- Zeiss ``CZ_SEM``, FEI / Thermo Fisher
``[Scan] PixelWidth``, Tescan ``PixelSizeX`` in the TIFF or a ``.hdr`` file
beside it, the ``.txt`` file that Hitachi and JEOL SEMs save beside each
image -- else TIFF resolution / ImageJ tags with a real unit, else
``None``).  TIFF is read with tifffile; PNG, JPEG and BMP with Pillow.
Labels come back as integer masks through a :class:`~.classes.ClassScheme`
(TIFF, PNG or BMP; never JPEG, whose compression changes painted colours).
Every write goes to a temporary name in the destination folder and is
renamed, so a crash leaves the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from .classes import ClassScheme
from .errors import InputError

#: The original work evaluates images whose height is a multiple of 16 (688
#: rows of a 768-row Zeiss image); the data bar is widened up to that grid.
DATA_BAR_GRID = 16

_UNIT_TO_NM = {"pm": 1e-3, "nm": 1.0, "um": 1e3, "µm": 1e3, "micron": 1e3, "microns": 1e3,
               "mm": 1e6, "cm": 1e7, "m": 1e9}


@dataclass
class SEMImage:
    """A grey image and what is known about it."""

    data: np.ndarray
    pixel_size_nm: float | None = None
    path: Path | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return self.path.stem if self.path else "image"


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a directory; give an image file")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (0 bytes)")
    return path


#: the image files that folders and batch runs pick up (all but TIFF read through Pillow)
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8": "JPEG", b"BM": "BMP"}


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) in _TIFF_MAGIC


def _read_pillow(path: Path) -> tuple[np.ndarray, bool]:
    """Pixels of a PNG / JPEG / BMP (any format Pillow reads) and whether the format
    is lossy: palettes become RGB(A), other colour models RGB, grey+alpha grey."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            lossy = im.format == "JPEG"
            if getattr(im, "n_frames", 1) > 1:
                raise InputError(f"{path} holds {im.n_frames} images; split it into single images")
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
            elif im.mode == "LA":
                im = im.convert("L")
            elif im.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA"):
                im = im.convert("RGB")
            data = np.asarray(im)
            if not data.dtype.isnative:  # e.g. "I;16B": big-endian words
                data = data.astype(data.dtype.newbyteorder("="))
    except Image.DecompressionBombError:
        raise InputError(f"{path} is too large for Pillow to decode safely; save it as a (tiled) "
                         "TIFF, which is read and segmented block by block") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        with open(path, "rb") as fh:
            head = fh.read(8)
        kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
        if kind:
            raise InputError(f"{path} is a {kind} file that cannot be decoded "
                             f"(truncated or corrupt?): {exc}") from None
        raise InputError(f"{path} is not an image file that can be read "
                         "(TIFF, PNG, JPEG or BMP)") from None
    return data, lossy


def _open_tiff(path: Path) -> tifffile.TiffFile:
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises many types on bad bytes
        raise InputError(f"{path} is not a readable TIFF: {exc}") from None
    if not tif.pages:
        tif.close()
        raise InputError(f"{path} holds no image")
    return tif


def _page_array(path: Path, tif: tifffile.TiffFile):
    page = tif.pages[0]
    try:
        data = page.asarray()
    except Exception as exc:
        raise InputError(f"{path}: the image data cannot be decoded (truncated or corrupt?): {exc}") from None
    return page, data


def _sem_pixel_size(tif: tifffile.TiffFile) -> float | None:
    if not tif.is_sem:
        return None
    entry = (tif.sem_metadata or {}).get("ap_image_pixel_size")
    if not entry or len(entry) < 3:
        return None
    value, unit = entry[1], str(entry[2]).strip()
    if unit in _UNIT_TO_NM and isinstance(value, (int, float)) and value > 0:
        return float(value) * _UNIT_TO_NM[unit]
    return None


def _fei_pixel_size(tif: tifffile.TiffFile) -> float | None:
    """FEI / Thermo Fisher SEMs (Quanta, Helios, Apreo, ...): ``[Scan] PixelWidth`` in metres."""
    if not tif.is_fei:
        return None
    md = tif.fei_metadata or {}
    for section in ("Scan", "EScan"):
        value = (md.get(section) or {}).get("PixelWidth")
        if isinstance(value, (int, float)) and value > 0:
            return float(value) * 1e9
    return None


#: Tescan SEMs store INI-style text in this private TIFF tag, and the same text in a
#: ``.hdr`` file beside the image; ``PixelSizeX`` is in metres
TESCAN_TAG = 50431
_TESCAN_PIXEL = re.compile(rb"PixelSizeX\s*=\s*([0-9.]+(?:[eE][-+]?[0-9]+)?)")


def _tescan_pixel_size(tif: tifffile.TiffFile, path: Path) -> float | None:
    tag = tif.pages[0].tags.get(TESCAN_TAG)
    texts = []
    if tag is not None:
        value = tag.value
        texts.append(value.encode("latin-1", "ignore") if isinstance(value, str) else bytes(value))
    hdr = path.with_suffix(".hdr")
    if hdr.is_file() and hdr.stat().st_size < 1_000_000:
        with contextlib.suppress(OSError):
            texts.append(hdr.read_bytes())
    for text in texts:
        m = _TESCAN_PIXEL.search(text)
        if m:
            with contextlib.suppress(ValueError):
                value = float(m.group(1))
                if value > 0:
                    return value * 1e9
    return None


#: Hitachi SEMs save ``<stem>.txt`` beside each image: INI text whose
#: ``[SemImageFile]`` section has ``PixelSize=`` in nm
_HITACHI_PIXEL = re.compile(r"^\s*PixelSize\s*=\s*([0-9.]+(?:[eE][-+]?[0-9]+)?)", re.M)
#: JEOL SEMs save ``<stem>.txt`` with ``$$SM_MICRON_BAR`` (the scale bar's length in
#: pixels) and ``$$SM_MICRON_MARKER`` (the length it stands for, e.g. ``5um``)
_JEOL_BAR = re.compile(r"^\s*\$\$?SM_MICRON_BAR\s+([0-9.]+)", re.M)
_JEOL_MARKER = re.compile(r"^\s*\$\$?SM_MICRON_MARKER\s+([0-9.]+)\s*(nm|um|µm|mm)\b", re.M | re.I)
_MARKER_NM = {"nm": 1.0, "um": 1e3, "µm": 1e3, "mm": 1e6}


def sidecar_pixel_size(path: Path) -> float | None:
    """Pixel size (nm) from the Hitachi or JEOL ``.txt`` file beside ``path``."""
    for side in dict.fromkeys(path.with_suffix(s) for s in (".txt", ".TXT", ".Txt")):
        if not side.is_file() or side.stat().st_size > 1_000_000:
            continue
        try:
            text = side.read_bytes().decode("latin-1")
        except OSError:
            continue
        value = None
        m = _HITACHI_PIXEL.search(text)
        if m and "[SemImageFile]" in text:
            value = float(m.group(1))
        bar, marker = _JEOL_BAR.search(text), _JEOL_MARKER.search(text)
        if value is None and bar and marker and float(bar.group(1)) > 0:
            marker_nm = float(marker.group(1)) * _MARKER_NM[marker.group(2).lower()]
            value = marker_nm / float(bar.group(1))
        if value is not None and 0.01 <= value <= 1e5:
            return value
    return None


def _pixel_size(tif: tifffile.TiffFile, path: Path) -> float | None:
    """The image's pixel size in nm: the microscope's own metadata first, then the
    TIFF resolution / ImageJ tags; None when nothing records a physical size."""
    return (_sem_pixel_size(tif) or _fei_pixel_size(tif) or _tescan_pixel_size(tif, path)
            or sidecar_pixel_size(path) or _tag_pixel_size(tif))


def _tag_pixel_size(tif: tifffile.TiffFile) -> float | None:
    page = tif.pages[0]
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).replace("\\u00B5", "µ").strip()
    xres = page.tags.get("XResolution")
    if xres is None:
        return None
    num, den = xres.value
    if not num or not den:
        return None
    per_unit = num / den  # pixels per unit
    if unit in _UNIT_TO_NM and per_unit > 0:
        return _UNIT_TO_NM[unit] / per_unit
    res_unit = page.tags.get("ResolutionUnit")
    if res_unit is not None and int(res_unit.value) == 3 and per_unit > 1:  # centimetre
        return 1e7 / per_unit
    return None  # "inch" resolutions are print settings, not physical pixel sizes


def is_grey_ramp(colormap: np.ndarray) -> bool:
    """True for a palette whose entries are (mostly) the grey ramp i -> (i, i, i).

    Zeiss SEM files store a grey ramp with a few entries recoloured for
    annotations (every 9th index); their pixel values are grey levels."""
    n = colormap.shape[1]
    ramp = np.round(np.arange(n) * (65535 / max(n - 1, 1)))
    close = (np.abs(colormap.astype(np.float64) - ramp) <= 256).all(axis=0)
    return close.mean() > 0.8


def to_grey(data: np.ndarray, colormap: np.ndarray | None = None) -> np.ndarray:
    """Palette, grey or RGB(A) pixels -> a 2-D grey array (dtype kept for grey)."""
    if colormap is not None and data.ndim == 2:
        if is_grey_ramp(colormap):
            return data
        data = (colormap >> 8).astype(np.uint8).T[data]  # (H, W, 3)
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        rgb = data[..., :3].astype(np.float32)
        grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        if np.issubdtype(data.dtype, np.integer):
            grey = np.round(grey).astype(data.dtype)
        return grey
    return data


def read_image(path, plane: int | None = None) -> SEMImage:
    """Read one SEM image as grey pixels with its pixel size (nm) when known."""
    path = _check_file(path)
    if not _is_tiff(path):  # PNG, JPEG, BMP, whatever the file is called
        if plane:
            raise InputError(f"{path} holds one image; plane {plane} does not exist")
        data, _ = _read_pillow(path)
        return _grey_image(path, to_grey(data), data.shape, sidecar_pixel_size(path), {})
    with _open_tiff(path) as tif:
        page, data = _page_array(path, tif)
        if page.photometric == tifffile.PHOTOMETRIC.RGB and data.ndim == 3 and data.shape[0] in (3, 4) \
                and data.shape[-1] not in (3, 4):
            data = np.moveaxis(data, 0, -1)  # RGB stored as separate planes
        colormap = page.colormap if page.photometric == tifffile.PHOTOMETRIC.PALETTE else None
        grey = to_grey(data, colormap)
        n_planes = len(tif.pages) if grey.ndim == 2 else (grey.shape[0] if grey.ndim == 3 else 0)
        if plane is not None:
            if not 0 <= plane < len(tif.pages):
                raise InputError(f"{path} has {len(tif.pages)} planes; plane {plane} does not exist")
            grey = to_grey(tif.pages[plane].asarray(), colormap)
        elif n_planes > 1 and not (grey.ndim == 2 and tif.pages[1].shape != page.shape) and \
                (grey.ndim == 3 or len(tif.series[0].shape) > 2):
            raise InputError(
                f"{path} is a stack of {n_planes} images; split it into single images "
                "(or open it in napari, where each plane can be segmented on its own)"
            )
        pixel = _pixel_size(tif, path)
        meta = {}
        if tif.is_sem:
            meta = {k: v for k, v in (tif.sem_metadata or {}).items()
                    if isinstance(v, (tuple, list)) and len(v) >= 2}
    return _grey_image(path, grey, data.shape, pixel, meta)


def _grey_image(path: Path, grey: np.ndarray, shape, pixel: float | None, meta: dict) -> SEMImage:
    """The checks every image passes: one 2-D plane, finite values, a usable size."""
    if grey.ndim != 2:
        raise InputError(f"{path} has shape {shape}; expected one 2-D grey, palette or RGB image")
    if grey.dtype.kind == "f":
        bad = ~np.isfinite(grey)
        if bad.all():
            raise InputError(f"{path} holds no finite pixel values (all NaN or Inf)")
        if bad.any():
            grey = grey.copy()
            grey[bad] = np.nanmedian(np.where(bad, np.nan, grey))
    elif grey.dtype == bool:
        grey = grey.astype(np.uint8) * 255
    if min(grey.shape) < 8:
        raise InputError(f"{path} is only {grey.shape[1]} x {grey.shape[0]} pixels; too small to segment")
    return SEMImage(np.ascontiguousarray(grey), pixel, path, meta)


def open_lazy(path) -> SEMImage:
    """Open a (huge) TIFF without reading its pixels: ``data`` is a zarr array
    that reads only the tiles or strips that are sliced.  Grey or palette
    images with a grey-ramp palette only."""
    import zarr

    path = _check_file(path)
    if not _is_tiff(path):
        raise InputError(f"{path} is not a TIFF; only TIFF files can be opened lazily "
                         "(block by block)")
    with _open_tiff(path) as tif:
        page = tif.pages[0]
        if page.photometric == tifffile.PHOTOMETRIC.PALETTE and not is_grey_ramp(page.colormap):
            raise InputError(f"{path} has a colour palette; convert it to grey to open it lazily")
        if len(page.shape) != 2:
            raise InputError(f"{path} has shape {page.shape}; lazy opening takes 2-D grey images")
        pixel = _pixel_size(tif, path)
    store = tifffile.imread(path, aszarr=True, key=0)
    return SEMImage(zarr.open(store, mode="r"), pixel, path, {})


def read_labels(path, scheme: ClassScheme, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a label mask: a colour overlay (palette or RGB TIFF / PNG / BMP, decoded
    through ``scheme``) or an integer image with values 0..K used as they are."""
    path = _check_file(path)
    if _is_tiff(path):
        with _open_tiff(path) as tif:
            page, data = _page_array(path, tif)
            if page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
                data = (page.colormap >> 8).astype(np.uint8).T[data]  # colours, decoded below
    else:
        data, lossy = _read_pillow(path)
        if lossy:
            raise InputError(
                f"{path} is a JPEG: its compression changes the painted colours and values, so it "
                "cannot hold labels; save the labels as TIFF or PNG"
            )
    if data.ndim == 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8:
        labels = scheme.decode_colors(data[..., :3])
    elif data.ndim == 2 and data.dtype.kind in "iub":
        scheme.check_labels(data, what=str(path))
        labels = data.astype(np.uint8)
    else:
        raise InputError(
            f"{path} has shape {data.shape} and type {data.dtype}; labels must be a colour "
            "overlay (palette or RGB) or a 2-D integer image with values 0..K"
        )
    if shape is not None and labels.shape != tuple(shape):
        raise InputError(
            f"{path} is {labels.shape[1]} x {labels.shape[0]} pixels but its image is "
            f"{shape[1]} x {shape[0]}; labels and image must have the same size"
        )
    return labels


def detect_data_bar(grey: np.ndarray, max_fraction: float = 0.25, flat: float = 0.5) -> int:
    """Height in rows of the microscope's data bar at the bottom (0 if none).

    A data bar is a block of bottom rows drawn on a flat background: in each
    of them one grey value covers most pixels, which rows of a real SEM image
    never do.  The height is then widened so that the image above it has a
    multiple of ``DATA_BAR_GRID`` rows, as in the original evaluation.
    """
    grey = np.asarray(grey)
    h, w = grey.shape[:2]
    limit = int(h * max_fraction)
    is_flat = []
    for r in range(h - 1, h - 1 - limit, -1):
        _, counts = np.unique(grey[r], return_counts=True)
        is_flat.append(counts.max() >= flat * w)
    # the last row or two of some detectors hold noise below the bar
    skip = next((i for i, f in enumerate(is_flat[:4]) if f), None)
    if skip is None:
        return 0
    run = 0
    for f in is_flat[skip:]:
        if not f:
            break
        run += 1
    if run < 8:  # a line or two of saturated pixels is not a data bar
        return 0
    rows = skip + run
    keep = ((h - rows) // DATA_BAR_GRID) * DATA_BAR_GRID
    return h - keep if keep > 0 else rows


def valid_mask(shape, data_bar: int) -> np.ndarray:
    mask = np.ones(shape, dtype=bool)
    if data_bar:
        mask[shape[0] - data_bar :] = False
    return mask


def resolve_data_bar(grey: np.ndarray, data_bar: int | None) -> int:
    """``None`` -> detect; an explicit number of rows is checked and used."""
    if data_bar is None:
        return detect_data_bar(grey)
    if data_bar < 0 or data_bar >= grey.shape[0]:
        raise InputError(f"--data-bar {data_bar} must be between 0 and {grey.shape[0] - 1} rows")
    return int(data_bar)


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
SAMPLE_PIXELS = 1_000_000


def _grid_step(rows: int, cols: int, max_samples: int | None) -> int:
    return max(1, int(np.ceil(np.sqrt(rows * cols / (max_samples or SAMPLE_PIXELS)))))


def sample_grid(grey, max_samples: int | None = None, rows: int | None = None) -> np.ndarray:
    """At most ``max_samples`` pixels of the first ``rows`` rows (default: all) of a
    (possibly huge or lazy) image on a regular grid, as float32.  Slicing with a
    step reads a zarr or dask image chunk by chunk, never all of it at once."""
    rows = grey.shape[0] if rows is None else rows
    step = _grid_step(rows, grey.shape[1], max_samples)
    return np.asarray(grey[:rows:step, ::step], dtype=np.float32)


def intensity_bounds(grey, low: float = 0.5, high: float = 99.5, mask=None, max_samples: int | None = None):
    """Robust (low, high) percentiles of an image; huge or lazy images are
    sampled on a regular grid of at most ``max_samples`` pixels."""
    sample = sample_grid(grey, max_samples)
    if mask is not None:
        step = _grid_step(grey.shape[0], grey.shape[1], max_samples)
        sample = sample[np.asarray(mask)[::step, ::step]]
    lo, hi = np.percentile(sample, [low, high]) if sample.size else (0.0, 1.0)
    if hi - lo < 1e-6:
        hi = lo + 1.0
    return float(lo), float(hi)


def normalize(grey: np.ndarray, low: float = 0.5, high: float = 99.5, mask=None, bounds=None) -> np.ndarray:
    """Robust per-image intensity normalisation to about [0, 1] (float32);
    ``bounds`` gives precomputed (low, high) values (whole-image ones for a block)."""
    g = np.asarray(grey, dtype=np.float32)
    lo, hi = bounds if bounds is not None else intensity_bounds(g, low, high, mask)
    return (g - lo) / (hi - lo)
