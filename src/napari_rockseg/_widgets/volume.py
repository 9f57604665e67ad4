"""The dock's part for 3-D (z, y, x) layers: voxel sizes, volume segmentation and slice
alignment in the Segment tab, the 3-D phase report's options, table and export, and the
painted slices of a volume as training pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, Table

from .._layers import scheme_of_layer
from ..engine.align import align_steps
from ..engine.analysis.volume import volume_report_steps
from ..engine.analysis.volume_export import summary_row_3d
from ..engine.errors import InputError
from ..engine.inference.volume import MODES, resolve_mode, segment_volume
from ..engine.io import Volume, write_text, write_volume
from ._state import STORE
from ._worker import RunPanel, fit_table, notify_error, show_table, wrap_label

AXES = ("z", "y", "x")


def is_volume_layer(layer) -> bool:
    """A grey (not RGB) image or a labels layer with three dimensions (z, y, x)."""
    return layer is not None and not getattr(layer, "rgb", False) and layer.ndim == 3


def voxel_size_of(layer) -> tuple:
    """(z, y, x) nm of a 3-D layer, None where unknown: the reader's metadata, else the
    layer's scale (the reader sets an unknown axis to 1)."""
    meta = (layer.metadata or {}).get("voxel_size_nm")
    if meta is not None and len(meta) == 3:
        return tuple(None if v is None else float(v) for v in meta)
    return tuple(None if float(s) == 1.0 else float(s) for s in layer.scale[-3:])


def _size_text(voxel) -> str:
    return " x ".join("?" if v is None else f"{v:.4g}" for v in voxel)


class VolumeTools(Container):
    """Segment tab, 3-D image layers only: slice spacing, volume mode, Align slices."""

    def __init__(self, viewer, image_choice=None):
        self.viewer = viewer
        self.image_choice = image_choice  # the Segment tab's image: set to the aligned volume
        self.layer = None
        self.pixel_size = None  # in-plane nm, from the Segment tab's field
        self.info = wrap_label(Label(value="", tooltip="the volume and its voxel size"))
        self.depth = FloatSpinBox(
            label="slice spacing (nm)",
            value=0.0,
            min=0.0,
            max=1e6,
            step=0.1,
            tooltip="distance between slices; read from the file or the layer's scale; 0 = unknown",
        )
        self.mode = ComboBox(
            label="volume mode",
            choices=self._modes,
            tooltip="slices: the 2-D model on every xy slice; triplanar: xy, xz and yz "
            "planes averaged (only for isotropic voxels, 3x slower); auto: slices",
        )
        self.reference = ComboBox(
            label="align to",
            choices=["previous", "first"],
            value="previous",
            tooltip="previous: each slice to the one before (follows changing structure); "
            "first: every slice to slice 0 (no drift builds up)",
        )
        self.align_panel = RunPanel(
            "Align slices", "alignment", tooltip="register the slices (drift of serial sections)"
        )
        self.shifts = Table(value={"slice": [], "dy px": [], "dx px": []})
        self.shifts.tooltip = "shift applied to each slice, in pixels"
        fit_table(self.shifts)
        self.shifts.native.setMaximumHeight(140)
        super().__init__(
            widgets=[
                self.info,
                self.depth,
                self.mode,
                self.reference,
                self.align_panel,
                self.shifts,
            ]
        )
        self.depth.changed.connect(self._update_modes)
        self.align_panel.run_button.changed.connect(self.align)
        self.result = None

    # -- voxel size and mode ---------------------------------------------------------
    def show_for(self, layer, pixel_size: float | None) -> None:
        """Show these controls for a 3-D image layer (hidden otherwise)."""
        self.layer = layer if is_volume_layer(layer) else None
        self.visible = self.layer is not None
        if self.layer is None:
            return
        self.pixel_size = pixel_size
        self.depth.value = voxel_size_of(layer)[0] or 0.0
        self._update_modes()

    def set_pixel_size(self, pixel_size: float | None) -> None:
        self.pixel_size = pixel_size
        self._update_modes()

    def voxel(self) -> tuple:
        px = self.pixel_size or None
        return (self.depth.value or None, px, px)

    def isotropic(self) -> bool:
        return Volume(np.zeros((1, 1, 1)), self.voxel()).is_isotropic()

    def _modes(self, *_) -> list[str]:
        return list(MODES) if self.isotropic() else [m for m in MODES if m != "triplanar"]

    def _update_modes(self, *_) -> None:
        self.mode.reset_choices()
        if self.layer is not None:
            n, h, w = self.layer.data.shape[-3:]
            iso = "isotropic" if self.isotropic() else "not isotropic: no tri-planar mode"
            voxel = self.voxel()
            size = (
                "voxel size unknown (sizes in pixels)"
                if voxel == (None, None, None)
                else f"voxel (z, y, x) {_size_text(voxel)} nm"
            )
            self.info.value = f"volume: {n} slices of {h} x {w}; {size} ({iso})"

    # -- segmentation ----------------------------------------------------------------
    def segment(self, seg, layer, model, device):
        """Run ``segment_volume`` on ``layer`` in ``seg``'s panel (a SegmentWidget). The labels
        (and uncertainty) of a lazy or big volume go slice by slice into zarr stores on disk
        and the new layers show those stores: memory stays flat, and the labels stay
        paintable (zarr is writable)."""
        from ._layerio import done_text, into_stores, put_result, wants_store

        data = layer.data[0] if layer.multiscale else layer.data
        voxel, mode = self.voxel(), self.mode.value
        opts = {
            "tile": seg.tile.value,
            "overlap": seg.overlap.value,
            "device": device,
            "tta": seg.tta.value,
            "rescale": seg.rescale.value,
            "probabilities": seg.want_probabilities.value,
            "uncertainty": seg.want_uncertainty.value,
        }
        stored = wants_store(data) and _runs_slices(mode, voxel, data)
        if stored and opts["probabilities"]:
            seg.panel.status.value = notify_error(
                "probability maps of a volume this big do not fit in memory; "
                "untick 'probability maps'"
            )
            return None

        def run(out=None, uncertainty_out=None):
            return segment_volume(
                model, data, voxel, mode, out=out, uncertainty_out=uncertainty_out, **opts
            )

        def job():
            if stored:
                return (yield from into_stores(run, data.shape, opts["uncertainty"]))
            result = yield from run()
            return result, result.labels, result.uncertainty

        def done(ret):
            result, labels, unc = ret
            seg.result = result
            put_result(
                seg.viewer,
                layer,
                model.info.scheme,
                labels,
                unc,
                result.probabilities,
                model=seg.model.value,
                voxel_size_nm=voxel,
                volume_mode=result.mode,
            )
            where = "; labels kept on disk (zarr), not in memory" if stored else ""
            seg.panel.status.value = done_text(f"done ({result.mode}){where}", result.notes)

        return seg.panel.start(job, done)

    # -- alignment -------------------------------------------------------------------
    def align(self, *_):
        layer = self.layer
        if layer is None:
            notify_error("pick a 3-D image layer (a stack or a folder of slices) to align")
            return None
        data = layer.data[0] if layer.multiscale else layer.data
        reference = self.reference.value

        def job():
            return (yield from align_steps(data, reference=reference))

        return self.align_panel.start(job, lambda result: self._aligned(layer, result))

    def _aligned(self, layer, result) -> None:
        self.result = result
        y0, _, x0, _ = result.box
        translate = np.asarray(layer.translate, float)
        translate[-2:] += np.asarray(layer.scale[-2:], float) * (y0, x0)
        name = f"{layer.name} aligned"
        meta = {
            **(layer.metadata or {}),
            "voxel_size_nm": self.voxel(),
            "aligned_shifts_px": result.shifts.tolist(),
            "aligned_box": list(result.box),
        }
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        new = self.viewer.add_image(
            result.aligned,
            name=name,
            scale=layer.scale,
            translate=translate,
            units=layer.units,
            metadata=meta,
            colormap=layer.colormap.name,
            contrast_limits=layer.contrast_limits,
        )
        layer.visible = False
        show_table(
            self.shifts,
            {
                "slice": [str(i) for i in range(len(result.shifts))],
                "dy px": [f"{dy:+.2f}" for dy in result.shifts[:, 0]],
                "dx px": [f"{dx:+.2f}" for dx in result.shifts[:, 1]],
            },
        )
        big = np.abs(result.shifts).max(axis=0)
        h, w = result.aligned.shape[-2:]
        self.align_panel.status.value = (
            f"aligned: largest shift dy {big[0]:.2f}, dx {big[1]:.2f} px; cropped to "
            f"{h} x {w}, the part every slice covers; new layer '{new.name}'"
        )
        self.viewer.layers.selection.active = new
        if self.image_choice is not None:
            self.image_choice.reset_choices()
            self.image_choice.value = new


def _runs_slices(mode: str, voxel, data) -> bool:
    """Whether ``mode`` runs slice by slice (the only mode that writes into a store); a mode
    the volume cannot take is refused by ``segment_volume`` in the run, in its words."""
    try:
        return resolve_mode(mode, voxel, not isinstance(data, np.ndarray))[0] == "slices"
    except InputError:
        return False


# -- training --------------------------------------------------------------------------
def volume_pairs(image_layer, labels_layer, pixel_size: float | None = None):
    """(images, labels): the painted slices of a 3-D labels layer over a 3-D image layer."""
    from ..engine.training.volume_data import training_slices

    if labels_layer.ndim != 3:
        raise InputError(
            f"{image_layer.name} is a volume but {labels_layer.name} is 2-D; "
            "paint on a 3-D labels layer ('New corrections layer to paint')"
        )
    voxel = voxel_size_of(image_layer)
    if pixel_size:
        voxel = (voxel[0], pixel_size, pixel_size)
    data = image_layer.data[0] if image_layer.multiscale else image_layer.data
    return training_slices(
        Volume(np.asarray(data), voxel), np.asarray(labels_layer.data).astype(np.uint8)
    )


# -- the 3-D phase report --------------------------------------------------------------
class VolumeReportOptions(Container):
    """Report tab, 3-D labels layers only: which slow parts to compute, and their run."""

    def __init__(self):
        self.pore_sizes = CheckBox(
            text="pore sizes (local thickness)",
            value=True,
            tooltip="3-D pore-size distribution by maximal inscribed spheres: d10, d50, d90",
        )
        self.tortuosity = CheckBox(
            text="tortuosity (diffusion, per axis)",
            value=True,
            tooltip="diffusive tortuosity along z, y and x where pores join opposite faces",
        )
        self.network = CheckBox(
            text="pore network and permeability (slow)",
            value=False,
            tooltip="PoreSpy snow2 network and OpenPNM Stokes flow: absolute permeability "
            "in mD per axis; minutes on big volumes",
        )
        self.panel = RunPanel(
            "Compute 3-D report",
            "the 3-D report",
            tooltip="measure the labels volume (runs in the background)",
        )
        super().__init__(
            widgets=[self.pore_sizes, self.tortuosity, self.network, self.panel], labels=False
        )

    def start(self, layer, on_done):
        scheme = scheme_of_layer(layer, STORE.scheme)
        labels = np.asarray(layer.data)
        voxel = voxel_size_of(layer)
        voxel = None if None in voxel else voxel
        opts = {
            "pore_sizes": self.pore_sizes.value,
            "tortuosity": self.tortuosity.value,
            "network": self.network.value,
        }

        def job():
            return (yield from volume_report_steps(labels, scheme, voxel, **opts))

        return self.panel.start(job, on_done)


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.2f}"


def _num(v) -> str:
    return "" if v is None else f"{v:.4g}"


def volume_table(report: dict) -> dict:
    """Table columns (quantity, all, z, y, x) of a 3-D report, as text."""
    rows = [
        ("porosity %", _pct(report.get("porosity")), {}),
        (
            "connected porosity %",
            _pct(report.get("connected_porosity")),
            {a: _pct(v) for a, v in report["connected_porosity_axes"].items()},
        ),
        ("isolated porosity %", _pct(report.get("isolated_porosity")), {}),
    ]
    sizes = report.get("pore_sizes")
    if sizes:
        for k in ("d10", "d50", "d90"):
            rows.append((f"pore {k} ({sizes['unit']})", _num(sizes[k]), {}))
    if report.get("tortuosity_method"):
        rows.append(
            ("tortuosity", "", {a: _num(v) or "no path" for a, v in report["tortuosity"].items()})
        )
    if report.get("permeability_assumptions"):
        unit, perm = (
            ("mD", report["permeability_mD"])
            if report.get("voxel_size_nm")
            else ("voxel²", report["permeability_voxel2"])
        )
        rows.append(
            (f"permeability ({unit})", "", {a: _num(v) or "no path" for a, v in perm.items()})
        )
    for name, c in report["classes"].items():
        rows.append((f"{name} %", _pct(c["fraction"]), {}))
    table = {"quantity": [r[0] for r in rows], "all": [r[1] for r in rows]}
    for a in AXES:
        table[a] = [r[2].get(a, "") for r in rows]
    return table


def volume_summary(report: dict) -> str:
    voxel = report.get("voxel_size_nm")
    lines = [
        f"volume {' x '.join(str(n) for n in report['shape'])} voxels; voxel (z, y, x) "
        + (f"{_size_text(voxel)} nm" if voxel else "size unknown (sizes in voxels)")
    ]
    if report.get("porosity") is not None:
        lines.append(
            f"porosity {100 * report['porosity']:.3f} %, connected "
            f"{100 * (report.get('connected_porosity') or 0):.3f} %"
        )
    return "\n".join(lines + [str(n) for n in report.get("notes") or []])


def volume_csv(report: dict) -> str:
    row = summary_row_3d(report)
    return ",".join(row) + "\n" + ",".join("" if v is None else str(v) for v in row.values()) + "\n"


def export_volume_results(folder, layer, report: dict) -> list[str]:
    """Labels volume TIFF (with voxel size) and its classes JSON, report CSV and JSON."""
    from ..engine.classes import scheme_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = layer.name.replace("/", "_")
    labels = folder / f"{stem}.tif"
    data = layer.data  # a zarr store's uint8 labels are written slice by slice as they are
    data = data if data.dtype == np.uint8 else np.asarray(data).astype(np.uint8)
    paths = [str(write_volume(labels, data, voxel_size_of(layer)))]
    scheme = scheme_of_layer(layer, STORE.scheme)
    paths.append(
        str(write_text(scheme_path(labels), json.dumps(scheme.to_dict(), indent=1) + "\n"))
    )
    paths.append(str(write_text(folder / f"{stem} report.csv", volume_csv(report))))
    paths.append(
        str(
            write_text(
                folder / f"{stem} report.json", json.dumps(report, indent=1, default=float) + "\n"
            )
        )
    )
    return paths
