"""Rock physics of a 3-D label volume: phase volumes, connected and isolated porosity,
pore sizes by local thickness, specific surface, tortuosity and permeability.

Labels follow the house convention: 0 = unlabelled (left out of every fraction and
treated as non-pore for connectivity and transport), 1..K = classes of a ClassScheme;
the pore class is ``scheme.find("pore")``.  Axes are (z, y, x); a voxel size is given in
nm as (z, y, x) or one number, and every physical quantity is None without it.

Definitions used in the report (all fractions are of the labelled voxels):

* clusters are face-connected (6-neighbour) groups of pore voxels, the connectivity
  through which fluid and diffusion pass;
* ``connected_porosity_axes[a]``: pore voxels in clusters that touch both opposite
  faces normal to axis ``a``; ``connected_porosity``: in clusters spanning any axis;
* ``isolated_porosity`` = porosity - connected_porosity: pore voxels in clusters that
  span no pair of opposite faces (they may still touch one face);
  ``enclosed_porosity``: the part of it in clusters touching no face at all;
* pore diameters: local thickness, i.e. twice the radius of the largest ball inside
  the pore space that covers a voxel, the radius measured from the ball's centre voxel
  to the nearest non-pore voxel centre (PoreSpy's convention: a slit w voxels wide
  reads w + 1); computed with an anisotropic Euclidean distance transform (``edt``) in
  physical units, so anisotropic voxels need no resampling.  Statistics are
  volume-weighted: every pore voxel counts once;
* specific surface: area of the pore / non-pore interface (marching cubes on the voxels,
  which reads smooth curved walls 4-9 % high, flat axis-aligned ones exactly) per labelled
  bulk volume, in 1/um (1/voxel without a voxel size);
* tortuosity: diffusive tortuosity factor of the spanning pore space (PoreSpy
  ``tortuosity_fd``: formation factor x effective porosity; 1 for straight channels);
* permeability: single-phase Stokes flow (OpenPNM) through a SNOW2 pore network (PoreSpy).

Tortuosity and the pore network run on voxels made isotropic (nearest neighbour at the
finest spacing) because both PoreSpy methods assume cubic voxels; when a volume would
need more than ``max_memory_gb`` they run on its central crop and say so in ``notes``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..events import Progress, drain
from .transport import (
    AXES,
    BYTES_TORTUOSITY,
    MILLIDARCY_M2,
    isotropic_copy,
    network_permeability,
    tortuosity_factor,
)

_BYTES_CLUSTERS = 12  # per voxel: int32 cluster labels, masks
_BYTES_THICKNESS = 24  # per voxel: float32 distances, radii, edt scratch
PERMEABILITY_ASSUMPTIONS = (
    (
        "single-phase, incompressible, creeping (Stokes) flow of a Newtonian fluid; "
        "permeability does not depend on its viscosity"
    ),
    "pore network: PoreSpy snow2 with 3-voxel boundary pores on every face",
    (
        "hydraulic conductance: OpenPNM generic_hydraulic, cones_and_cylinders size factors, "
        "inscribed pore and throat diameters; boundary pores take their widest throat's diameter"
    ),
    (
        "pressure drop between the boundary pores of two opposite faces; length = their distance, "
        "area = that face of the volume; the other faces are closed"
    ),
)


# -- inputs -------------------------------------------------------------------------
def _spacing(voxel_size_nm):
    if voxel_size_nm is None:
        return None
    size = np.atleast_1d(np.asarray(voxel_size_nm, dtype=float))
    if size.size == 1:
        size = np.repeat(size, 3)
    if size.shape != (3,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
        raise InputError(
            f"voxel size {voxel_size_nm!r} must be one positive number or "
            "three (z, y, x) in nm; leave it out to measure in voxels"
        )
    return tuple(float(s) for s in size)


def _inputs(labels, scheme, voxel_size_nm):
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InputError(
            f"a volume report needs a 3-D label volume (z, y, x), got shape "
            f"{labels.shape}; use analysis.rock.rock_report for 2-D images"
        )
    if labels.dtype != bool and not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"labels must be integers (0 = unlabelled, 1..K classes), got "
            f"{labels.dtype}; round or convert the label volume first"
        )
    if min(labels.shape) < 2:
        raise InputError(f"every axis of the volume needs at least 2 voxels, got {labels.shape}")
    scheme.check_labels(labels)
    pore = scheme.find("pore")
    if pore is None:
        raise InputError(
            f"the class scheme ({', '.join(scheme.names)}) has no pore class; "
            "name the pore class so that it contains 'pore'"
        )
    if not np.any(labels > 0):
        raise InputError("the label volume has no labelled voxels (all 0); label it first")
    return labels, pore, _spacing(voxel_size_nm)


def _check_memory(nbytes, budget, what, option):
    if nbytes > budget:
        raise InputError(
            f"{what} of this volume needs about {nbytes / 2**30:.2g} GB, more "
            f"than max_memory_gb={budget / 2**30:g}; pass {option}, crop the "
            "volume, or raise max_memory_gb"
        )


# -- phases and connectivity ---------------------------------------------------------
def _phases(labels, scheme, spacing):
    counts = np.bincount(labels.ravel(), minlength=scheme.n_classes + 1)[1 : scheme.n_classes + 1]
    total = int(counts.sum())
    voxel_um3 = None if spacing is None else math.prod(spacing) * 1e-9
    classes = {
        name: {
            "fraction": int(n) / total,
            "voxels": int(n),
            "volume_um3": None if voxel_um3 is None else int(n) * voxel_um3,
        }
        for name, n in zip(scheme.names, counts)
    }
    return {
        "voxels": total,
        "volume_um3": None if voxel_um3 is None else total * voxel_um3,
        "classes": classes,
    }


def pore_clusters(pore):
    """Face-connected clusters of a boolean pore mask: (cluster labels, voxel count per
    label, spanning label ids per axis, ids of clusters touching no face)."""
    from scipy.ndimage import label

    clusters, n = label(pore)
    sizes = np.bincount(clusters.ravel(), minlength=n + 1)
    sizes[0] = 0
    touching = np.zeros(n + 1, bool)
    spanning = []
    for axis in range(3):
        low = np.unique(clusters.take(0, axis=axis))
        high = np.unique(clusters.take(-1, axis=axis))
        touching[low] = touching[high] = True
        spanning.append(np.setdiff1d(np.intersect1d(low, high), [0]))
    enclosed = np.flatnonzero(~touching)
    return clusters, sizes, spanning, enclosed[enclosed > 0]


def _connectivity(labels, pore_label, organic_label, total):
    pore = labels == pore_label
    clusters, sizes, spanning, enclosed = pore_clusters(pore)
    n_pore = int(sizes.sum())
    connected = np.unique(np.concatenate(spanning))
    out = {
        "porosity": n_pore / total,
        "connected_porosity": int(sizes[connected].sum()) / total,
        "connected_porosity_axes": {a: int(sizes[s].sum()) / total for a, s in zip(AXES, spanning)},
        "enclosed_porosity": int(sizes[enclosed].sum()) / total,
        "pore_clusters": int(np.count_nonzero(sizes)),
    }
    out["isolated_porosity"] = max(0.0, out["porosity"] - out["connected_porosity"])
    if organic_label is not None:
        from scipy.ndimage import binary_dilation

        near = binary_dilation(labels == organic_label) & pore
        hosted = np.unique(clusters[near])
        out["organic_hosted_pore_share"] = (int(sizes[hosted].sum()) / n_pore) if n_pore else None
    return pore, out, [a for a, s in zip(range(3), spanning) if s.size]


# -- pore sizes and surface ----------------------------------------------------------
def local_thickness(pore, spacing=(1.0, 1.0, 1.0), max_levels=48):
    """Radius (in the units of ``spacing``) of the largest ball inside ``pore`` that covers
    each voxel; 0 outside.  Radii are distance-transform values; beyond ``max_levels``
    distinct values they are taken on a geometric ladder (each radius rounded down to a
    rung, at most (max/min)^(1/(max_levels-1)) - 1 low, e.g. 10 % for a ratio of 100)."""
    import edt

    pore = np.ascontiguousarray(pore, dtype=bool)
    spacing = tuple(float(s) for s in spacing)
    dt = edt.edt(pore, anisotropy=spacing, black_border=False)
    values = np.unique(dt[pore])
    if values.size > max_levels:
        rungs = np.geomspace(values[0], values[-1], max_levels)
        values = np.unique(values[np.searchsorted(values, rungs, side="right") - 1])
    radius = np.zeros(pore.shape, np.float32)
    for r in values:
        # Centres whose ball of radius r holds no solid, dilated by r (PoreSpy's 'dt' method
        # with smooth=True, with fractional anisotropic radii).
        far = edt.edt(dt < r, anisotropy=spacing, black_border=False)
        radius[far < r] = r
    return radius


def _size_stats(diameters, unit, bins):
    if diameters.size == 0:
        return {
            "unit": unit,
            "d10": None,
            "d50": None,
            "d90": None,
            "mean": None,
            "histogram": {"edges": [], "counts": []},
        }
    d10, d50, d90 = np.percentile(diameters, [10, 50, 90])
    lo, hi = float(diameters.min()), float(diameters.max())
    edges = np.geomspace(lo, hi * 1.0001, bins + 1) if hi > lo else np.array([lo * 0.99, hi * 1.01])
    counts, edges = np.histogram(diameters, bins=edges)
    return {
        "unit": unit,
        "weighting": "volume (pore voxels)",
        "d10": d10,
        "d50": d50,
        "d90": d90,
        "mean": float(diameters.mean(dtype=np.float64)),
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


def surface_area(pore, spacing=(1.0, 1.0, 1.0), slab=32):
    """Area of the pore / non-pore interface (marching cubes at level 0.5), in the square
    of ``spacing``'s unit; faces of the volume do not count.  On voxels it reads spheres and
    cylinders 4-9 % high (measured).  Runs on slabs of ``slab`` cube layers: marching cubes
    is local to each cube, so the sum equals the whole-volume area."""
    from skimage.measure import marching_cubes, mesh_surface_area

    area = 0.0
    for z0 in range(0, pore.shape[0] - 1, slab):
        sub = pore[z0 : z0 + slab + 1]
        if sub.all() or not sub.any():
            continue
        verts, faces, _, _ = marching_cubes(sub.astype(np.float32), 0.5, spacing=spacing)
        area += float(mesh_surface_area(verts, faces))
    return area


# -- the report ------------------------------------------------------------------------
def _unlabelled_faces(labels: np.ndarray) -> list[str]:
    """A note when unlabelled voxels (a CT cylinder's outside, say) cover most of a face of
    the box: pores cannot reach that face, so connectivity across it reads 0."""
    axes = []
    for axis, name in enumerate(AXES):
        faces = (np.take(labels, 0, axis), np.take(labels, -1, axis))
        if any((f == 0).mean() > 0.5 for f in faces):
            axes.append(name)
    if not axes:
        return []
    return [
        f"most of the faces across {', '.join(axes)} are unlabelled (e.g. outside a field of "
        "view): connected porosity, tortuosity and permeability along those axes count pores "
        "that reach both faces of the box, which they cannot there"
    ]


def volume_report_steps(
    labels,
    scheme,
    voxel_size_nm=None,
    *,
    pore_sizes=True,
    tortuosity=True,
    network=True,
    bins=30,
    max_memory_gb=8.0,
):
    """Generator of Progress events, one per stage, returning the report dict (JSON-ready:
    plain floats, None for what is unknown or not computed).  ``pore_sizes``,
    ``tortuosity`` and ``network`` (with permeability) switch off the slow parts."""
    labels, pore_label, spacing = _inputs(labels, scheme, voxel_size_nm)
    budget = max_memory_gb * 2**30
    stages = (
        ["phases", "connectivity"]
        + (["pore sizes"] if pore_sizes else [])
        + ["surface"]
        + ([f"tortuosity {a}" for a in AXES] if tortuosity else [])
        + (["network"] if network else [])
    )
    counter = iter(range(len(stages)))

    def progress(stage):
        return Progress(stage=stage, step=next(counter), total=len(stages))

    yield progress("phases")
    report = {
        "dimensions": 3,
        "shape": list(labels.shape),
        "voxel_size_nm": None if spacing is None else list(spacing),
        "unit": "nm" if spacing else "voxel",
        **_phases(labels, scheme, spacing),
        "notes": _unlabelled_faces(labels),
    }
    organic = scheme.find("organic")
    if organic is not None:
        report["organic_fraction"] = report["classes"][scheme.names[organic - 1]]["fraction"]
    yield progress("connectivity")
    _check_memory(labels.size * _BYTES_CLUSTERS, budget, "pore connectivity", "a smaller volume")
    pore, conn, spanning = _connectivity(labels, pore_label, organic, report["voxels"])
    report.update(conn)
    sizes = None
    if pore_sizes:
        yield progress("pore sizes")
        sizes = _pore_size_part(labels, pore, spacing, budget, report["unit"], bins)
    report["pore_sizes"] = sizes
    d50 = None if sizes is None else sizes["d50"]
    report["pore_diameter_d50_nm"] = d50 if spacing else None
    report["pore_diameter_d50_voxels"] = None if spacing else d50
    yield progress("surface")
    per_unit = surface_area(pore, spacing or (1.0, 1.0, 1.0)) / (
        report["voxels"] * math.prod(spacing or (1.0, 1.0, 1.0))
    )
    report["specific_surface_per_um"] = per_unit * 1000.0 if spacing else None
    report["specific_surface_per_voxel"] = None if spacing else per_unit
    report["tortuosity"] = dict.fromkeys(AXES)
    report["tortuosity_method"] = None
    if tortuosity:
        yield from _tortuosity_part(report, pore, spacing, spanning, budget, progress)
    if network:
        yield progress("network")
    _network_part(report, pore, spacing, spanning, budget, network)
    return _plain(report)


def _pore_size_part(labels, pore, spacing, budget, unit, bins):
    _check_memory(
        labels.size * _BYTES_THICKNESS,
        budget,
        "local thickness",
        "pore_sizes=False (--no-pore-sizes)",
    )
    diameters = 2.0 * local_thickness(pore, spacing or (1.0, 1.0, 1.0))[pore]
    sizes = _size_stats(diameters, unit, bins)
    sizes["method"] = "local thickness (anisotropic edt), diameter = 2 x radius"
    return sizes


def _network_part(report, pore, spacing, spanning, budget, network):
    """The pore network and permeability entries of ``report`` (None when not computed)."""
    report.update(
        {
            "network": None,
            "permeability_m2": dict.fromkeys(AXES),
            "permeability_mD": dict.fromkeys(AXES),
            "permeability_voxel2": dict.fromkeys(AXES),
            "permeability_assumptions": None,
        }
    )
    if not network:
        return
    report["network"], perm, notes = network_permeability(pore, spacing, spanning, budget)
    report["notes"] += notes
    report["permeability_assumptions"] = list(PERMEABILITY_ASSUMPTIONS)
    if spacing:
        report["permeability_m2"] = {a: None if k is None else k * 1e-18 for a, k in perm.items()}
        report["permeability_mD"] = {
            a: None if k is None else k * 1e-18 / MILLIDARCY_M2 for a, k in perm.items()
        }
    else:
        report["permeability_voxel2"] = perm


def _tortuosity_part(report, pore, spacing, spanning, budget, progress):
    report["tortuosity_method"] = (
        "diffusive tortuosity factor (PoreSpy tortuosity_fd: formation factor x effective porosity)"
    )
    iso = None
    for axis, name in enumerate(AXES):
        yield progress(f"tortuosity {name}")
        if axis not in spanning:
            continue  # no cluster joins the two faces: no finite tortuosity
        if iso is None:
            per_voxel = BYTES_TORTUOSITY * report["porosity"] * report["voxels"] / pore.size
            iso, _, notes = isotropic_copy(pore, spacing, per_voxel, budget, "tortuosity")
            report["notes"] += notes
        report["tortuosity"][name] = tortuosity_factor(iso, axis)


def volume_report(labels, scheme, voxel_size_nm=None, **options) -> dict:
    """:func:`volume_report_steps` run to its end."""
    return drain(volume_report_steps(labels, scheme, voxel_size_nm, **options))


def _plain(value):
    """Plain JSON types: numpy scalars to Python, tuples to lists, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
