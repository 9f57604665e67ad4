"""What every model kind offers the rest of the engine, so that prediction dispatches on
what a model needs rather than on its name.

A model has:

* ``kind``: its name in model files ("unet", "bag", "ensemble", "rf", "lda");
* ``info``: a :class:`~.info.ModelInfo` (class scheme, pixel size, normalisation, provenance);
* ``reads``: what its ``probabilities`` take:

  - :data:`RAW_GREY`: the image's own grey values at its own pixel size (the LDA baseline);
  - :data:`WHOLE_IMAGE`: the conditioned image in one call, ``probabilities(x, device=...)``
    (the random forest computes its own multiscale features);
  - :data:`TILES`: conditioned tiles as a (N, 1, h, w) tensor through the sliding window
    (the networks), whose sides must be multiples of ``multiple``;

* ``texture_levels``: True where the networks were trained on an image's pixel-scale
  texture, so prediction smooths pixel noise above and restores texture below it
  (:mod:`..condition`); only with the median normalisation;
* optionally ``forest`` and ``blend(probs, x, device)``: a bag blends a forest's
  probabilities into its networks'.
"""

RAW_GREY, WHOLE_IMAGE, TILES = "raw grey", "whole image", "tiles"


def reads(model) -> str:
    """What ``model.probabilities`` takes (networks when the model does not say)."""
    return getattr(model, "reads", TILES)


def uses_texture_levels(model) -> bool:
    return bool(getattr(model, "texture_levels", False)) and model.info.normalization == "median"
