"""Rock measurements on synthetic label images of known geometry, and on the real ground truth."""

import json
from pathlib import Path

import numpy as np
import pytest

from napari_rockseg.cli import main
from napari_rockseg.engine import io
from napari_rockseg.engine.analysis.rock import (
    compare_reports,
    object_stats,
    organic_hosted_share,
    rock_report,
)
from napari_rockseg.engine.classes import SHALE

MINERAL, ORGANIC, PORE, CLAY = 1, 2, 3, 4


def disc(labels, cy, cx, r, value):
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]]
    labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value


@pytest.fixture
def rock():
    """Mineral background, an organic block, 3 pores inside it and 2 in mineral."""
    lab = np.full((200, 300), MINERAL, np.uint8)
    lab[20:120, 20:140] = ORGANIC
    for cy, cx, r in [(50, 50, 6), (80, 100, 10), (100, 40, 4)]:
        disc(lab, cy, cx, r, PORE)
    for cy, cx, r in [(150, 200, 8), (60, 250, 12)]:
        disc(lab, cy, cx, r, PORE)
    return lab


def test_diameters_within_one_pixel(rock):
    st = object_stats(rock, PORE)
    assert st["count"] == 5 and st["unit"] == "px"
    expected = sorted(2 * r for r in (6, 10, 4, 8, 12))
    assert np.all(np.abs(np.sort(st["diameters"]) - expected) <= 1.0)
    nm = object_stats(rock, PORE, pixel_size_nm=4.466)
    np.testing.assert_allclose(nm["diameters"], np.array(st["diameters"]) * 4.466)
    assert nm["unit"] == "nm" and sum(nm["histogram"]["counts"]) == 5
    assert nm["d10"] <= nm["d50"] <= nm["d90"]


def test_fractions_exact_and_organic_hosted_share_exact(rock):
    rep = rock_report(rock, SHALE, pixel_size_nm=10.0)
    pore_px = (rock == PORE).sum()
    assert rep["porosity"] == pore_px / rock.size
    assert rep["organic_fraction"] == (rock == ORGANIC).sum() / rock.size
    assert rep["classes"]["pores"]["area_um2"] == pytest.approx(pore_px * 0.01**2)
    inside = np.zeros_like(rock)
    for cy, cx, r in [(50, 50, 6), (80, 100, 10), (100, 40, 4)]:
        disc(inside, cy, cx, r, 1)
    assert rep["organic_hosted_pore_share"] == inside.sum() / pore_px
    assert organic_hosted_share(rock, PORE, ORGANIC) == rep["organic_hosted_pore_share"]


def test_pore_touching_organic_counts_as_hosted():
    lab = np.full((40, 40), MINERAL, np.uint8)
    lab[:, :20] = ORGANIC
    disc(lab, 20, 24, 3, PORE)  # in mineral (columns 21-27), one pixel short of the organic edge
    assert organic_hosted_share(lab, PORE, ORGANIC) == 0.0
    lab[20, 20] = PORE  # now the pore reaches column 20, next to organic column 19
    assert organic_hosted_share(lab, PORE, ORGANIC) == 1.0
    lab[20, 20] = MINERAL
    lab[21, 20] = ORGANIC  # organic diagonal to a pore pixel also counts (8-connectivity)
    assert organic_hosted_share(lab, PORE, ORGANIC) == 1.0
    disc(lab, 20, 34, 2, PORE)  # away from organic
    share = organic_hosted_share(lab, PORE, ORGANIC)
    assert 0 < share < 1


def test_border_objects_flagged_excluded_and_min_size(rock):
    disc(rock, 0, 150, 5, PORE)  # touches the top border
    rock[190, 10] = PORE  # a single-pixel speck
    st = object_stats(rock, PORE)
    assert st["count"] == 7 and st["touching_border"] == 1
    assert object_stats(rock, PORE, exclude_border=True)["count"] == 6
    assert object_stats(rock, PORE, min_size=2)["count"] == 6


def test_mask_excludes_data_bar():
    lab = np.full((100, 100), MINERAL, np.uint8)
    lab[90:] = PORE  # as if the data bar had been segmented as pores
    mask = io.valid_mask(lab.shape, 10)
    rep = rock_report(lab, SHALE, mask=mask)
    assert rep["porosity"] == 0.0 and rep["pores"]["count"] == 0


def test_compare_reports(rock):
    pred = rock.copy()
    disc(pred, 170, 50, 5, PORE)
    cmp = compare_reports(rock_report(rock, SHALE), rock_report(pred, SHALE))
    assert cmp["porosity"]["difference"] > 0 and cmp["pore_count"]["difference"] == 1


def test_ground_truth_report_in_nm_from_cli(test_pair, tmp_path, capsys):
    out = tmp_path / "report"
    assert (
        main(["analyze", str(test_pair[1]), "--image", str(test_pair[0]), "--out", str(out)]) == 0
    )
    reports = json.loads((tmp_path / "report.json").read_text())
    rep = next(iter(reports.values()))
    assert rep["pixel_size_nm"] == pytest.approx(4.466)
    truth = io.read_labels(test_pair[1], SHALE)[:688]
    assert rep["porosity"] == pytest.approx((truth == PORE).mean())
    assert rep["organic_fraction"] == pytest.approx((truth == ORGANIC).mean())
    assert rep["pores"]["unit"] == "nm" and rep["pores"]["count"] > 10
    csv_text = (tmp_path / "report.csv").read_text()
    assert "porosity" in csv_text.splitlines()[0] and "pore_d50_nm" in csv_text.splitlines()[0]


def test_analyze_never_replaces_an_earlier_result_without_overwrite(tmp_path):
    """`analyze --out r/<stem>` would land on predict's r/<stem>.json: refused, untouched."""
    from napari_rockseg.models import LDA, model_path

    out = tmp_path / "r"
    image = Path(__file__).resolve().parents[1] / "src/napari_rockseg/data/shale_test.tif"
    assert (
        main(["predict", str(image), "--out", str(out), "--model", str(model_path(LDA)), "--quiet"])
        == 0
    )
    before = (out / "shale_test.json").read_bytes()
    labels = str(out / "shale_test_labels.tif")
    assert main(["analyze", labels, "--out", str(out / "shale_test")]) == 2
    assert (out / "shale_test.json").read_bytes() == before
    assert main(["analyze", labels, "--out", str(out / "shale_test"), "--overwrite"]) == 0
    assert (out / "shale_test.json").read_bytes() != before
