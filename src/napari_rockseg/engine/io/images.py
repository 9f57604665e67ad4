"""Reading grey images with their physical pixel size (nm) from the microscope's own metadata
(Zeiss CZ_SEM, FEI / Thermo Fisher, Tescan, Hitachi / JEOL sidecar files), else TIFF resolution
/ ImageJ tags with a real unit, else None.

TIFF with tifffile; PNG, JPEG and BMP with Pillow.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from ..errors import InputError

_UNIT_TO_NM = {
    "pm": 1e-3,
    "nm": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "mm": 1e6,
    "cm": 1e7,
    "m": 1e9,
    "Å": 0.1,
    "angstrom": 0.1,
}
#: pixel sizes a microscope can record (0.05 nm .. 1 mm); metadata outside this
#: range is wrong (a unit mix-up, a default never set) and is ignored with a note
PLAUSIBLE_NM = (0.05, 1e6)


@dataclass
class SEMImage:
    """A grey image and what is known about it."""

    data: np.ndarray
    pixel_size_nm: float | None = None
    path: Path | None = None
    metadata: dict = field(default_factory=dict)
    #: what the reader had to decide (an implausible pixel size ignored, NaN pixels filled)
    notes: list = field(default_factory=list)

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


def _read_pillow(path: Path, indices: bool = False) -> tuple[np.ndarray, bool]:
    """Pixels of a PNG / JPEG / BMP (any format Pillow reads) and whether the format
    is lossy: palettes become RGB(A) (their indices with ``indices``), other colour
    models RGB, grey+alpha grey."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            lossy = im.format == "JPEG"
            if getattr(im, "n_frames", 1) > 1:
                raise InputError(f"{path} holds {im.n_frames} images; split it into single images")
            if im.mode == "P" and indices:
                pass
            elif im.mode in ("P", "PA"):
                im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
            elif im.mode == "LA":
                im = im.convert("L")
            elif im.mode not in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA"):
                im = im.convert("RGB")
            data = np.asarray(im)
            if not data.dtype.isnative:  # e.g. "I;16B": big-endian words
                data = data.astype(data.dtype.newbyteorder("="))
    except Image.DecompressionBombError:
        raise InputError(
            f"{path} is too large for Pillow to decode safely; save it as a (tiled) "
            "TIFF, which is read and segmented block by block"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        with open(path, "rb") as fh:
            head = fh.read(8)
        kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), None)
        if kind:
            raise InputError(
                f"{path} is a {kind} file that cannot be decoded (truncated or corrupt?): {exc}"
            ) from None
        raise InputError(
            f"{path} is not an image file that can be read (TIFF, PNG, JPEG or BMP)"
        ) from None
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
        raise InputError(
            f"{path}: the image data cannot be decoded (truncated or corrupt?): {exc}"
        ) from None
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


def _ome_pixel_size(tif: tifffile.TiffFile) -> float | None:
    """OME-TIFF: ``Pixels PhysicalSizeX`` with ``PhysicalSizeXUnit`` (µm when absent)."""
    if not tif.is_ome:
        return None
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(tif.ome_metadata or "")
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Pixels" and "PhysicalSizeX" in el.attrib:
            unit = el.attrib.get("PhysicalSizeXUnit", "µm").strip()
            try:
                value = float(el.attrib["PhysicalSizeX"])
            except ValueError:
                return None
            return value * _UNIT_TO_NM[unit] if unit in _UNIT_TO_NM else None
    return None


def _plausible(value: float | None, source: str, notes: list) -> float | None:
    if value is None:
        return None
    lo, hi = PLAUSIBLE_NM
    if not (np.isfinite(value) and lo <= value <= hi):
        notes.append(
            f"the {source} pixel size {value:g} nm is outside {lo:g} nm .. 1 mm and is "
            "ignored; give the pixel size with --pixel-size"
        )
        return None
    return float(value)


def _pixel_size(tif: tifffile.TiffFile, path: Path, notes: list | None = None) -> float | None:
    """The image's pixel size in nm: the microscope's own metadata first, then OME-XML,
    then the TIFF resolution / ImageJ tags; None when nothing records a plausible one."""
    notes = [] if notes is None else notes
    sources = (
        (
            "microscope's",
            lambda: (
                _sem_pixel_size(tif)
                or _fei_pixel_size(tif)
                or _tescan_pixel_size(tif, path)
                or sidecar_pixel_size(path)
            ),
        ),
        ("OME-XML", lambda: _ome_pixel_size(tif)),
        ("TIFF tags'", lambda: _tag_pixel_size(tif)),
    )
    for source, get in sources:
        value = _plausible(get(), source, notes)
        if value is not None:
            return value
    return None


def _tag_pixel_size(tif: tifffile.TiffFile) -> float | None:
    page = tif.pages[0]
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).replace("\\u00B5", "µ").strip()
    unit = {"u": "um", "micron": "um"}.get(unit, unit)
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
        notes: list[str] = []
        pixel = _plausible(sidecar_pixel_size(path), "microscope's", notes)
        return _grey_image(path, to_grey(data), data.shape, pixel, {}, notes)
    with _open_tiff(path) as tif:
        page, data = _page_array(path, tif)
        if (
            page.photometric == tifffile.PHOTOMETRIC.RGB
            and data.ndim == 3
            and data.shape[0] in (3, 4)
            and data.shape[-1] not in (3, 4)
        ):
            data = np.moveaxis(data, 0, -1)  # RGB stored as separate planes
        colormap = page.colormap if page.photometric == tifffile.PHOTOMETRIC.PALETTE else None
        grey = to_grey(data, colormap)
        n_planes = len(tif.pages) if grey.ndim == 2 else (grey.shape[0] if grey.ndim == 3 else 0)
        if plane is not None:
            if not 0 <= plane < len(tif.pages):
                raise InputError(
                    f"{path} has {len(tif.pages)} planes; plane {plane} does not exist"
                )
            grey = to_grey(tif.pages[plane].asarray(), colormap)
        elif (
            n_planes > 1
            and not (grey.ndim == 2 and tif.pages[1].shape != page.shape)
            and (grey.ndim == 3 or len(tif.series[0].shape) > 2)
        ):
            raise InputError(
                f"{path} is a stack of {n_planes} images; split it into single images "
                "(or open it in napari, where each plane can be segmented on its own)"
            )
        notes = []
        pixel = _pixel_size(tif, path, notes)
        meta = {}
        if tif.is_sem:
            meta = {
                k: v
                for k, v in (tif.sem_metadata or {}).items()
                if isinstance(v, (tuple, list)) and len(v) >= 2
            }
    return _grey_image(path, grey, data.shape, pixel, meta, notes)


def _grey_image(
    path: Path, grey: np.ndarray, shape, pixel: float | None, meta: dict, notes: list
) -> SEMImage:
    """The checks every image passes: one 2-D plane, finite values, a usable size."""
    if grey.ndim != 2:
        raise InputError(f"{path} has shape {shape}; expected one 2-D grey, palette or RGB image")
    if grey.dtype.kind == "f":
        bad = ~np.isfinite(grey)
        if bad.all():
            raise InputError(f"{path} holds no finite pixel values (all NaN or Inf)")
        if bad.any():  # e.g. outside a CT reconstruction's field of view
            grey = grey.copy()
            grey[bad] = np.nanmedian(np.where(bad, np.nan, grey))
            notes.append(
                f"{path.name}: {int(bad.sum())} NaN / Inf pixels were set to the median grey value"
            )
    elif grey.dtype == bool:
        grey = grey.astype(np.uint8) * 255
    if min(grey.shape) < 8:
        raise InputError(
            f"{path} is only {grey.shape[1]} x {grey.shape[0]} pixels; too small to segment"
        )
    return SEMImage(np.ascontiguousarray(grey), pixel, path, meta, notes)


def open_lazy(path) -> SEMImage:
    """Open a (huge) TIFF without reading its pixels: ``data`` is a zarr array
    that reads only the tiles or strips that are sliced.  Grey or palette
    images with a grey-ramp palette only."""
    import zarr

    path = _check_file(path)
    if not _is_tiff(path):
        raise InputError(
            f"{path} is not a TIFF; only TIFF files can be opened lazily (block by block)"
        )
    with _open_tiff(path) as tif:
        page = tif.pages[0]
        if page.photometric == tifffile.PHOTOMETRIC.PALETTE and not is_grey_ramp(page.colormap):
            raise InputError(f"{path} has a colour palette; convert it to grey to open it lazily")
        if len(page.shape) != 2:
            raise InputError(f"{path} has shape {page.shape}; lazy opening takes 2-D grey images")
        notes = []
        pixel = _pixel_size(tif, path, notes)
    store = tifffile.imread(path, aszarr=True, key=0)
    return SEMImage(zarr.open(store, mode="r"), pixel, path, {}, notes)
