"""napari-rockseg: segmentation of SEM images of rock into imbalanced phases."""

__version__ = "0.1.0"
