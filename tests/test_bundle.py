import json
import pickle

import numpy as np
import pytest
import torch

from napari_rockseg.engine.classes import ClassScheme
from napari_rockseg.engine.errors import BundleError
from napari_rockseg.engine.models import bundle
from napari_rockseg.engine.models.ensemble import Ensemble, NetModel
from napari_rockseg.engine.models.info import ModelInfo
from napari_rockseg.engine.models.lda import GreyLDA
from napari_rockseg.engine.models.nets import UNet
from napari_rockseg.models import LDA, default_model_path, model_path


def test_lda_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 40)).astype(np.uint8)
    lab = np.where(img > 128, 2, 1).astype(np.uint8)
    m = GreyLDA().fit([img], [lab])
    path = bundle.save_model(m, tmp_path / "lda.safetensors")
    loaded = bundle.load_model(path)
    assert np.array_equal(loaded.predict(img), m.predict(img))
    assert (loaded.predict(img) == lab).mean() > 0.95


def test_shipped_models_load():
    assert bundle.load_model(model_path(LDA)).kind == "lda"
    assert bundle.load_model(default_model_path()).info.scheme.names[0] == "mineral grain"


def _net_bundle(tmp_path):
    model = NetModel(UNet(1, 4, 4, 2), ModelInfo(pixel_size_nm=11.16))
    return bundle.save_model(model, tmp_path / "u.safetensors"), model


def test_unet_round_trip_keeps_information(tmp_path):
    path, model = _net_bundle(tmp_path)
    loaded = bundle.load_model(path)
    assert loaded.info.pixel_size_nm == 11.16 and loaded.net.config == model.net.config
    x = torch.randn(1, 1, 16, 16)
    model.eval()
    assert torch.equal(loaded.probabilities(x), model.probabilities(x))


def test_refuses_pickle_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(BundleError, match="pickle"):
        bundle.load_model(path)
    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(BundleError, match="pickle"):
        bundle.load_model(tmp_path / "evil.pt")
    assert not marker.exists()


def _rewrite(path, out, tensors=None, meta=None):
    from safetensors.torch import save_file

    meta_, tensors_ = bundle.read_bundle(path)
    meta = meta_ if meta is None else meta
    save_file(
        tensors_ if tensors is None else tensors,
        str(out),
        metadata={} if meta == "none" else {"rockseg": json.dumps(meta)},
    )
    return out


def test_refuses_inconsistent_bundles(tmp_path):
    path, _ = _net_bundle(tmp_path)
    meta, tensors = bundle.read_bundle(path)
    with pytest.raises(BundleError, match="no napari-rockseg metadata"):
        bundle.load_model(_rewrite(path, tmp_path / "a.safetensors", meta="none"))
    wrong = json.loads(json.dumps(meta))
    wrong["info"]["scheme"]["classes"] = wrong["info"]["scheme"]["classes"][:3]
    with pytest.raises(BundleError, match="4 outputs but the class scheme has 3"):
        bundle.load_model(_rewrite(path, tmp_path / "b.safetensors", meta=wrong))
    t2 = dict(tensors)
    t2.pop(next(iter(t2)))
    with pytest.raises(BundleError, match="do not fit"):
        bundle.load_model(_rewrite(path, tmp_path / "c.safetensors", tensors=t2))
    kind = dict(meta, kind="mystery")
    with pytest.raises(BundleError, match="unknown model kind"):
        bundle.load_model(_rewrite(path, tmp_path / "d.safetensors", meta=kind))
    data = path.read_bytes()
    (tmp_path / "e.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="not a readable model bundle"):
        bundle.load_model(tmp_path / "e.safetensors")


def test_ensemble_bundle_holds_all_members(tmp_path):
    scheme = ClassScheme(("a", "b"), ((0, 0, 0), (255, 255, 255)))
    model = Ensemble.new(ModelInfo(scheme), width=4, depth=2)
    loaded = bundle.load_model(bundle.save_model(model, tmp_path / "e.safetensors"))
    assert len(loaded.binaries) == 2 and loaded.synth is not None


def test_bag_with_forest_bundle_refuses_broken_forest_arrays(tmp_path):
    from napari_rockseg.engine.models.ensemble import Bag
    from napari_rockseg.engine.models.forest import PixelForest

    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (48, 48)).astype(np.float32)
    lab = np.where(img > 0, 2, 1).astype(np.uint8)
    info = ModelInfo(pixel_size_nm=11.16)
    forest = PixelForest(info).fit([img], [lab], n_trees=3, per_class=500)
    bag = Bag.of(
        [NetModel(UNet(1, 4, 4, 2), info), NetModel(UNet(1, 4, 4, 2), info)], forest=forest
    )
    path = bundle.save_model(bag, tmp_path / "b.safetensors", half=True)
    meta, tensors = bundle.read_bundle(path)
    assert tensors["forest.threshold"].dtype == torch.float32  # the forest is never halved
    assert meta["config"]["forest"]["weight"] == 0.2
    broken = dict(tensors)
    broken["forest.left"] = broken["forest.left"] + 10**6
    with pytest.raises(BundleError, match="forest arrays are inconsistent"):
        bundle.load_model(_rewrite(path, tmp_path / "c.safetensors", tensors=broken))
    missing = {k: v for k, v in tensors.items() if k != "forest.value"}
    with pytest.raises(BundleError, match="forest arrays lack"):
        bundle.load_model(_rewrite(path, tmp_path / "d.safetensors", tensors=missing))
