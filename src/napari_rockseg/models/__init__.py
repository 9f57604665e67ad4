"""The shipped model bundles."""

from importlib.resources import files
from pathlib import Path

DEFAULT = "default.safetensors"  # the stacked ensemble
LDA = "lda.safetensors"  # the original work's baseline


def model_path(name: str = DEFAULT) -> Path:
    return Path(str(files(__name__).joinpath(name)))


def default_model_path() -> Path:
    """The shipped ensemble, or the shipped LDA where no ensemble is installed."""
    path = model_path(DEFAULT)
    return path if path.exists() else model_path(LDA)
