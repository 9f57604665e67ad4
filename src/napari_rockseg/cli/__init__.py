"""The ``rockseg`` command line: thin over the engine; progress bars from its events.

Each subcommand lives in its own module with an ``add_parser(sub)`` that declares its
options and binds its command; importing this package imports no torch, napari or Qt.
"""

from __future__ import annotations

import argparse
import sys

from ..engine.errors import RockSegError
from . import analyze, classic, evaluate, models, predict, train

SUBCOMMANDS = (train, models, predict, evaluate, classic, analyze)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rockseg", description="Segment images of rock into phases.")
    sub = p.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]  # recorded in model provenance
    try:
        return args.func(args)
    except RockSegError as exc:
        print(f"rockseg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rockseg: interrupted", file=sys.stderr)
        return 130



