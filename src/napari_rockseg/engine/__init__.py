"""The GUI-free engine of napari-rockseg: numpy, torch, tifffile and scikit-learn only."""

from .errors import RockSegError

__all__ = ["RockSegError"]
