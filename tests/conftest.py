from pathlib import Path

import pytest
from helpers import synthetic_scene

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "shale-sem"
PACKAGED = ROOT / "src" / "napari_rockseg" / "data"


@pytest.fixture(scope="session")
def test_pair():
    """The shale test image and its ground truth: ../shared/data, else the packaged copy."""
    img = SHARED / "test" / "images" / "1.tif"
    if img.exists():
        return img, SHARED / "test" / "labels" / "1.tif"
    return PACKAGED / "shale_test.tif", PACKAGED / "shale_test_labels.tif"


@pytest.fixture(scope="session")
def train_dir(tmp_path_factory, test_pair):
    """A folder with images/ and labels/: the real training set, else the packaged sample."""
    if (SHARED / "train" / "images").is_dir():
        return SHARED / "train"
    d = tmp_path_factory.mktemp("train")
    (d / "images").mkdir()
    (d / "labels").mkdir()
    (d / "images" / "1.tif").write_bytes(test_pair[0].read_bytes())
    (d / "labels" / "1.tif").write_bytes(test_pair[1].read_bytes())
    return d


@pytest.fixture(scope="session")
def test_dir(tmp_path_factory, test_pair):
    if (SHARED / "test" / "images").is_dir():
        return SHARED / "test"
    d = tmp_path_factory.mktemp("test")
    (d / "images").mkdir()
    (d / "labels").mkdir()
    (d / "images" / "1.tif").write_bytes(test_pair[0].read_bytes())
    (d / "labels" / "1.tif").write_bytes(test_pair[1].read_bytes())
    return d


@pytest.fixture
def scene():
    return synthetic_scene()


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA: skipped, with the reason, where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
