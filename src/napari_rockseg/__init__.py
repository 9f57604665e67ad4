"""napari-rockseg: segmentation of microscope images and volumes of rock into imbalanced
phases, and their rock physics."""

__version__ = "0.1.0"
