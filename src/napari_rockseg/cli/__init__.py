"""The ``rockseg`` command line: thin over the engine; progress bars from its events.

Each subcommand lives in its own module with an ``add_parser(sub)`` that declares its
options and binds its command; importing this package imports no torch, napari or Qt.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from ..engine.errors import RockSegError
from . import align, analyze, classic, evaluate, models, predict, train

SUBCOMMANDS = (train, models, predict, evaluate, classic, analyze, align)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (exit 2), as every other error of rockseg."""

    def error(self, message):
        from ._common import _clean

        print(f"rockseg: error: {_clean(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rockseg", description="Segment images of rock into phases.")
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an unexpected error (or set ROCKSEG_DEBUG=1)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return p


def _terminate(signum, frame):
    """SIGTERM unwinds like Ctrl-C, so that temporary files and locks are removed."""
    raise KeyboardInterrupt


def _error(message) -> int:
    from ._common import _clean

    print(f"rockseg: error: {_clean(message)}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    from ..engine.threads import spin_briefly

    spin_briefly()  # before anything loads torch
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = [
        str(a) for a in (sys.argv[1:] if argv is None else argv)
    ]  # recorded in model provenance
    debug = args.debug or os.environ.get("ROCKSEG_DEBUG", "") not in ("", "0")
    if not debug:  # tifffile logs its repairs of odd headers; the error line says what matters
        logging.getLogger("tifffile").setLevel(logging.CRITICAL)
        # PoreSpy and OpenPNM log their internal choices (on stdout, amid the report's table)
        for name in ("porespy", "openpnm"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except RockSegError as exc:
        return _error(exc)
    except KeyboardInterrupt:
        print("rockseg: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError, ValueError, UnicodeError) as exc:
        # a path no check foresaw: one line, and the way to the traceback for a bug report
        if debug:
            raise
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        where = f" ({exc.filename})" if isinstance(exc, OSError) and exc.filename else ""
        return _error(
            f"{type(exc).__name__}: {what}{where}; if this looks like a bug, "
            "report it with the traceback of --debug (or ROCKSEG_DEBUG=1)"
        )
