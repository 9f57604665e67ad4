"""Transport in the pore space of a label volume: diffusive tortuosity (PoreSpy) and
absolute permeability through a SNOW2 pore network (PoreSpy + OpenPNM Stokes flow), on
isotropic, memory-bounded copies of the pore space."""

from __future__ import annotations

import math

import numpy as np

AXES = ("z", "y", "x")
PORESPY_AXES = (
    "x",
    "y",
    "z",
)  # PoreSpy names array axis 0 'x': its boundary labels are xmin/xmax...
MILLIDARCY_M2 = 9.869233e-16
# Extra peak memory of each heavy step, measured as peak RSS on overlapping-sphere volumes
# of 64^3 and 128^3 voxels (PoreSpy 3.2, OpenPNM 3.6) and rounded up.
BYTES_TORTUOSITY = 1200  # per pore voxel: OpenPNM cubic network and AMG hierarchy
BYTES_NETWORK = 90  # per voxel: SNOW2 watershed and region analysis


# -- isotropic, memory-bounded copies for PoreSpy --------------------------------------
def isotropic_copy(pore, spacing, bytes_per_voxel, budget, what):
    """``pore`` resampled (nearest neighbour) to cubic voxels of the finest spacing, cropped
    to its centre when the step would need more than ``budget``; (mask, voxel size, notes)."""
    spacing = spacing or (1.0, 1.0, 1.0)
    step = min(spacing)
    ratio = np.asarray(spacing) / step
    shape = np.asarray(pore.shape)
    need = float(np.prod(np.round(shape * ratio))) * bytes_per_voxel
    notes = []
    if need > budget:
        keep = np.minimum(shape, np.maximum(8, np.floor(shape * (budget / need) ** (1 / 3))))
        start = (shape - keep) // 2
        pore = pore[tuple(slice(int(a), int(a + k)) for a, k in zip(start, keep))]
        notes.append(
            f"{what} computed on the central {'x'.join(str(int(k)) for k in keep)} "
            f"voxels of {'x'.join(str(int(n)) for n in shape)}: the whole volume needs "
            f"about {need / 2**30:.2g} GB, more than max_memory_gb="
            f"{budget / 2**30:g}; raise it to use the whole volume"
        )
    if np.any(ratio != 1):
        new = np.maximum(1, np.round(np.asarray(pore.shape) * ratio)).astype(int)
        index = [
            np.minimum(((np.arange(m) + 0.5) * n / m).astype(int), n - 1)
            for m, n in zip(new, pore.shape)
        ]
        pore = pore[np.ix_(*index)]
        notes.append(
            f"{what} computed on voxels resampled (nearest neighbour) to cubic {step:g} nm voxels"
        )
    return np.ascontiguousarray(pore), step, notes


def tortuosity_factor(iso, axis):
    import porespy as ps

    # Trimmed here so that tortuosity_fd finds nothing to trim and logs no warning about it.
    spanning = ps.filters.trim_nonpercolating_paths(iso, axis=axis)
    if not spanning.any():
        return None
    return float(ps.simulations.tortuosity_fd(spanning, axis=axis).tortuosity)


# -- pore network and permeability ----------------------------------------------------
def snow_network(iso, voxel_size):
    import porespy as ps

    # parallel_kw=None: PoreSpy's default splits the watershed over processes, which costs
    # more than it gains on the small networks here and on shared cores.
    net = ps.networks.snow2(iso.astype(np.uint8), voxel_size=voxel_size, parallel_kw=None).network
    # PoreSpy labels the pores at the extreme coordinates as boundary pores, which are
    # interior pores on a face that no pore touches; the real ones lie in the 3-voxel pads.
    coords = np.asarray(net["pore.coords"]) / voxel_size
    net["pore.boundary"] = np.zeros(len(coords), bool)
    for i, name in enumerate(PORESPY_AXES):
        net[f"pore.{name}min"] = coords[:, i] < 2.5
        net[f"pore.{name}max"] = coords[:, i] > iso.shape[i] + 2.5
        net["pore.boundary"] |= net[f"pore.{name}min"] | net[f"pore.{name}max"]
    return net


def _stokes_permeability(net, axis, shape):
    """Absolute permeability along array ``axis`` of a SNOW2 network in voxel units
    (voxel_size=1), in voxel^2; None when no pore path joins the two faces."""
    import openpnm as op
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    name = PORESPY_AXES[axis]
    inlet, outlet = np.asarray(net[f"pore.{name}min"]), np.asarray(net[f"pore.{name}max"])
    conns = np.asarray(net["throat.conns"])
    n = inlet.size
    graph = coo_matrix((np.ones(len(conns)), (conns[:, 0], conns[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    through = np.intersect1d(comp[inlet], comp[outlet])
    if through.size == 0:
        return None
    pn = op.io.network_from_porespy({k: np.array(v, copy=True) for k, v in net.items()})
    try:
        op.topotools.trim(network=pn, pores=np.flatnonzero(~np.isin(comp, through)))
        pn["pore.diameter"] = pn["pore.inscribed_diameter"].copy()
        pn["throat.diameter"] = pn["throat.inscribed_diameter"].copy()
        # Boundary pores are 3-voxel slabs added by snow2; their inscribed size reflects the
        # padding, not the rock, and would throttle every path at the faces.
        widest = np.zeros(pn.Np)
        for end in (0, 1):
            np.maximum.at(widest, pn["throat.conns"][:, end], pn["throat.diameter"])
        boundary = pn["pore.boundary"]
        pn["pore.diameter"][boundary] = widest[boundary]
        pn.add_model(
            propname="throat.hydraulic_size_factors",
            model=op.models.geometry.hydraulic_size_factors.cones_and_cylinders,
        )
        pn.regenerate_models()
        fluid = op.phase.Phase(network=pn)
        fluid["pore.viscosity"] = 1.0
        fluid.add_model(
            propname="throat.hydraulic_conductance",
            model=op.models.physics.hydraulic_conductance.generic_hydraulic,
        )
        fluid.regenerate_models()
        flow = op.algorithms.StokesFlow(network=pn, phase=fluid)
        pin, pout = pn.pores(f"{name}min"), pn.pores(f"{name}max")
        flow.set_value_BC(pores=pin, values=1.0)
        flow.set_value_BC(pores=pout, values=0.0)
        # A direct solve: OpenPNM's default (Pardiso) stalls for 5000 iterations on small
        # networks, and extracted networks are small enough for SuperLU.
        flow.run(solver=op.solvers.ScipySpsolve())
        rate = float(flow.rate(pores=pin, mode="group")[0])
        coords = pn["pore.coords"][:, axis]
        length = float(coords[pout].mean() - coords[pin].mean())
    finally:
        op.Workspace().close_project(pn.project)
    area = math.prod(shape) / shape[axis]
    return rate * 1.0 * length / (area * 1.0)


def network_permeability(pore, spacing, spanning_axes, budget):
    iso, step, notes = isotropic_copy(pore, spacing, BYTES_NETWORK, budget, "pore network")
    if not iso.any():
        return None, dict.fromkeys(AXES), notes
    try:
        net = snow_network(iso, 1.0)
    except IndexError:  # PoreSpy's snow2 fails on a pore space of one region with no throats
        notes.append("no pore network: the pore space is a single region without throats")
        return None, dict.fromkeys(AXES), notes
    boundary = np.asarray(net["pore.boundary"])
    conns = np.asarray(net["throat.conns"])
    inner = ~boundary[conns].any(axis=1)
    n_inner = int((~boundary).sum())
    perm = {
        a: (_stokes_permeability(net, i, iso.shape) if i in spanning_axes else None)
        for i, a in enumerate(AXES)
    }
    network = {
        "pores": n_inner,
        "throats": int(inner.sum()),
        "mean_coordination": 2 * int(inner.sum()) / n_inner if n_inner else None,
        "voxel_size": step,
        "shape": list(iso.shape),
    }
    # The network's voxels have side ``step`` (nm, or 1 voxel): permeability scales as length^2.
    return network, {a: (None if k is None else k * step**2) for a, k in perm.items()}, notes
