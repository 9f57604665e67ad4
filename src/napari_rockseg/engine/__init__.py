"""The GUI-free engine of napari-rockseg: no napari and no Qt.

It builds on numpy, scipy, torch, safetensors, tifffile, Pillow, scikit-image, scikit-learn,
dask and zarr, and on PoreSpy, OpenPNM and edt for the 3-D rock physics; each is imported
where it is used, so importing the engine itself loads none of the heavy ones.
"""

from .errors import RockSegError

__all__ = ["RockSegError"]
