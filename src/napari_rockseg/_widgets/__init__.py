"""napari dock widgets: thin shells over the engine."""

from ..engine.threads import wait_passively

# training in the panel shares the cores with napari's own drawing (and often a batch
# prediction beside it): torch's threads sleep rather than spin while they wait
wait_passively()
