"""The shipped model bundles."""

from importlib.resources import files
from pathlib import Path

#: a bag of six focal-dice U-Nets + a random forest (README, "Model card")
DEFAULT = "default.safetensors"
LDA = "lda.safetensors"  # the original work's baseline


def model_path(name: str = DEFAULT) -> Path:
    return Path(str(files(__name__).joinpath(name)))


def default_model_path() -> Path:
    """The shipped default model, or the shipped LDA where it is not installed."""
    path = model_path(DEFAULT)
    return path if path.exists() else model_path(LDA)
