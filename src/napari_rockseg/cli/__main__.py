"""``python -m napari_rockseg.cli`` (e.g. under torchrun)."""

from . import run

run()
