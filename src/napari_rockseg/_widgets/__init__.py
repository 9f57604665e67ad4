"""napari dock widgets: thin shells over the engine."""

from ..engine.threads import spin_briefly

# training in the panel shares the cores with napari's own drawing (and often a batch
# prediction beside it): torch's threads spin only briefly while they wait
spin_briefly()
