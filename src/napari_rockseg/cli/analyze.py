"""`rockseg analyze`: rock measurements of label images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..engine.errors import RockSegError
from ._common import _bar, _clean, _print_report, labels_scheme


def _label_context(path: Path, args):
    """Pixel size (nm) and data-bar rows for a label file: --pixel-size, the
    matching --image, the JSON that `rockseg predict` wrote beside it, or the
    label TIFF's own resolution tags."""
    from ..engine import io

    px, bar = args.pixel_size, args.data_bar
    stem = path.stem[: -len("_labels")] if path.stem.endswith("_labels") else path.stem
    side = path.with_name(f"{stem}.json")
    images = {Path(p).stem: Path(p) for p in (args.image or [])}
    if len(args.image or []) == 1 and len(args.labels) == 1:
        images = {stem: Path(args.image[0])}
    if stem in images:
        img = io.read_image(images[stem])
        px = px or img.pixel_size_nm
        bar = io.resolve_data_bar(img.data, bar)
    elif side.exists():
        try:
            info = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            info = {}
        px = px or info.get("pixel_size_nm")
        bar = bar if bar is not None else info.get("data_bar_rows")
    if px is None:
        try:
            px = io.read_image(path).pixel_size_nm
        except RockSegError:
            px = None
    return px, bar or 0


def _voxel_size(path: Path, data_voxel, args):
    """Voxel size (z, y, x) nm of a labels volume: --voxel-size, --pixel-size /
    --voxel-depth, the file's metadata, then the JSON `rockseg predict` wrote beside it."""
    if args.voxel_size:
        return tuple(args.voxel_size)
    z, y, x = data_voxel
    if None in (z, y, x):
        stem = path.stem[: -len("_labels")] if path.stem.endswith("_labels") else path.stem
        side = path.with_name(f"{stem}.json")
        try:
            info = json.loads(side.read_text()) if side.exists() else {}
        except (OSError, json.JSONDecodeError):
            info = {}
        known = info.get("voxel_size_nm") or [None] * 3
        z, y, x = (a if a is not None else b for a, b in zip((z, y, x), known))
    return (z, y, x) if None not in (z, y, x) else None


def _volume_report(path: Path, scheme, args):
    from ..engine import io
    from ..engine.analysis.volume import volume_report_steps

    # values decoded through the scheme (0/255 masks, 16-bit label maps), checked against it
    given = (args.voxel_depth, args.pixel_size, args.pixel_size)
    vol = io.read_label_volume(path, scheme, given)
    labels = vol.data
    voxel = _voxel_size(path, vol.voxel_size_nm, args)
    report = _bar(
        volume_report_steps(
            labels,
            scheme,
            voxel,
            pore_sizes=not args.no_pore_sizes,
            tortuosity=not args.no_tortuosity,
            network=not args.no_network,
        ),
        f"analyze {path.name}",
    )
    if voxel is None:
        report["notes"].append(
            "the voxel size is unknown: sizes are in voxels; give "
            "--voxel-size Z Y X (nm) or --pixel-size and --voxel-depth"
        )
    return report


def _fmt(value, scale=1.0, unit="", digits=4) -> str:
    return "-" if value is None else f"{value * scale:.{digits}g}{unit}"


def _print_volume_report(path, report):
    print(f"{path}: {' x '.join(map(str, report['shape']))} voxels (z, y, x)")
    vs = report["voxel_size_nm"]
    um = bool(vs) and min(vs) >= 1000  # micro-CT: micrometres read better
    print(
        f"  voxel size {' x '.join(f'{v / (1000 if um else 1):.4g}' for v in vs)} "
        f"{'µm' if um else 'nm'}"
        if vs
        else "  voxel size unknown (sizes in voxels)"
    )
    for name, c in report["classes"].items():
        print(f"  {name:<22} {100 * c['fraction']:6.2f} %")
    axes = ("z", "y", "x")
    rows = [
        ("porosity", _fmt(report["porosity"], 100, " %")),
        ("connected porosity", _fmt(report["connected_porosity"], 100, " %")),
        *(
            (f"  connected along {a}", _fmt(report["connected_porosity_axes"][a], 100, " %"))
            for a in axes
        ),
        ("isolated porosity", _fmt(report["isolated_porosity"], 100, " %")),
    ]
    sizes = report.get("pore_sizes")
    if sizes:
        unit, scale = sizes["unit"], 1.0
        if unit == "nm" and (sizes["d50"] or 0) >= 1000:
            unit, scale = "µm", 1e-3
        rows.append(
            (
                f"pore diameter d10/d50/d90 ({unit})",
                "/".join(_fmt(sizes[k], scale) for k in ("d10", "d50", "d90")),
            )
        )
    rows += [(f"tortuosity {a}", _fmt(report["tortuosity"][a])) for a in axes]
    if report.get("network"):
        unit = "mD" if report["voxel_size_nm"] else "voxel^2"
        key = "permeability_mD" if unit == "mD" else "permeability_voxel2"
        rows += [(f"permeability {a} ({unit})", _fmt(report[key][a])) for a in axes]
    for name, value in rows:
        print(f"  {name:<34} {value}")
    for note in report.get("notes", []):
        print(f"  note: {note}")


def cmd_analyze(args):
    import csv
    import io as _io

    from ..engine import io
    from ..engine.analysis.rock import rock_report, summary_row
    from ..engine.analysis.volume_export import summary_row_3d

    out = Path(args.out)
    base = out.with_suffix("") if out.suffix.lower() in (".csv", ".json") else out
    targets = [base.with_suffix(".csv"), base.with_suffix(".json")]
    taken = [str(t) for t in targets if t.exists()]
    if taken and not args.overwrite:
        raise RockSegError(
            f"{' and '.join(taken)} already exist; pass --overwrite to replace "
            "them or give another --out"
        )
    reports, rows, scheme_notes = {}, [], []
    for path in args.labels:
        path = Path(path)
        scheme, note = labels_scheme(path, args.classes)
        scheme_notes += [note] if note else []
        if io.is_volume(path):
            report = _volume_report(path, scheme, args)
            rows.append({"labels": str(path), **summary_row_3d(report)})
            _print_volume_report(path, report)
        else:
            labels = io.read_labels(path, scheme)
            px, bar = _label_context(path, args)
            report = rock_report(
                labels,
                scheme,
                px,
                io.valid_mask(labels.shape, bar),
                args.min_size,
                args.exclude_border,
            )
            rows.append({"labels": str(path), **summary_row(report)})
            _print_report(path, report)
        reports[str(path)] = report
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    io.write_text(targets[0], buf.getvalue())
    io.write_text(targets[1], json.dumps(reports, indent=2))
    print(f"wrote {targets[0]} and {targets[1]}")
    for note in scheme_notes:  # after the results: an error stays one line
        print(f"note: {_clean(note)}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    an = sub.add_parser(
        "analyze", help="porosity, phase fractions, pore sizes of label images and label volumes"
    )
    an.add_argument(
        "labels",
        nargs="+",
        type=Path,
        help="label images, or label volumes (multi-page TIFF, folder, zarr)",
    )
    an.add_argument(
        "--out", required=True, type=Path, help="report path: writes REPORT.csv and REPORT.json"
    )
    an.add_argument("--overwrite", action="store_true", help="replace an existing report")
    an.add_argument("--classes", type=Path)
    an.add_argument(
        "--image", nargs="+", type=Path, help="source image(s): pixel size and data bar"
    )
    an.add_argument("--pixel-size", type=float, help="pixel size in nm (overrides metadata)")
    an.add_argument(
        "--voxel-depth",
        type=float,
        metavar="NM",
        help="volumes: slice spacing (z) in nm (overrides metadata)",
    )
    an.add_argument(
        "--voxel-size",
        type=float,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="volumes: voxel size in nm (overrides everything else)",
    )
    an.add_argument("--data-bar", type=int, help="rows to exclude at the bottom")
    an.add_argument(
        "--min-size", type=int, default=1, help="drop objects smaller than this (pixels)"
    )
    an.add_argument(
        "--exclude-border", action="store_true", help="drop objects touching the border"
    )
    an.add_argument(
        "--no-pore-sizes",
        action="store_true",
        help="volumes: skip the local-thickness pore-size distribution",
    )
    an.add_argument("--no-tortuosity", action="store_true", help="volumes: skip tortuosity")
    an.add_argument(
        "--no-network",
        action="store_true",
        help="volumes: skip the pore network and permeability (slow)",
    )
    an.set_defaults(func=cmd_analyze)
