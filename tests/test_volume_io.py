"""Reading and writing 3-D volumes: TIFF stacks, OME-TIFF, folders of slices, zarr."""

import tracemalloc
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from napari_rockseg.engine.errors import InputError
from napari_rockseg.engine.io import to_grey, volume_base
from napari_rockseg.engine.io.volume import Volume, is_volume, read_volume
from napari_rockseg.engine.io.volume_write import write_volume

FIBSEM = Path(__file__).resolve().parents[2] / "shared" / "data" / "fibsem-stack" / "slices"


def _stack(n=5, h=40, w=56, dtype=np.uint8, seed=0):
    return np.random.default_rng(seed).integers(0, 200, (n, h, w)).astype(dtype)


def test_imagej_stack_gives_spacing_and_pixel_size(tmp_path):
    vol = _stack()
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        vol,
        imagej=True,
        resolution=(1 / 0.005, 1 / 0.004),
        metadata={"axes": "ZYX", "spacing": 0.02, "unit": "um"},
    )
    got = read_volume(path)
    np.testing.assert_array_equal(got.data, vol)
    z, y, x = got.voxel_size_nm
    assert (z, y, x) == pytest.approx((20.0, 4.0, 5.0), rel=1e-4)
    assert got.meta["format"] == "imagej" and not got.lazy
    assert is_volume(path)


def test_imagej_hyperstack_with_channels_is_refused(tmp_path):
    path = tmp_path / "two_channels.tif"
    tifffile.imwrite(
        path, np.zeros((4, 2, 20, 20), np.uint8), imagej=True, metadata={"axes": "ZCYX"}
    )
    with pytest.raises(InputError, match="2 channels"):
        read_volume(path)


@pytest.mark.parametrize(("z_unit", "z_nm"), [("µm", 1500.0), ("nm", 1.5)])
def test_ome_tiff_physical_sizes_with_units(tmp_path, z_unit, z_nm):
    vol = _stack(n=3)
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        path,
        vol,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.25,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": 1.5,
            "PhysicalSizeZUnit": z_unit,
        },
    )
    got = read_volume(path)
    np.testing.assert_array_equal(got.data, vol)
    assert got.voxel_size_nm == pytest.approx((z_nm, 250.0, 500.0))
    assert got.meta["format"] == "ome" and got.stem == "stack"
    assert is_volume(path)


def test_folder_is_read_in_natural_order(tmp_path):
    for i in range(1, 13):
        Image.fromarray(np.full((20, 24), i, np.uint8)).save(tmp_path / f"slice{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    got = read_volume(tmp_path)
    assert got.shape == (12, 20, 24)
    assert got.data[:, 0, 0].tolist() == list(range(1, 13))  # text order would put 10 after 1
    assert got.meta["files"][:3] == ["slice1.png", "slice2.png", "slice3.png"]
    assert got.voxel_size_nm == (None, None, None)
    assert is_volume(tmp_path)


def test_folder_of_rgb_slices_goes_grey_like_images(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (3, 16, 18, 3)).astype(np.uint8)
    for i, plane in enumerate(rgb):
        tifffile.imwrite(tmp_path / f"s{i}.tif", plane, photometric="rgb")
    got = read_volume(tmp_path)
    np.testing.assert_array_equal(got.data, np.stack([to_grey(p) for p in rgb]))


def test_rgb_stack_file_goes_grey(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 255, (4, 16, 18, 3)).astype(np.uint8)
    path = tmp_path / "rgb_stack.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    expected = np.stack([to_grey(p) for p in rgb])
    np.testing.assert_array_equal(read_volume(path).data, expected)
    np.testing.assert_array_equal(np.asarray(read_volume(path, lazy=True).data), expected)


def test_slices_of_different_shapes_are_one_clear_error(tmp_path):
    tifffile.imwrite(tmp_path / "a1.tif", np.zeros((20, 20), np.uint8))
    tifffile.imwrite(tmp_path / "a2.tif", np.zeros((20, 21), np.uint8))
    with pytest.raises(InputError, match=r"a2.tif is 21 x 20 pixels but a1.tif is 20 x 20"):
        read_volume(tmp_path)
    assert not is_volume(tmp_path)


def test_zarr_array_with_voxel_attrs_lazy_and_eager(tmp_path):
    vol = _stack(n=4, dtype=np.uint16)
    path = tmp_path / "vol.zarr"
    arr = zarr.open_array(str(path), mode="w", shape=vol.shape, dtype=vol.dtype, chunks=(1, 40, 56))
    arr[:] = vol
    arr.attrs["voxel_size_nm"] = [30.0, 10.0, 10.0]
    eager, lazy = read_volume(path, lazy=False), read_volume(path, lazy=True)
    assert isinstance(eager.data, np.ndarray) and isinstance(lazy.data, da.Array)
    np.testing.assert_array_equal(np.asarray(lazy.data), vol)
    np.testing.assert_array_equal(eager.data, vol)
    assert eager.voxel_size_nm == (30.0, 10.0, 10.0) and eager.stem == "vol"
    assert is_volume(path)


def test_zarr_pixel_size_attr_and_2d_zarr_is_no_volume(tmp_path):
    path = tmp_path / "flat.zarr"
    arr = zarr.open_array(str(path), mode="w", shape=(30, 30), dtype=np.uint8)
    arr.attrs["pixel_size_nm"] = 7.5
    assert not is_volume(path)
    got = read_volume(path)
    assert got.shape == (1, 30, 30) and got.voxel_size_nm == (None, 7.5, 7.5)


def test_explicit_sizes_override_metadata(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        _stack(),
        imagej=True,
        resolution=(100, 100),
        metadata={"axes": "ZYX", "spacing": 0.05, "unit": "um"},
    )
    got = read_volume(path, pixel_size_nm=3.0, voxel_depth_nm=6.0)
    assert got.voxel_size_nm == (6.0, 3.0, 3.0)
    assert not got.is_isotropic() and got.is_isotropic(tol=1.0)
    with pytest.raises(InputError, match="pixel_size_nm must be a positive"):
        read_volume(path, pixel_size_nm=-1)


def test_is_isotropic_needs_all_sizes():
    assert Volume(np.zeros((2, 2, 2)), (10.0, 10.5, 10.5)).is_isotropic()
    assert not Volume(np.zeros((2, 2, 2)), (None, 10.0, 10.0)).is_isotropic()
    assert not Volume(np.zeros((2, 2, 2)), (20.0, 10.0, 10.0)).is_isotropic(tol=0.1)


def test_is_volume_false_for_images_that_are_not_stacks(tmp_path):
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((32, 32), np.uint8))
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(
        planar, np.zeros((3, 32, 32), np.uint8), photometric="rgb", planarconfig="separate"
    )
    pyramid = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(pyramid) as tw:
        for n in (64, 32, 16):
            tw.write(np.zeros((n, n), np.uint8), metadata=None)
    png = tmp_path / "one.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    single = tmp_path / "single"
    single.mkdir()
    tifffile.imwrite(single / "only.tif", np.zeros((16, 16), np.uint8))
    for path in (flat, rgb, planar, pyramid, png, single, tmp_path / "missing.tif"):
        assert not is_volume(path), path
    plain = tmp_path / "plain.tif"
    with tifffile.TiffWriter(plain) as tw:
        for _ in range(3):
            tw.write(np.zeros((32, 32), np.uint8), metadata=None)
    assert is_volume(plain)
    assert read_volume(plain).shape == (3, 32, 32)


def test_write_read_round_trip_tiff_keeps_data_and_voxel_size(tmp_path):
    vol = _stack(n=3, h=300, w=280, dtype=np.uint16)  # big enough to be tiled
    path = write_volume(tmp_path / "out.tif", vol, (40.0, 8.5, 8.5))
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.is_tiled and page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um"
    got = read_volume(path)
    np.testing.assert_array_equal(got.data, vol)
    assert got.voxel_size_nm == pytest.approx((40.0, 8.5, 8.5), rel=1e-5)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_write_from_iterator_and_dask_to_zarr_and_tiff(tmp_path):
    vol = _stack(n=6, dtype=np.uint8)
    write_volume(tmp_path / "gen.tif", (p for p in vol), 5.0, n_slices=6)
    np.testing.assert_array_equal(read_volume(tmp_path / "gen.tif").data, vol)
    lazy = da.from_array(vol, chunks=(4, 40, 56))
    write_volume(tmp_path / "out.zarr", lazy, (None, 5.0, 5.0))
    got = read_volume(tmp_path / "out.zarr")
    np.testing.assert_array_equal(got.data, vol)
    assert got.voxel_size_nm == (None, 5.0, 5.0)
    write_volume(tmp_path / "out.zarr", (p for p in vol[:2]), (1.0, 2.0, 2.0))  # replaces it
    got = read_volume(tmp_path / "out.zarr")
    assert got.shape == (2, 40, 56) and got.voxel_size_nm == (1.0, 2.0, 2.0)
    with pytest.raises(InputError, match="n_slices"):
        write_volume(tmp_path / "nocount.tif", (p for p in vol), 5.0)


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "keep.tif"
    write_volume(path, _stack(n=2), 5.0)
    before = path.read_bytes()
    with pytest.raises(InputError, match="only 2 of the 5 slices"):
        write_volume(path, (p for p in _stack(n=2, seed=3)), 5.0, n_slices=5)
    with pytest.raises(InputError, match="do not fit"):
        write_volume(path, np.full((2, 8, 8), -3, np.int16), 5.0)
    assert path.read_bytes() == before

    def broken():
        yield np.ones((8, 8), np.uint8)
        raise InputError("the source failed")

    store = write_volume(tmp_path / "keep.zarr", np.full((3, 8, 8), 7, np.uint8), 2.0)
    with pytest.raises(InputError, match="the source failed"):
        write_volume(store, broken(), 2.0)
    np.testing.assert_array_equal(read_volume(store).data, np.full((3, 8, 8), 7, np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif", "keep.zarr"]


def test_big_volumes_stay_lazy_and_memory_stays_flat(tmp_path, monkeypatch):
    def planes(n, h, w):
        index = da.arange(n, chunks=1, dtype=np.float32)[:, None, None]
        return da.ones((n, h, w), np.float32, chunks=(1, h, w)) * index

    write_volume(tmp_path / "warm.tif", planes(2, 32, 32), 1.0)  # first-use imports and caches
    n, h, w = 64, 512, 512  # 64 MiB of float32
    path = tmp_path / "big.tif"
    tracemalloc.start()
    write_volume(path, planes(n, h, w), (10.0, 10.0, 10.0))
    _, peak_write = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_write < 16 * 2**20  # a few slices, not the 64 MiB volume

    monkeypatch.setattr(volume_base, "LAZY_BYTES", 4 * 2**20)
    read_volume(tmp_path / "warm.tif", lazy=True).data.sum().compute()
    tracemalloc.start()
    got = read_volume(path)
    total = float(got.data[:, ::64, ::64].sum().compute())
    _, peak_read = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(got.data, da.Array) and got.data.chunksize[0] == 1
    assert total == sum(range(n)) * (h // 64) * (w // 64)
    assert peak_read < 16 * 2**20


def test_errors_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_volume(tmp_path / "nothing.tif")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no image files"):
        read_volume(empty)
    png = tmp_path / "one.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    with pytest.raises(InputError, match="single 2-D image"):
        read_volume(png)
    with pytest.raises(InputError, match=r"\.tif, \.tiff or \.zarr"):
        write_volume(tmp_path / "out.png", _stack(), 1.0)
    with pytest.raises(InputError, match="3-D"):
        write_volume(tmp_path / "out.tif", np.zeros((8, 8)), 1.0)


def test_real_fibsem_folder_reads_as_a_volume():
    if not FIBSEM.is_dir():
        pytest.skip(f"{FIBSEM} is absent (the CI has it): nothing to read")
    assert is_volume(FIBSEM)
    vol = read_volume(FIBSEM)
    assert vol.shape == (14, 1104, 1720) and vol.data.dtype == np.uint8
    assert vol.meta["files"][0] == "slice00.tif" and vol.meta["files"][-1] == "slice13.tif"
    assert vol.voxel_size_nm == (None, None, None)  # the README: no physical pixel size
    lazy = read_volume(FIBSEM, lazy=True)
    np.testing.assert_array_equal(np.asarray(lazy.data[5]), vol.data[5])


def test_the_napari_writer_keeps_a_labels_volume_and_its_voxel_size(tmp_path):
    from napari_rockseg._writer import write_labels

    labels = zarr.zeros((5, 32, 40), chunks=(1, 32, 40), dtype="u1")  # a lazy layer's store
    labels[:, 4:20, 8:30] = 2
    labels[3, 0, 0] = 1
    meta = {"scale": (30.0, 10.0, 10.0), "metadata": {}}
    (written,) = write_labels(str(tmp_path / "seg.tif"), labels, meta)
    back = read_volume(written, lazy=False)
    np.testing.assert_array_equal(back.data, labels[:])
    assert back.voxel_size_nm == pytest.approx((30.0, 10.0, 10.0))
