"""Rock measurements of a 2-D label image: phase fractions and areas, pore sizes and
organic-hosted porosity."""

from __future__ import annotations

import numpy as np


def phase_fractions(labels: np.ndarray, n_classes: int, mask=None) -> np.ndarray:
    """Area fraction of classes 1..K among the labelled pixels in ``mask``."""
    labels = np.asarray(labels)
    keep = labels > 0
    if mask is not None:
        keep &= mask
    counts = np.bincount(labels[keep].astype(np.int64), minlength=n_classes + 1)[1 : n_classes + 1]
    total = counts.sum()
    return counts / total if total else np.zeros(n_classes)


# -- rock measurements ------------------------------------------------------
def _components(binary: np.ndarray, connectivity: int):
    from skimage.measure import label

    return label(binary, connectivity=connectivity)


def object_stats(
    labels: np.ndarray,
    cls: int,
    pixel_size_nm: float | None = None,
    mask=None,
    connectivity: int = 2,
    min_size: int = 1,
    exclude_border: bool = False,
    bins: int = 20,
) -> dict:
    """Connected objects of class ``cls``: count, equivalent circular diameters
    (nm when the pixel size is known, else pixels), d10/d50/d90, mean and a
    histogram on log-spaced bins.  Objects smaller than ``min_size`` pixels are
    dropped; objects touching the image border (or the edge of ``mask``) are
    flagged, and dropped with ``exclude_border``."""
    labels = np.asarray(labels)
    region = labels == cls
    if mask is not None:
        region &= mask
    comp = _components(region, connectivity)
    n = int(comp.max())
    areas = np.bincount(comp.ravel(), minlength=n + 1)[1:]
    edge = np.zeros(labels.shape, bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    if mask is not None:
        from scipy.ndimage import binary_erosion

        edge |= mask & ~binary_erosion(mask, border_value=0)
    touching = np.zeros(n + 1, bool)
    touching[np.unique(comp[edge & (comp > 0)])] = True
    touching = touching[1:]
    keep = areas >= max(1, min_size)
    if exclude_border:
        keep &= ~touching
    scale = pixel_size_nm or 1.0
    ecd = 2.0 * np.sqrt(areas[keep] / np.pi) * scale
    unit = "nm" if pixel_size_nm else "px"
    out = {
        "count": int(keep.sum()),
        "touching_border": int((touching & (areas >= max(1, min_size))).sum()),
        "unit": unit,
        "diameters": ecd.tolist(),
    }
    if ecd.size:
        d10, d50, d90 = np.percentile(ecd, [10, 50, 90])
        lo, hi = max(ecd.min(), 1e-9), ecd.max()
        edges = (
            np.geomspace(lo, hi * 1.0001, bins + 1) if hi > lo else np.array([lo * 0.99, hi * 1.01])
        )
        hist, edges = np.histogram(ecd, bins=edges)
        out.update(
            {
                "d10": float(d10),
                "d50": float(d50),
                "d90": float(d90),
                "mean": float(ecd.mean()),
                "histogram": {"edges": edges.tolist(), "counts": hist.tolist()},
            }
        )
    else:
        out.update(
            {
                "d10": None,
                "d50": None,
                "d90": None,
                "mean": None,
                "histogram": {"edges": [], "counts": []},
            }
        )
    return out


def organic_hosted_share(
    labels: np.ndarray, pore: int, organic: int, mask=None, connectivity: int = 2, min_size: int = 1
) -> float | None:
    """Share of pore area in pores inside or touching organic matter (the rest is
    in mineral grains / clay).  None when there is no pore."""
    from scipy.ndimage import binary_dilation, generate_binary_structure

    labels = np.asarray(labels)
    region = labels == pore
    if mask is not None:
        region &= mask
    comp = _components(region, connectivity)
    areas = np.bincount(comp.ravel())
    areas[0] = 0
    areas[areas < max(1, min_size)] = 0
    total = areas.sum()
    if total == 0:
        return None
    near = binary_dilation(labels == organic, structure=generate_binary_structure(2, connectivity))
    hosted = np.unique(comp[near & (comp > 0)])
    return float(areas[hosted].sum() / total)


def rock_report(
    labels: np.ndarray,
    scheme,
    pixel_size_nm: float | None = None,
    mask=None,
    min_size: int = 1,
    exclude_border: bool = False,
    connectivity: int = 2,
) -> dict:
    """Everything a petrophysicist reads off a segmentation: area fraction and
    physical area of every class, object counts, the pore-size distribution and
    the organic-hosted share of porosity."""
    labels = np.asarray(labels)
    valid = labels > 0
    if mask is not None:
        valid &= mask
    k = scheme.n_classes
    fractions = phase_fractions(labels, k, valid)
    counts = np.bincount(labels[valid].astype(np.int64), minlength=k + 1)[1 : k + 1]
    px_area_um2 = (pixel_size_nm / 1000.0) ** 2 if pixel_size_nm else None
    classes = {}
    for c, name in zip(scheme.labels, scheme.names):
        st = object_stats(labels, c, pixel_size_nm, valid, connectivity, min_size, exclude_border)
        classes[name] = {
            "fraction": float(fractions[c - 1]),
            "pixels": int(counts[c - 1]),
            "area_um2": None if px_area_um2 is None else float(counts[c - 1] * px_area_um2),
            "objects": st["count"],
        }
    report = {
        "pixel_size_nm": pixel_size_nm,
        "pixels": int(valid.sum()),
        "area_um2": None if px_area_um2 is None else float(valid.sum() * px_area_um2),
        "classes": classes,
    }
    pore, organic = scheme.find("pore"), scheme.find("organic")
    if pore is not None:
        report["porosity"] = float(fractions[pore - 1])
        report["pores"] = object_stats(
            labels, pore, pixel_size_nm, valid, connectivity, min_size, exclude_border
        )
        if organic is not None:
            report["organic_hosted_pore_share"] = organic_hosted_share(
                labels, pore, organic, valid, connectivity, min_size
            )
    if organic is not None:
        report["organic_fraction"] = float(fractions[organic - 1])
    for key, cand in (("clay_fraction", "clay"), ("mineral_fraction", "mineral")):
        lab = scheme.find(cand)
        if lab is not None:
            report[key] = float(fractions[lab - 1])
    return report


SUMMARY_KEYS = (
    "porosity",
    "organic_fraction",
    "clay_fraction",
    "mineral_fraction",
    "organic_hosted_pore_share",
)


def summary_row(report: dict) -> dict:
    """One flat row of scalar quantities (for CSV tables)."""
    row = {k: report.get(k) for k in SUMMARY_KEYS if k in report}
    row["pixel_size_nm"] = report.get("pixel_size_nm")
    row["area_um2"] = report.get("area_um2")
    pores = report.get("pores")
    if pores:
        row.update({f"pore_{k}_{pores['unit']}": pores[k] for k in ("d10", "d50", "d90", "mean")})
        row["pore_count"] = pores["count"]
        row["pores_touching_border"] = pores["touching_border"]
    for name, c in report["classes"].items():
        key = name.replace(" ", "_")
        row[f"{key}_fraction"] = c["fraction"]
        row[f"{key}_objects"] = c["objects"]
    return row


def compare_reports(truth: dict, pred: dict) -> dict:
    """Each scalar quantity in truth and prediction, and their difference."""
    a, b = summary_row(truth), summary_row(pred)
    out = {}
    for k in a:
        if isinstance(a.get(k), (int, float)) and isinstance(b.get(k), (int, float)):
            out[k] = {"truth": a[k], "prediction": b[k], "difference": b[k] - a[k]}
    return out
