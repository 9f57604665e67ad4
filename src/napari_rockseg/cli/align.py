"""`rockseg align`: register serial sections (FIB-SEM drift) and write the aligned volume."""

from __future__ import annotations

from pathlib import Path

from ..engine.errors import RockSegError
from ._common import _bar

#: stacks with more slices than this print the first and last ones of the shifts table
_TABLE_ROWS = 30


def shifts_path(out: Path) -> Path:
    """Where the shifts of ``out`` go: ``aligned.tif`` -> ``aligned.shifts.csv``."""
    out = Path(out)
    name = out.name[: -len(out.suffix)] if out.suffix else out.name
    return out.with_name(f"{name}.shifts.csv")


def _shifts_table(shifts) -> str:
    lines = [f"{'slice':>6}  {'dy (px)':>9}  {'dx (px)':>9}"]
    rows = list(enumerate(shifts))
    if len(rows) > _TABLE_ROWS:
        half = _TABLE_ROWS // 2
        rows = rows[:half] + [None] + rows[-half:]
    for row in rows:
        lines.append(
            f"{'...':>6}" if row is None else f"{row[0]:>6}  {row[1][0]:>+9.2f}  {row[1][1]:>+9.2f}"
        )
    return "\n".join(lines)


def cmd_align(args):
    from ..engine import io
    from ..engine.align import align_steps

    out = Path(args.out)
    table = shifts_path(out)
    taken = [str(p) for p in (out, table) if p.exists()]
    if taken and not args.overwrite:
        raise RockSegError(
            f"{' and '.join(taken)} already exist; pass --overwrite to replace "
            "them or give another --out"
        )
    if out.suffix.lower() not in (".tif", ".tiff", ".zarr"):
        raise RockSegError(f"--out {out}: write the aligned volume as .tif, .tiff or .zarr")
    vol = io.read_volume(args.stack, args.pixel_size, args.voxel_depth)
    if vol.shape[0] < 2:
        raise RockSegError(f"{args.stack} holds one slice; alignment needs a stack of slices")
    result = _bar(
        align_steps(
            vol.data, reference=args.reference, max_shift=args.max_shift, crop=not args.no_crop
        ),
        f"align {vol.stem}",
        args.quiet,
    )
    if not args.quiet:
        print(_shifts_table(result.shifts))
    y0, y1, x0, x1 = result.box
    rows = ["slice,dy_px,dx_px"] + [
        f"{i},{dy:.4f},{dx:.4f}" for i, (dy, dx) in enumerate(result.shifts)
    ]
    io.write_volume(out, result.aligned, vol.voxel_size_nm)
    io.write_text(table, "\n".join(rows) + "\n")
    print(
        f"{vol.shape[0]} slices aligned (reference: {args.reference}); kept rows {y0}:{y1}, "
        f"columns {x0}:{x1} of {vol.shape[1]} x {vol.shape[2]}"
    )
    print(f"wrote {out} and {table}")
    return 0


def add_parser(sub) -> None:
    al = sub.add_parser(
        "align",
        help="register serial sections (FIB-SEM drift) by phase "
        "correlation and write the aligned volume",
    )
    al.add_argument(
        "stack", type=Path, help="volume: multi-page / ImageJ / OME TIFF, folder of slices or .zarr"
    )
    al.add_argument(
        "--out",
        required=True,
        type=Path,
        help="aligned volume (.tif or .zarr); the shifts go to OUT.shifts.csv",
    )
    al.add_argument(
        "--reference",
        choices=["previous", "first"],
        default="previous",
        help="register each slice to the previous one (default; follows changing "
        "structure) or to the first (no accumulated error)",
    )
    al.add_argument(
        "--no-crop",
        action="store_true",
        help="keep the whole frame (uncovered margins 0) instead of the region every slice covers",
    )
    al.add_argument(
        "--max-shift",
        type=float,
        metavar="PX",
        help="largest shift of one slice against its reference (pixels)",
    )
    al.add_argument(
        "--pixel-size",
        type=float,
        metavar="NM",
        help="pixel size (y, x) in nm (overrides metadata)",
    )
    al.add_argument(
        "--voxel-depth",
        type=float,
        metavar="NM",
        help="slice spacing (z) in nm (overrides metadata)",
    )
    al.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    al.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    al.set_defaults(func=cmd_align)
