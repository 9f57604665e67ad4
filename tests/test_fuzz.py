"""Fuzzing model metadata, scheme JSON and TIFF headers: every input either loads or is
refused with one of rockseg's errors, writes nothing and stays within a memory bound."""

import json
import resource
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from napari_rockseg.engine.errors import RockSegError
from napari_rockseg.engine.models import bundle

ROOT = Path(__file__).resolve().parents[1]
LDA = ROOT / "src" / "napari_rockseg" / "models" / "lda.safetensors"
# derandomized: CI runs the examples checked here; a new seed is a deliberate change
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
#: growth of the process's peak memory allowed over a whole fuzz test
BOUND_KB = 1_000_000

VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.sampled_from([0, 1, 4096, 10**5, 2**31 - 1])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
    | st.lists(st.integers(-5, 300), max_size=4)
    | st.dictionaries(st.text(max_size=4), st.integers(), max_size=3)
)


def _paths(obj, prefix=()):
    """Every key path into a JSON value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _replace(obj, path, value):
    if not path:
        return value
    obj[path[0]] = _replace(obj[path[0]], path[1:], value)
    return obj


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """The shipped LDA and a tiny U-Net bag with a forest: (metadata, tensors) of each."""
    from napari_rockseg.engine.models.ensemble import Bag, NetModel
    from napari_rockseg.engine.models.forest import PixelForest
    from napari_rockseg.engine.models.info import ModelInfo
    from napari_rockseg.engine.models.nets import UNet

    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (40, 40)).astype(np.float32)
    info = ModelInfo(pixel_size_nm=10.0)
    forest = PixelForest(info, sigma_max=4.0).fit(
        [img], [np.where(img > 0, 2, 1).astype(np.uint8)], n_trees=2, per_class=200
    )
    bag = Bag.of([NetModel(UNet(1, 4, 2, 1), info)], forest=forest)
    path = bundle.save_model(bag, tmp_path_factory.mktemp("b") / "bag.safetensors")
    return [bundle.read_bundle(LDA), bundle.read_bundle(path)]


@FUZZ
@given(st.integers(0, 1), st.data())
def test_mutated_model_metadata_loads_or_is_refused(bundles, tmp_path_factory, which, data):
    meta, tensors = bundles[which]
    meta = json.loads(json.dumps(meta))
    path = data.draw(st.sampled_from(list(_paths(meta))[1:]))
    meta = _replace(meta, path, data.draw(VALUES))
    d = tmp_path_factory.mktemp("m")
    file = d / "m.safetensors"
    save_file(tensors, str(file), metadata={"rockseg": json.dumps(meta)})
    start = _peak_kb()
    try:
        model = bundle.load_model(file)
    except RockSegError as exc:
        assert "\n" not in str(exc)
    else:
        assert model.info.scheme.n_classes >= 1
    assert _peak_kb() - start < BOUND_KB
    assert [p.name for p in d.iterdir()] == ["m.safetensors"]


@FUZZ
@given(
    st.recursive(
        VALUES,
        lambda kids: (
            st.lists(kids, max_size=4)
            | st.dictionaries(
                st.sampled_from(["classes", "name", "color", "value", "rest", "x"]),
                kids,
                max_size=4,
            )
        ),
        max_leaves=16,
    )
)
def test_scheme_files_load_or_are_refused(tmp_path_factory, value):
    from napari_rockseg.engine.classes import load_scheme

    d = tmp_path_factory.mktemp("s")
    path = d / "scheme.json"
    path.write_text(json.dumps(value))
    try:
        scheme = load_scheme(path)
    except RockSegError as exc:
        assert "\n" not in str(exc)
    else:
        assert scheme.n_classes >= 1
    assert [p.name for p in d.iterdir()] == ["scheme.json"]


def _tag_offsets(path):
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        return {
            name: (tags[name].valueoffset, int(tags[name].dtype))
            for name in (
                "ImageWidth",
                "ImageLength",
                "StripOffsets",
                "StripByteCounts",
                "RowsPerStrip",
            )
            if name in tags
        }


@FUZZ
@given(
    st.sampled_from(
        ["ImageWidth", "ImageLength", "StripOffsets", "StripByteCounts", "RowsPerStrip"]
    ),
    st.sampled_from([0, 1, 7, 65535, 100_000, 2**31 - 1, 2**32 - 1]),
)
def test_tiff_headers_that_lie_are_refused_before_reading(tmp_path_factory, tag, value):
    """A TIFF whose header claims other sizes than its data: predict's input check and the
    reader either accept it (and read its real size) or refuse it, within the bound."""
    from napari_rockseg.engine import io
    from napari_rockseg.engine.inference.inputs import check_input_file

    d = tmp_path_factory.mktemp("t")
    path = d / "x.tif"
    tifffile.imwrite(path, np.arange(64 * 64, dtype=np.uint8).reshape(64, 64), rowsperstrip=16)
    offsets = _tag_offsets(path)
    if tag not in offsets:
        return
    offset, dtype = offsets[tag]
    raw = bytearray(path.read_bytes())
    struct.pack_into(
        {3: "<H", 4: "<I"}[dtype], raw, offset, value % (2**16 if dtype == 3 else 2**32)
    )
    path.write_bytes(bytes(raw))
    start = _peak_kb()
    try:
        check_input_file(path)
        image = io.read_image(path)
    except RockSegError as exc:
        assert "\n" not in str(exc)
    else:
        assert image.data.size <= path.stat().st_size * 8
    assert _peak_kb() - start < BOUND_KB
    assert [p.name for p in d.iterdir()] == ["x.tif"]
