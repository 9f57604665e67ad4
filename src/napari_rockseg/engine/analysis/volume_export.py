"""What leaves a 3-D report: a flat row for CSV tables, and the pore network as a file that
OpenPNM loads."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .transport import AXES, BYTES_NETWORK, isotropic_copy, snow_network
from .volume import _inputs


def summary_row_3d(report: dict) -> dict:
    """One flat row of scalar quantities of a volume report (for CSV tables)."""
    row = {
        k: report.get(k)
        for k in (
            "porosity",
            "connected_porosity",
            "isolated_porosity",
            "enclosed_porosity",
            "organic_fraction",
            "organic_hosted_pore_share",
            "specific_surface_per_um",
            "specific_surface_per_voxel",
            "volume_um3",
        )
    }
    for i, a in enumerate(AXES):
        row[f"voxel_size_{a}_nm"] = (report["voxel_size_nm"] or [None] * 3)[i]
        row[f"connected_porosity_{a}"] = report["connected_porosity_axes"][a]
        row[f"tortuosity_{a}"] = report["tortuosity"][a]
        row[f"permeability_{a}_mD"] = report["permeability_mD"][a]
        row[f"permeability_{a}_voxel2"] = report["permeability_voxel2"][a]
    sizes = report.get("pore_sizes") or {}
    for k in ("d10", "d50", "d90", "mean"):
        row[f"pore_{k}_{report['unit']}"] = sizes.get(k)
    for name, c in report["classes"].items():
        row[f"{name.replace(' ', '_')}_fraction"] = c["fraction"]
    return row


def export_network(labels, scheme, path, voxel_size_nm=None, *, max_memory_gb=8.0) -> dict:
    """Extract the SNOW2 pore network of the pore class and write it as an OpenPNM CSV file
    (``openpnm.io.network_from_csv(path)`` loads it).  Lengths are in metres when the voxel
    size is known (OpenPNM's SI convention), else in voxels."""
    import openpnm as op
    import pandas as pd

    from ..io import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: pore networks are written as OpenPNM CSV; give a .csv path")
    labels, pore_label, spacing = _inputs(labels, scheme, voxel_size_nm)
    pore = labels == pore_label
    iso, step, notes = isotropic_copy(
        pore, spacing, BYTES_NETWORK, max_memory_gb * 2**30, "pore network"
    )
    if not iso.any():
        raise InputError("the volume has no pore voxels, so there is no pore network to export")
    net = snow_network(iso, step * 1e-9 if spacing else 1.0)
    if len(net["throat.conns"]) == 0:
        raise InputError(
            "the pore network has no throats (no two pores touch): there is "
            "nothing to simulate, and OpenPNM cannot read such a CSV file"
        )
    pn = op.io.network_from_porespy(net)
    try:
        frames = op.io.network_to_pandas(pn, join=False)
        # Side by side on the row index: OpenPNM's own join keeps only Nt rows and would
        # drop pores of networks with more pores than throats.
        table = pd.concat([frames["throat"], frames["pore"]], axis=1)
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        return {
            "path": str(path),
            "pores": int(pn.Np),
            "throats": int(pn.Nt),
            "length_unit": "m" if spacing else "voxel",
            "notes": notes,
        }
    finally:
        op.Workspace().close_project(pn.project)
