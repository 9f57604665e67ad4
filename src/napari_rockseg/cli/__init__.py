"""The ``rockseg`` command line: thin over the engine; progress bars from its events.

Each subcommand lives in its own module with an ``add_parser(sub)`` that declares its
options and binds its command; importing this package imports no torch, napari or Qt.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import signal
import sys
import threading

from ..engine.errors import RockSegError
from . import align, analyze, classic, evaluate, models, predict, train
from ._common import resume_collection

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
    if not getattr(args, "defer_collection", False):
        resume_collection()
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


def run() -> None:
    """The console entry point (``rockseg``, ``python -m napari_rockseg.cli``): :func:`main`,
    then the exit without the interpreter's teardown of torch's thousands of modules and
    objects (0.3 s of every command on a 2-core machine), once every exit handler has run
    (temporary folders, the process registry, dask) and the output is flushed."""
    from . import _common

    done: dict = {}
    atexit.register(_leave, done)  # registered first, so it runs after every later handler
    # no garbage collection while a command imports torch and loads its model (a million
    # objects that live to the end; three full collections of them took 0.11 s): the command
    # resumes it (_common.resume_collection) with those objects frozen out of it
    gc.disable()
    _common.collection_deferred = True
    done["code"] = int(main() or 0)
    sys.exit(done["code"])


def _leave(done: dict) -> None:
    if "code" not in done:  # main raised: Python reports it and exits as usual
        return
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: Python's own exit reports it
        return
    os._exit(done["code"])
