"""The command line on volumes: align, predict (volume files), analyze (3-D report)."""

import argparse
import json

import numpy as np
import pytest
import torch
from helpers import synthetic_scene, tiny_config

from napari_rockseg.cli import align as align_cli
from napari_rockseg.cli import main
from napari_rockseg.engine.classes import SHALE, ClassScheme
from napari_rockseg.engine.errors import InputError, RockSegError
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.volume import predict_volume_file
from napari_rockseg.engine.io import SEMImage, is_volume, read_volume, write_volume
from napari_rockseg.engine.training.trainer import Trainer

SCHEME = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)


def run_align(argv):
    """`rockseg align ...` through the subcommand's own parser (as cli.main builds it)."""
    parser = argparse.ArgumentParser(prog="rockseg")
    align_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["align", *map(str, argv)])
    return args.func(args)


@pytest.fixture(scope="module")
def tiny_model():
    torch.set_num_threads(1)  # torch's threads spin-wait for each other on a loaded machine
    image, labels = synthetic_scene(64, seed=1)
    config = tiny_config(steps=60, eval_every=30)
    return drain(Trainer(config, [SEMImage(image, 10.0)], [labels], SCHEME).run())


# -- align ------------------------------------------------------------------------------
def test_align_cli_recovers_a_known_shift(tmp_path, capsys):
    rng = np.random.default_rng(0)
    from scipy import ndimage as ndi

    big = (ndi.gaussian_filter(rng.normal(size=(140, 140)), 3) * 400 + 128).clip(0, 255)
    drift = np.array([[0, 0], [3, -2], [5, 1], [2, 4]])
    stack = np.stack([np.roll(big, d, (0, 1))[20:120, 20:120] for d in drift]).astype(np.uint8)
    src = write_volume(tmp_path / "stack.tif", stack, (30.0, 10.0, 10.0))
    out = tmp_path / "aligned.tif"
    assert run_align([src, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "dy (px)" in printed and "-3.00" in printed  # the shift that undoes +3
    rows = (tmp_path / "aligned.shifts.csv").read_text().splitlines()
    assert rows[0] == "slice,dy_px,dx_px" and len(rows) == 5
    shifts = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
    np.testing.assert_allclose(shifts, -drift, atol=0.05)
    aligned = read_volume(out)
    assert aligned.voxel_size_nm == pytest.approx((30.0, 10.0, 10.0))
    assert aligned.shape == (4, 100 - 5, 100 - 6)  # the region every slice covers
    for plane in aligned.data[1:]:
        np.testing.assert_array_equal(plane, aligned.data[0])
    with pytest.raises(RockSegError, match="--overwrite"):
        run_align([src, "--out", out])
    assert run_align([src, "--out", out, "--overwrite", "--no-crop", "--quiet"]) == 0
    assert read_volume(out).shape == (4, 100, 100)


# -- predict --------------------------------------------------------------------------------
def test_predict_volume_file_writes_labels_with_voxel_size(tiny_model, tmp_path):
    image, truth = synthetic_scene(64, seed=2)
    stack = np.stack([np.roll(image, 3 * i, 1) for i in range(4)])
    src = write_volume(tmp_path / "vol.tif", stack, (None, 10.0, 10.0))
    assert is_volume(src)
    out = tmp_path / "out"
    report = drain(
        predict_volume_file(
            tiny_model, src, out, voxel_depth_nm=20.0, uncertainty=True, device="cpu", data_bar=0
        )
    )
    labels = read_volume(out / "vol_labels.tif")
    assert labels.voxel_size_nm == pytest.approx((20.0, 10.0, 10.0))
    assert labels.shape == stack.shape and labels.data.dtype == np.uint8
    assert (labels.data[0] == truth).mean() > 0.9
    assert read_volume(out / "vol_uncertainty.tif").data.dtype == np.float32
    saved = json.loads((out / "vol.json").read_text())
    assert saved == report and saved["mode"] == "slices"  # 20 x 10 x 10 nm: anisotropic
    assert saved["voxel_size_nm"] == [20.0, 10.0, 10.0]
    assert sum(saved["phase_fractions"].values()) == pytest.approx(1.0)
    before = (out / "vol_labels.tif").read_bytes()
    with pytest.raises(InputError, match="overwrite"):
        drain(predict_volume_file(tiny_model, src, out, device="cpu"))
    assert (out / "vol_labels.tif").read_bytes() == before
    drain(predict_volume_file(tiny_model, src, out, device="cpu", overwrite=True))


# -- analyze ----------------------------------------------------------------------------------
def closed_spheres(n=40, radius=5):
    """Mineral (1) with pore balls (3) of one radius that touch no face: all porosity isolated."""
    labels = np.ones((n, n, n), np.uint8)
    zz, yy, xx = np.mgrid[:n, :n, :n]
    for c in ((10, 10, 10), (10, 28, 27), (28, 12, 26), (27, 27, 11)):
        labels[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= radius**2] = 3
    return labels


def test_analyze_labels_volume_of_closed_spheres(tmp_path, capsys):
    labels = closed_spheres()
    src = write_volume(tmp_path / "spheres_labels.tif", labels, (None, None, None))
    out = tmp_path / "report"
    argv = [
        "analyze",
        str(src),
        "--out",
        str(out),
        "--voxel-size",
        "8",
        "8",
        "8",
        "--no-network",
        "--no-tortuosity",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "isolated porosity" in printed and "connected porosity" in printed
    rep = json.loads((tmp_path / "report.json").read_text())[str(src)]
    porosity = (labels == SHALE.find("pore")).mean()
    assert rep["porosity"] == pytest.approx(porosity)
    assert rep["isolated_porosity"] == pytest.approx(porosity)
    assert rep["connected_porosity"] == 0
    assert set(rep["connected_porosity_axes"]) == {"z", "y", "x"}
    assert rep["voxel_size_nm"] == [8.0, 8.0, 8.0]
    assert rep["pore_diameter_d50_nm"] == pytest.approx(2 * 5 * 8.0, rel=0.25)
    assert set(rep["tortuosity"]) == {"z", "y", "x"}
    assert "isolated_porosity" in (tmp_path / "report.csv").read_text().splitlines()[0]
    assert main(argv) == 2  # an existing report is kept
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0


def test_analyze_a_0_255_mask_volume_with_a_value_scheme(tmp_path, capsys):
    # a micro-CT segmentation from another tool: pores 255, grains 0, classes given as values
    pores = closed_spheres() == SHALE.find("pore")
    src = write_volume(tmp_path / "mask.tif", np.where(pores, 255, 0).astype(np.uint8))
    scheme = tmp_path / "values.json"
    scheme.write_text(
        json.dumps({"classes": [{"name": "grain", "value": 0}, {"name": "pore", "value": 255}]})
    )
    argv = ["analyze", str(src), "--classes", str(scheme), "--out", str(tmp_path / "r")]
    argv += ["--voxel-size", "8", "8", "8", "--no-network", "--no-tortuosity"]
    assert main(argv) == 0, capsys.readouterr().err
    rep = json.loads((tmp_path / "r.json").read_text())[str(src)]
    assert rep["porosity"] == pytest.approx(pores.mean())


def test_analyze_prints_micro_ct_sizes_in_micrometres(tmp_path, capsys):
    src = write_volume(tmp_path / "mct_labels.tif", closed_spheres())
    scheme = tmp_path / "s.json"
    scheme.write_text(json.dumps(SHALE.to_dict()))
    argv = ["analyze", str(src), "--classes", str(scheme), "--out", str(tmp_path / "r")]
    argv += ["--voxel-size", "2200", "2200", "2200", "--no-network", "--no-tortuosity"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "voxel size 2.2 x 2.2 x 2.2 µm" in printed and "d10/d50/d90 (µm)" in printed
    rep = json.loads((tmp_path / "r.json").read_text())[str(src)]
    assert rep["voxel_size_nm"] == [2200.0, 2200.0, 2200.0]  # the JSON keeps nanometres
