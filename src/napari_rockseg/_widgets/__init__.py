"""napari dock widgets: thin shells over the engine."""
