"""Volumes from the wild, none of which the repository has an example of: OME-Zarr, plain
zarr, ImageJ hyperstacks, 16-bit CT, NaN slices, folders of PNG / JPEG / RGB slices, 1- and
2-slice stacks, anisotropic voxels, label volumes of other encodings; each through the
reader, the napari reader and the command line."""

import json

import numpy as np
import pytest
import tifffile
import torch
import zarr
from helpers import synthetic_scene, tiny_config
from PIL import Image

from napari_rockseg._reader import get_reader
from napari_rockseg.cli import main
from napari_rockseg.engine.classes import SHALE, ClassScheme
from napari_rockseg.engine.errors import InputError, RockSegError
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.io import SEMImage, is_volume, read_volume, to_grey
from napari_rockseg.engine.io.volume import read_label_volume
from napari_rockseg.engine.models import bundle
from napari_rockseg.engine.training.trainer import Trainer
from napari_rockseg.engine.training.volume_data import load_pairs

SCHEME = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)


def scene_stack(n=6, size=64):
    images, labels = zip(*(synthetic_scene(size, seed=s) for s in range(n)))
    return np.stack(images), np.stack(labels)


def ngff(path, data, scale, unit="micrometer", axes="zyx", levels=2, fmt=2, nest=False):
    """An OME-Zarr multiscale image: arrays "0", "1", ... halved in y and x, each with
    its scale; NGFF 0.5 (zarr v3) nests the metadata under "ome"."""
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    datasets = []
    for i in range(levels):
        step = (slice(None),) * (data.ndim - 2) + (slice(None, None, 2**i),) * 2
        level = data[step]
        group.create_array(str(i), shape=level.shape, dtype=level.dtype)[...] = level
        s = list(scale[:-2]) + [v * 2**i for v in scale[-2:]]
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": s}]}
        )
    kinds = {"t": "time", "c": "channel"}
    meta = {
        "version": "0.5" if nest else "0.4",
        "axes": [
            {"name": a, "type": kinds.get(a, "space"), **({} if a in kinds else {"unit": unit})}
            for a in axes
        ],
        "datasets": datasets,
    }
    if nest:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [meta]}
    else:
        group.attrs["multiscales"] = [meta]
    return path


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    torch.set_num_threads(1)  # torch's threads spin-wait for each other on a loaded machine
    image, labels = synthetic_scene(64, seed=1)
    model = drain(
        Trainer(
            tiny_config(steps=40, eval_every=40), [SEMImage(image, 10.0)], [labels], SCHEME
        ).run()
    )
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    bundle.save_model(model, path)
    return path


# -- OME-Zarr and zarr -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("unit", "scale"),
    [
        ("micrometer", (0.05, 0.01, 0.01)),
        ("nanometer", (50, 10, 10)),
        ("angstrom", (500, 100, 100)),
    ],
)
def test_ome_zarr_multiscale_reads_level_0_with_its_voxel_size(tmp_path, unit, scale):
    vol, _ = scene_stack()
    path = ngff(tmp_path / "v.ome.zarr", vol, scale, unit)
    got = read_volume(path)
    assert got.voxel_size_nm == pytest.approx((50.0, 10.0, 10.0))
    assert got.shape == vol.shape and got.meta["format"] == "ome-zarr" and is_volume(path)
    np.testing.assert_array_equal(got.data, vol)
    lazy = read_volume(path, lazy=True)
    assert lazy.lazy and lazy.voxel_size_nm == got.voxel_size_nm
    np.testing.assert_array_equal(np.asarray(lazy.data), vol)
    assert got.stem == "v"


def test_ome_zarr_v05_and_bioformats2raw_layouts(tmp_path):
    vol, _ = scene_stack(4)
    v05 = ngff(tmp_path / "v05.zarr", vol, (2.0, 0.5, 0.5), fmt=3, nest=True)
    assert read_volume(v05).voxel_size_nm == pytest.approx((2000.0, 500.0, 500.0))
    root = tmp_path / "b2r.zarr"  # bioformats2raw: the image is group "0" of the store
    zarr.open_group(str(root), mode="w", zarr_format=2).attrs["bioformats2raw.layout"] = 3
    ngff(root / "0", vol, (0.2, 0.1, 0.1))
    got = read_volume(root)
    assert got.voxel_size_nm == pytest.approx((200.0, 100.0, 100.0)) and got.shape == vol.shape


def test_ome_zarr_tczyx_drops_single_time_and_channel(tmp_path):
    vol, _ = scene_stack(4)
    path = ngff(tmp_path / "t.zarr", vol[None, None], (1, 1, 2.0, 0.4, 0.4), axes="tczyx")
    got = read_volume(path)
    assert got.shape == vol.shape and got.voxel_size_nm == pytest.approx((2000.0, 400.0, 400.0))
    assert is_volume(path)


def test_ome_zarr_with_two_channels_is_refused_in_one_line(tmp_path):
    vol, _ = scene_stack(4)
    path = ngff(tmp_path / "c.zarr", np.stack([vol, vol]), (1, 1, 1, 1), axes="czyx")
    with pytest.raises(InputError, match=r"2 channels.*save one channel as its own store"):
        read_volume(path)
    assert not is_volume(path)


def test_ome_zarr_without_units_keeps_the_voxel_size_unknown(tmp_path):
    vol, _ = scene_stack(3)
    path = tmp_path / "nounit.zarr"
    ngff(path, vol, (5, 1, 1))
    attrs = dict(zarr.open_group(str(path)).attrs)
    for axis in attrs["multiscales"][0]["axes"]:
        del axis["unit"]
    zarr.open_group(str(path), mode="r+").attrs.update(attrs)
    assert read_volume(path).voxel_size_nm == (None, None, None)  # a scale of what? not nm


@pytest.mark.parametrize("fmt", [2, 3])
def test_plain_zarr_array_and_group_of_one_array(tmp_path, fmt):
    vol, _ = scene_stack(3)
    arr = zarr.open_array(
        str(tmp_path / "a.zarr"), mode="w", shape=vol.shape, dtype="u1", zarr_format=fmt
    )
    arr[...] = vol
    np.testing.assert_array_equal(read_volume(tmp_path / "a.zarr").data, vol)
    group = zarr.open_group(str(tmp_path / "store"), mode="w", zarr_format=fmt)  # no .zarr suffix
    group.create_array("data", shape=vol.shape, dtype="u1")[...] = vol
    assert is_volume(tmp_path / "store")
    np.testing.assert_array_equal(read_volume(tmp_path / "store").data, vol)


# -- TIFF stacks ------------------------------------------------------------------------------
def test_imagej_hyperstacks_with_channels_or_time_are_refused_with_what_to_do(tmp_path):
    vol, _ = scene_stack(4)
    zc = tmp_path / "zc.tif"
    tifffile.imwrite(zc, np.stack([vol, vol], 1), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(InputError, match=r"2 channels.*Split Channels"):
        read_volume(zc)
    tz = tmp_path / "tz.tif"
    tifffile.imwrite(tz, np.stack([vol] * 3), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(InputError, match=r"3 time points of 4 slices.*one frame"):
        read_volume(tz)
    composite = tmp_path / "composite.tif"
    meta = {"axes": "CYX", "mode": "composite"}
    tifffile.imwrite(composite, vol[:2], imagej=True, metadata=meta)
    with pytest.raises(InputError, match="2 channels"):
        read_volume(composite)
    frames = tmp_path / "frames.tif"  # a stack saved as frames is a stack of slices
    tifffile.imwrite(frames, vol, imagej=True, metadata={"axes": "TYX"})
    np.testing.assert_array_equal(read_volume(frames).data, vol)


def test_grey_imagej_channels_without_slices_are_the_slices(tmp_path):
    """tifffile.imwrite(path, zyx, imagej=True) labels the planes as channels."""
    vol, _ = scene_stack(5)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, vol, imagej=True)
    assert tifffile.TiffFile(path).series[0].axes == "CYX"
    assert is_volume(path)
    got = read_volume(path)
    np.testing.assert_array_equal(got.data, vol)
    assert got.meta["notes"] == ["the file's 5 grey channels are read as slices"]
    np.testing.assert_array_equal(np.asarray(read_volume(path, lazy=True).data), vol)
    rgb = tmp_path / "rgb.tif"  # a stack of colour slices the same way: C x (y, x, RGB)
    tifffile.imwrite(rgb, np.stack([vol] * 3, -1), imagej=True, photometric="rgb")
    np.testing.assert_array_equal(read_volume(rgb).data, vol)


def test_anisotropic_voxels_from_imagej_spacing_and_ome_physical_size(tmp_path):
    vol, _ = scene_stack(4)
    ij = tmp_path / "ij.tif"
    tifffile.imwrite(
        ij, vol, imagej=True, resolution=(10, 10), metadata={"spacing": 0.5, "unit": "micron"}
    )
    um, nm = tmp_path / "um.ome.tif", tmp_path / "nm.ome.tif"
    tifffile.imwrite(
        um,
        vol,
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.5},
    )
    sizes = {f"PhysicalSize{a}": v for a, v in zip("XYZ", (100, 100, 500))}
    units = {f"PhysicalSize{a}Unit": "nm" for a in "XYZ"}
    tifffile.imwrite(nm, vol, metadata={"axes": "ZYX", **sizes, **units})
    for path in (ij, um, nm):
        got = read_volume(path)
        assert got.voxel_size_nm == pytest.approx((500.0, 100.0, 100.0)), path.name
        assert not got.is_isotropic()


def test_16_bit_ct_with_a_circular_field_of_view_keeps_its_values(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    fov = (yy - 24) ** 2 + (xx - 24) ** 2 < 22**2
    ct = rng.normal(30000, 4000, (6, 48, 48)).clip(1, 65535).astype(np.uint16) * fov
    path = tmp_path / "ct.tif"
    tifffile.imwrite(
        path, ct, imagej=True, resolution=(0.5, 0.5), metadata={"spacing": 2, "unit": "um"}
    )
    got = read_volume(path)
    assert got.data.dtype == np.uint16 and got.voxel_size_nm == pytest.approx((2000.0,) * 3)
    np.testing.assert_array_equal(got.data, ct)


def test_float_volume_with_nan_slices_has_no_nan_left(tmp_path):
    vol = scene_stack(5)[0].astype(np.float32)
    vol[2] = np.nan  # a slice the reconstruction left empty
    vol[3, :4] = np.inf
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, vol, imagej=True)
    got = read_volume(path)
    assert np.isfinite(got.data).all()
    finite = np.isfinite(vol)
    assert (got.data[2] == np.median(np.where(finite, vol, np.nan)[finite])).all()
    assert any("1 slice(s) with no finite value" in n for n in got.meta["notes"])
    np.testing.assert_array_equal(got.data[0], vol[0])
    assert np.isfinite(np.asarray(read_volume(path, lazy=True).data)).all()
    tifffile.imwrite(path, np.full((3, 8, 8), np.nan, np.float32), imagej=True)
    with pytest.raises(InputError, match="no finite value"):
        read_volume(path)


def test_one_and_two_slice_stacks(tmp_path):
    vol, _ = scene_stack(2)
    one, two = tmp_path / "one.tif", tmp_path / "two.tif"
    tifffile.imwrite(one, vol[:1], imagej=True)
    tifffile.imwrite(two, vol, imagej=True)
    assert not is_volume(one) and read_volume(one).shape == (1, 64, 64)  # a 2-D image
    assert is_volume(two) and read_volume(two).shape == (2, 64, 64)


# -- folders of slices --------------------------------------------------------------------------
def save_slices(folder, planes, pattern="slice_{}.png", **kw):
    folder.mkdir(exist_ok=True)
    for i, plane in enumerate(planes):
        Image.fromarray(plane).save(folder / pattern.format(i), **kw)
    return folder


def test_folder_of_png_slices_in_natural_order_with_stray_files(tmp_path):
    planes = [np.full((24, 32), 10 * i, np.uint8) for i in range(12)]
    folder = save_slices(tmp_path / "slices", planes)  # slice_2 must come before slice_10
    (folder / "notes.txt").write_text("scan settings")
    (folder / "Thumbs.db").write_bytes(b"\0\1")
    (folder / ".DS_Store").write_bytes(b"\0")
    got = read_volume(folder)
    assert got.shape == (12, 24, 32) and got.data[:, 0, 0].tolist() == [10 * i for i in range(12)]
    assert is_volume(folder)


def test_folder_of_jpeg_and_of_rgb_png_slices(tmp_path):
    vol, _ = scene_stack(3)
    jpg = read_volume(save_slices(tmp_path / "jpg", vol, "s{}.jpg", quality=95))
    assert jpg.shape == vol.shape and np.abs(jpg.data.astype(int) - vol).mean() < 4
    rgb = np.stack([vol, vol // 2, vol // 3], -1)
    got = read_volume(save_slices(tmp_path / "rgb", rgb))
    np.testing.assert_array_equal(got.data, np.stack([to_grey(p) for p in rgb]))


def test_folder_with_one_odd_slice_size_names_it(tmp_path):
    planes = [np.zeros((32, 32), np.uint8)] * 4
    folder = save_slices(tmp_path / "mixed", planes)
    Image.fromarray(np.zeros((30, 32), np.uint8)).save(folder / "slice_0.png")  # the first one
    with pytest.raises(InputError, match=r"slice_0.png is 32 x 30 pixels but slice_1.png .*1 of 4"):
        read_volume(folder)
    assert get_reader(str(folder)) is not None  # so napari shows this message, not another's
    with pytest.raises(ValueError, match="slice_0.png is 32 x 30"):
        get_reader(str(folder))(str(folder))


def test_folder_with_an_unreadable_image_says_to_remove_it(tmp_path):
    folder = save_slices(tmp_path / "s", [np.zeros((16, 16), np.uint8)] * 3)
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"broken.png is not a readable image.*remove it"):
        read_volume(folder)


# -- label volumes -----------------------------------------------------------------------------
def test_label_volumes_in_other_encodings(tmp_path):
    labels = np.ones((4, 32, 32), np.uint8)
    labels[:, 8:16, 8:16] = 3
    u16 = tmp_path / "u16.tif"
    tifffile.imwrite(u16, labels.astype(np.uint16), imagej=True)
    got = read_label_volume(u16, SHALE, (40.0, None, None))
    assert got.data.dtype == np.uint8 and np.array_equal(got.data, labels)
    assert got.voxel_size_nm == (40.0, None, None)
    grey = tmp_path / "pores_0255.tif"
    tifffile.imwrite(grey, (labels == 3).astype(np.uint8) * 255, imagej=True)
    values = ClassScheme.from_dict(
        {"classes": [{"name": "solid", "value": 0}, {"name": "pores", "value": 255}], "rest": None}
    )
    np.testing.assert_array_equal(read_label_volume(grey, values).data, np.where(labels == 3, 2, 1))
    with pytest.raises(RockSegError, match="value 255"):
        read_label_volume(grey, SHALE)
    floats = tmp_path / "f.tif"
    tifffile.imwrite(floats, labels.astype(np.float32), imagej=True)
    with pytest.raises(InputError, match="not integer labels"):
        read_label_volume(floats, SHALE)


# -- napari reader --------------------------------------------------------------------------------
def test_napari_reader_on_ome_zarr_label_volume_and_unknown_depth(tmp_path):
    vol, labels = scene_stack(4)
    path = ngff(tmp_path / "v.zarr", vol, (50, 10, 10), "nanometer")
    ((data, kw, kind),) = get_reader(str(path))(str(path))
    assert kind == "image" and data.shape == vol.shape
    assert kw["scale"] == pytest.approx((50.0, 10.0, 10.0)) and kw["units"] == ("nm",) * 3
    lab = tmp_path / "v_labels.tif"
    tifffile.imwrite(lab, labels.astype(np.uint16), imagej=True)
    ((data, kw, kind),) = get_reader(str(lab))(str(lab))
    assert kind == "labels" and data.dtype == np.uint8 and np.array_equal(data, labels)
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(vol):  # slices with a pixel size but no spacing
        meta = {"unit": "um"}
        tifffile.imwrite(
            folder / f"s{i}.tif", plane, resolution=(0.5, 0.5), imagej=True, metadata=meta
        )
    ((data, kw, kind),) = get_reader(str(folder))(str(folder))
    assert kw["metadata"]["voxel_size_nm"] == (None, 2000.0, 2000.0)
    assert kw["scale"] == (2000.0, 2000.0, 2000.0)  # shown cubic, not 2000x flattened


# -- command line, end to end --------------------------------------------------------------------
def test_predict_an_ome_zarr_and_a_png_folder(tiny_model_file, tmp_path):
    vol, truth = scene_stack(4)
    path = ngff(tmp_path / "scan.zarr", vol, (0.05, 0.01, 0.01))
    out = tmp_path / "out"
    argv = ["predict", "--model", str(tiny_model_file), "--device", "cpu", "--quiet"]
    assert main([*argv, str(path), "--out", str(out)]) == 0
    labels = read_volume(out / "scan_labels.tif")
    assert labels.voxel_size_nm == pytest.approx((50.0, 10.0, 10.0))
    assert labels.shape == vol.shape and (labels.data == truth).mean() > 0.85
    assert json.loads((out / "scan.json").read_text())["voxel_size_nm"] == [50.0, 10.0, 10.0]
    folder = save_slices(tmp_path / "pngs", vol)
    assert main([*argv, str(folder), "--volume", "--out", str(out), "--pixel-size", "10"]) == 0
    np.testing.assert_array_equal(read_volume(out / "pngs_labels.tif").data, labels.data)


@pytest.mark.parametrize(
    ("fill", "porosity"), [(3, 1.0), (1, 0.0), (2, 0.0)], ids=["all-pore", "no-pore", "one-class"]
)
def test_analyze_label_volumes_of_one_class(tmp_path, capsys, fill, porosity):
    path = tmp_path / "lab.tif"
    tifffile.imwrite(path, np.full((6, 24, 24), fill, np.uint16), imagej=True)
    out = tmp_path / "report"
    argv = ["analyze", str(path), "--out", str(out), "--voxel-size", "50", "10", "10"]
    assert main([*argv, "--no-network", "--no-tortuosity", "--no-pore-sizes"]) == 0
    report = json.loads(out.with_suffix(".json").read_text())[str(path)]
    assert report["porosity"] == pytest.approx(porosity)
    assert report["voxel_size_nm"] == [50.0, 10.0, 10.0]


def test_train_from_an_ome_zarr_painted_on_two_slices(tmp_path):
    vol, truth = scene_stack(5)
    image = ngff(tmp_path / "v.zarr", vol, (50, 10, 10), "nanometer")
    painted = np.zeros_like(truth)
    painted[[1, 3]] = truth[[1, 3]]
    labels = tmp_path / "painted.tif"
    tifffile.imwrite(labels, painted, imagej=True)
    images, masks = load_pairs([image], [labels], SCHEME)
    assert [im.metadata["index"] for im in images] == [1, 3]
    assert all(im.pixel_size_nm == 10.0 for im in images)  # from the NGFF scale
    np.testing.assert_array_equal(masks[0], truth[1])
