import numpy as np
import pytest
import tifffile

from napari_rockseg.engine import io
from napari_rockseg.engine.classes import SHALE
from napari_rockseg.engine.errors import InputError


@pytest.fixture(scope="module")
def real(test_pair):
    return io.read_image(test_pair[0])


def test_palette_image_reads_as_grey_with_sem_pixel_size(real, test_pair):
    with tifffile.TiffFile(test_pair[0]) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.PALETTE
        raw = tif.pages[0].asarray()
    assert real.data.shape == (768, 1024) and real.data.dtype == np.uint8
    assert np.array_equal(real.data, raw)  # grey-ramp palette: index = grey level
    assert real.pixel_size_nm == pytest.approx(4.466)


@pytest.mark.parametrize("compression", ["lzw", "zlib"])
def test_compressed_tiffs(tmp_path, real, compression):
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, real.data, compression=compression)
    assert np.array_equal(io.read_image(path).data, real.data)


def test_16bit_and_rgb(tmp_path, real):
    wide = real.data.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "w.tif", wide)
    got = io.read_image(tmp_path / "w.tif").data
    assert got.dtype == np.uint16 and np.array_equal(got, wide)
    rgb = np.repeat(real.data[..., None], 3, axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert np.array_equal(io.read_image(tmp_path / "rgb.tif").data, real.data)
    tifffile.imwrite(
        tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"
    )
    assert np.array_equal(io.read_image(tmp_path / "planar.tif").data, real.data)


def test_pixel_size_from_imagej_resolution(tmp_path, real):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path, real.data, imagej=True, resolution=(1 / 0.010, 1 / 0.010), metadata={"unit": "um"}
    )
    assert io.read_image(path).pixel_size_nm == pytest.approx(10.0)
    tifffile.imwrite(tmp_path / "plain.tif", real.data)  # no unit: unknown, not guessed
    assert io.read_image(tmp_path / "plain.tif").pixel_size_nm is None


FEI_TEXT = (
    "[User]\r\nDate=03/14/2024\r\n[System]\r\nSystemType=Helios G4\r\n"
    "[Scan]\r\nInternalScan=1\r\nPixelWidth=4.96094e-009\r\nPixelHeight=4.96094e-009\r\n"
    "[EScan]\r\nPixelWidth=4.96094e-009\r\n"
)
TESCAN_TEXT = (
    "AccFrames=4\r\nDevice=MIRA3 LMH\r\nPixelSizeX=6.25e-009\r\nPixelSizeY=6.25e-009\r\nHV=5000\r\n"
)


def test_pixel_size_from_fei_and_tescan_metadata(tmp_path, real):
    """FEI / Thermo Fisher and Tescan SEMs record the pixel size in their own tags (metres);
    the 72 dpi resolution beside them is a print setting and must not win."""
    dpi = {"resolution": (72, 72), "resolutionunit": "inch"}
    fei = tmp_path / "helios.tif"
    tifffile.imwrite(fei, real.data, extratags=[(34682, "s", 0, FEI_TEXT, True)], **dpi)
    tescan = tmp_path / "mira.tif"
    raw = b"\x00\x01" + TESCAN_TEXT.encode()  # binary bytes before the text, as in real files
    tifffile.imwrite(tescan, real.data, extratags=[(50431, "B", len(raw), raw, True)], **dpi)
    sidecar = tmp_path / "exported.tif"  # the tag stripped by an export, the .hdr file kept
    tifffile.imwrite(sidecar, real.data, **dpi)
    hdr_text = "[MAIN]\r\n" + TESCAN_TEXT.replace("6.25e-009", "1.2e-008")
    (tmp_path / "exported.hdr").write_text(hdr_text)
    for path, nm in ((fei, 4.96094), (tescan, 6.25), (sidecar, 12.0)):
        assert io.read_image(path).pixel_size_nm == pytest.approx(nm)
        assert io.open_lazy(path).pixel_size_nm == pytest.approx(nm)
    tifffile.imwrite(tmp_path / "bare.tif", real.data, **dpi)
    assert io.read_image(tmp_path / "bare.tif").pixel_size_nm is None


HITACHI_TEXT = (
    "[SemImageFile]\r\nInstructName=SU8220\r\nSampleName=shale\r\nImageName={name}\r\n"
    "DataSize=1024x768\r\nMagnification=25000\r\nPixelSize=4.960938\r\n"
    "WorkingDistance=8100 um\r\n"
)
JEOL_TEXT = (
    "$CM_FORMAT JEOL/SEM\n$CM_MAG 20000\n$CM_FULL_SIZE 1024 688\n$$SM_MICRON_BAR 160\n"
    "$$SM_MICRON_MARKER 1um\n"
)


def test_pixel_size_from_hitachi_and_jeol_sidecars(tmp_path, real):
    """Hitachi and JEOL SEMs write a .txt beside each image (any image format): Hitachi
    ``PixelSize`` in nm, JEOL a scale bar of ``$$SM_MICRON_BAR`` pixels standing for
    ``$$SM_MICRON_MARKER``; a .txt that is neither is ignored."""
    from PIL import Image

    tifffile.imwrite(tmp_path / "su.tif", real.data, resolution=(72, 72), resolutionunit="inch")
    (tmp_path / "su.txt").write_text(HITACHI_TEXT.format(name="su.tif"))
    Image.fromarray(real.data).save(tmp_path / "jsm.bmp")
    (tmp_path / "jsm.txt").write_text(JEOL_TEXT)
    Image.fromarray(real.data).save(tmp_path / "jsm_nm.png")
    (tmp_path / "jsm_nm.TXT").write_text(JEOL_TEXT.replace("1um", "500nm").replace("$$", "$"))
    for name, nm in (("su.tif", 4.960938), ("jsm.bmp", 1000 / 160), ("jsm_nm.png", 500 / 160)):
        assert io.read_image(tmp_path / name).pixel_size_nm == pytest.approx(nm), name
    assert io.open_lazy(tmp_path / "su.tif").pixel_size_nm == pytest.approx(4.960938)
    tifffile.imwrite(tmp_path / "notes.tif", real.data)
    (tmp_path / "notes.txt").write_text("PixelSize=3 written by hand, not by a microscope\n")
    assert io.read_image(tmp_path / "notes.tif").pixel_size_nm is None


def test_png_jpeg_bmp_images_and_lossless_labels(tmp_path, real, test_pair):
    """Images in PNG, JPEG and BMP (grey, 16-bit, RGB, palette) read like TIFFs, whatever
    their name; labels read from PNG (colour overlay or integers) but never from JPEG."""
    from PIL import Image

    grey = real.data
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(grey).save(tmp_path / "g.bmp")
    Image.fromarray(np.repeat(grey[..., None], 3, -1)).save(tmp_path / "rgb.png")
    Image.fromarray(grey).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(grey).save(tmp_path / "misnamed.tif", format="PNG")
    for name in ("g.png", "g.bmp", "rgb.png", "pal.png", "misnamed.tif"):
        got = io.read_image(tmp_path / name)
        assert got.data.dtype == np.uint8 and np.array_equal(got.data, grey), name
        assert got.pixel_size_nm is None
    wide = grey.astype(np.uint16) * 257
    Image.fromarray(wide).save(tmp_path / "w.png")
    assert np.array_equal(io.read_image(tmp_path / "w.png").data, wide)
    Image.fromarray(grey).save(tmp_path / "g.jpg", quality=95)
    jpg = io.read_image(tmp_path / "g.jpg").data
    assert jpg.shape == grey.shape and np.abs(jpg.astype(int) - grey).mean() < 3

    truth = io.read_labels(test_pair[1], SHALE)
    colours = np.array([[0, 0, 0], [200, 200, 200], [255, 0, 0], [0, 255, 0], [0, 0, 0]], np.uint8)
    Image.fromarray(colours[truth]).save(tmp_path / "overlay.png")
    decoded = io.read_labels(tmp_path / "overlay.png", SHALE)
    assert np.array_equal(decoded[truth > 0], truth[truth > 0])
    Image.fromarray(truth).save(tmp_path / "ints.png")
    assert np.array_equal(io.read_labels(tmp_path / "ints.png", SHALE, truth.shape), truth)
    Image.fromarray(colours[truth]).save(tmp_path / "overlay.jpg")
    with pytest.raises(InputError, match="JPEG: its compression changes"):
        io.read_labels(tmp_path / "overlay.jpg", SHALE)


def test_png_too_large_for_pillow_points_to_tiff(tmp_path, monkeypatch):
    from PIL import Image

    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4,096 pixels > twice the limit
    with pytest.raises(InputError, match="too large for Pillow.*TIFF"):
        io.read_image(tmp_path / "big.png")


def test_data_bar_detected_on_real_images(train_dir, real):
    assert io.detect_data_bar(real.data) == 80
    for path in sorted((train_dir / "images").glob("*.tif")):
        assert io.detect_data_bar(io.read_image(path).data) == 80


def test_no_data_bar_on_a_cropped_image(real):
    assert io.detect_data_bar(real.data[:600]) == 0
    assert io.resolve_data_bar(real.data, 0) == 0
    with pytest.raises(InputError):
        io.resolve_data_bar(real.data, 5000)


def test_labels_integer_tiff_used_as_is(tmp_path):
    lab = np.random.default_rng(0).integers(0, 5, (40, 50)).astype(np.uint8)
    io.write_labels(tmp_path / "l.tif", lab, pixel_size_nm=4.466)
    assert np.array_equal(io.read_labels(tmp_path / "l.tif", SHALE), lab)
    tifffile.imwrite(tmp_path / "big.tif", (lab + 5).astype(np.uint8))
    with pytest.raises(Exception, match="only 4 classes"):
        io.read_labels(tmp_path / "big.tif", SHALE)


def test_written_labels_keep_pixel_size(tmp_path, real):
    io.write_labels(tmp_path / "l.tif", np.ones((64, 64), np.uint8), pixel_size_nm=4.466)
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        num, den = tif.pages[0].tags["XResolution"].value
    assert 1000 / (num / den) == pytest.approx(4.466, rel=1e-4)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100), "a PNG file that cannot be"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + b"0" * 100), "a JPEG file that cannot be"),
        (lambda p: p.write_bytes(b"II*\x00" + b"\x00" * 20), "not a readable TIFF|holds no image"),
        (lambda p: p.write_text("just text"), r"not an image file that can be read \(TIFF, PNG"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, make, message):
    path = tmp_path / "bad.tif"
    make(path)
    with pytest.raises(InputError, match=message):
        io.read_image(path)


def test_truncated_tiff(tmp_path, test_pair):
    data = test_pair[0].read_bytes()
    (tmp_path / "t.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        io.read_image(tmp_path / "t.tif")


def test_stack_is_refused_with_advice(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((3, 32, 32), np.uint8), photometric="minisblack")
    with pytest.raises(InputError, match="stack of 3"):
        io.read_image(tmp_path / "s.tif")


def test_float_nan_replaced_and_all_nan_refused(tmp_path):
    a = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    a[3, 3] = np.nan
    a[4, 4] = np.inf
    tifffile.imwrite(tmp_path / "f.tif", a)
    got = io.read_image(tmp_path / "f.tif").data
    assert np.isfinite(got).all()
    tifffile.imwrite(tmp_path / "n.tif", np.full((32, 32), np.nan, np.float32))
    with pytest.raises(InputError, match="no finite"):
        io.read_image(tmp_path / "n.tif")


def test_shape_mismatch_between_image_and_labels(tmp_path, test_pair):
    io.write_labels(tmp_path / "l.tif", np.ones((10, 10), np.uint8))
    with pytest.raises(InputError, match="same size"):
        io.read_labels(tmp_path / "l.tif", SHALE, shape=(768, 1024))


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_folders_pick_up_every_image_format(tmp_path):
    """Batch prediction folders and training folders take PNG / JPEG / BMP beside TIFF;
    a training image finds its label file by stem whatever the label's format."""
    from napari_rockseg.engine.inference import inputs
    from napari_rockseg.engine.training.data import pairs_in_dir

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for name in ("a.tif", "b.png", "c.jpg", "d.bmp", "notes.txt"):
        (tmp_path / "images" / name).write_bytes(b"x")
    for name in ("a.tif", "b.png", "c.png", "d.tif"):
        (tmp_path / "labels" / name).write_bytes(b"x")
    names = [p.name for p in inputs.expand_inputs([tmp_path / "images"])]
    assert names == ["a.tif", "b.png", "c.jpg", "d.bmp"]
    images, labels = pairs_in_dir(tmp_path)
    assert [p.name for p in images] == names
    assert [p.name for p in labels] == ["a.tif", "b.png", "c.png", "d.tif"]


@pytest.mark.parametrize(
    "unit, value, nm", [("µm", 2.2, 2200.0), ("nm", 4.5, 4.5), (None, 0.5, 500.0)]
)
def test_pixel_size_from_ome_xml(tmp_path, unit, value, nm):
    meta = {"PhysicalSizeX": value, "PhysicalSizeY": value}
    if unit:
        meta["PhysicalSizeXUnit"] = meta["PhysicalSizeYUnit"] = unit
    tifffile.imwrite(tmp_path / "o.ome.tif", np.zeros((32, 32), np.uint16), ome=True, metadata=meta)
    assert io.read_image(tmp_path / "o.ome.tif").pixel_size_nm == pytest.approx(nm)


@pytest.mark.parametrize("unit", ["micron", "um", "\\u00B5m"])  # ImageJ text is ASCII
def test_imagej_micrometre_spellings(tmp_path, unit):
    tifffile.imwrite(
        tmp_path / "m.tif",
        np.zeros((32, 32), np.uint16),
        imagej=True,
        resolution=(1 / 2.2, 1 / 2.2),
        metadata={"unit": unit},
    )
    assert io.read_image(tmp_path / "m.tif").pixel_size_nm == pytest.approx(2200.0)


@pytest.mark.parametrize("per_unit, unit", [(1e6, "nm"), (1 / 2.0, "mm"), (1e5, "um")])
def test_impossible_pixel_sizes_are_ignored_with_a_note(tmp_path, per_unit, unit):
    """#32 item 13: 1e-6 nm, 2 mm or 1e-5 µm per pixel is metadata gone wrong: no pixel
    size (so nothing is resampled by it) and a note that says so."""
    tifffile.imwrite(
        tmp_path / "x.tif",
        np.zeros((32, 32), np.uint8),
        imagej=True,
        resolution=(per_unit, per_unit),
        metadata={"unit": unit},
    )
    img = io.read_image(tmp_path / "x.tif")
    assert img.pixel_size_nm is None
    assert any("outside 0.05 nm .. 1 mm" in n for n in img.notes)
    assert io.open_lazy(tmp_path / "x.tif").pixel_size_nm is None


def test_float32_raw_and_normalised_values_kept_nan_noted(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.uniform(14000, 65535, (40, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "raw.tif", raw)
    got = io.read_image(tmp_path / "raw.tif")
    assert got.data.dtype == np.float32 and np.array_equal(got.data, raw) and not got.notes
    norm = rng.uniform(-1, 3, (40, 40)).astype(np.float32)
    norm[:5] = np.nan
    tifffile.imwrite(tmp_path / "n.tif", norm)
    got = io.read_image(tmp_path / "n.tif")
    assert np.isfinite(got.data).all() and "200 NaN / Inf pixels" in got.notes[0]


def test_overlay_blends_each_class_colour_and_keeps_the_grey_in_range():
    """The overlay PNG's pixels: unlabelled ones the normalised grey, labelled ones 45 % of
    their class colour; grey beyond the 99.5th percentile stays white (it once wrapped
    around to black in the 8-bit cast) and below the 0.5th black."""
    from napari_rockseg.engine.io.write import overlay

    grey = np.tile(np.linspace(0, 1000, 400, dtype=np.float32), (50, 1))
    grey[:, -1] = 1500  # the brightest 0.25 %: half the range above the 99.5th percentile
    labels = np.zeros(grey.shape, np.uint8)
    labels[25:] = 2
    rgb = overlay(grey, labels, SHALE)
    assert rgb.shape == (50, 400, 3) and rgb.dtype == np.uint8
    assert (rgb[:25, -1] == 255).all() and (rgb[:25, 0] == 0).all()
    assert (rgb[:25, :, 0] == rgb[:25, :, 1]).all()  # unlabelled: grey
    assert np.diff(rgb[:25, :, 0].astype(int), axis=1).min() >= 0  # monotone in the grey
    colour = np.array(SHALE.colors[1], np.float32)
    want = np.clip(0.55 * 255 + 0.45 * colour, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb[30, -1], want)
