"""Bad input gets a clear message and loses nothing; interrupted work resumes."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from helpers import synthetic_scene, tiny_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from napari_rockseg.engine import io
from napari_rockseg.engine.classes import SHALE, ClassScheme
from napari_rockseg.engine.errors import InputError, RockSegError, SchemeError
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.io import SEMImage
from napari_rockseg.engine.training.checkpoints import checkpoint_info, load_checkpoint
from napari_rockseg.engine.training.config import TrainConfig
from napari_rockseg.engine.training.trainer import Trainer
from napari_rockseg.models import LDA as LDA_NAME
from napari_rockseg.models import model_path

SCHEME3 = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "napari_rockseg.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    """images/ and labels/ with one synthetic scene as TIFFs."""
    d = tmp_path_factory.mktemp("scene")
    (d / "images").mkdir()
    (d / "labels").mkdir()
    image, labels = synthetic_scene(96, seed=2)
    tifffile.imwrite(d / "images" / "a.tif", image)
    tifffile.imwrite(d / "labels" / "a.tif", labels)
    return d


# -- training labels -------------------------------------------------------------
def test_all_unlabelled_single_class_and_missing_class():
    image, labels = synthetic_scene(64)
    cfg = TrainConfig(method="unet", steps=1, device="cpu", data_bar=0)
    with pytest.raises(InputError, match="all unlabelled"):
        Trainer(cfg, [SEMImage(image)], [np.zeros_like(labels)], SCHEME3)
    with pytest.raises(InputError, match="only one class"):
        Trainer(cfg, [SEMImage(image)], [np.ones_like(labels)], SCHEME3)
    t = Trainer(cfg, [SEMImage(image)], [np.where(labels == 3, 1, labels)], SCHEME3)
    assert "class 'pore' has no labelled pixel; the model will never predict it" in t.notes
    with pytest.raises(SchemeError, match="only 3 classes"):
        Trainer(cfg, [SEMImage(image)], [labels + 1], SCHEME3)


def test_synth_share_and_patience_reach_the_trainer(scene_dir, tmp_path):
    model = tmp_path / "e.safetensors"
    proc = cli(
        "train",
        "--method",
        "ensemble",
        "--data-dir",
        scene_dir,
        "--steps",
        "10",
        "--tile",
        "32",
        "--width",
        "4",
        "--depth",
        "2",
        "--out",
        model,
        "--classes",
        _scheme_file(tmp_path),
        "--data-bar",
        "0",
        "--pixel-size",
        "0",
        "--synth-share",
        "0.2",
        "--patience",
        "0",
        "--blur",
        "0.7",
        "--keep-checkpoint",
    )
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(str(model) + ".ckpt.pt")
    last = {h["stage"]: h["step"] for h in ckpt["history"]}
    assert last == {"members": 8, "synth": 2}  # 10 steps split 80 / 20
    from napari_rockseg.engine.models.bundle import load_model

    settings = load_model(model).info.provenance["settings"]
    assert settings["synth_share"] == 0.2 and settings["patience"] == 0 and settings["blur"] == 0.7


def test_fine_tuning_a_model_of_other_classes_is_refused(scene_dir, tmp_path):
    model = tmp_path / "m.safetensors"
    assert (
        cli(
            "train",
            "--method",
            "unet",
            "--data-dir",
            scene_dir,
            "--steps",
            "2",
            "--tile",
            "32",
            "--width",
            "4",
            "--depth",
            "2",
            "--out",
            model,
            "--classes",
            _scheme_file(tmp_path),
            "--data-bar",
            "0",
            "--pixel-size",
            "0",
        ).returncode
        == 0
    )
    proc = cli(
        "train",
        "--method",
        "unet",
        "--data-dir",
        scene_dir,
        "--steps",
        "2",
        "--init",
        model,
        "--out",
        tmp_path / "n.safetensors",
        "--data-bar",
        "0",
    )
    assert proc.returncode == 2 and "has classes (background, blob, pore)" in proc.stderr
    assert not (tmp_path / "n.safetensors").exists()


def _scheme_file(tmp_path):
    import json

    path = tmp_path / "scheme.json"
    path.write_text(json.dumps(SCHEME3.to_dict()))
    return path


# -- images --------------------------------------------------------------------------
def test_sixteen_bit_narrow_range_and_tiny_images(tmp_path):
    image, labels = synthetic_scene(64, seed=3)
    cfg = tiny_config(steps=120, noise=TrainConfig.noise)  # the default noise augmentation
    model = drain(Trainer(cfg, [SEMImage(image)], [labels], SCHEME3).run())
    from napari_rockseg.engine.inference.segment import segment

    eight = drain(segment(model, SEMImage(image), data_bar=0)).labels
    full = (image.astype(np.uint16) * 257 + 300).astype(
        np.uint16
    )  # the same scene at 16 bits, brighter
    tifffile.imwrite(tmp_path / "f.tif", full)
    sixteen = drain(segment(model, io.read_image(tmp_path / "f.tif"), data_bar=0)).labels
    assert (sixteen == eight).mean() > 0.99
    narrow = (1000 + image.astype(np.uint16) // 16).astype(np.uint16)  # 16 grey levels out of 65536
    assert model.info.contrast is not None
    assert (
        model.info.stats(narrow)[1] < 1000
    )  # low contrast: stretched to the training images' contrast
    tifffile.imwrite(tmp_path / "n.tif", narrow)
    stretched = drain(segment(model, io.read_image(tmp_path / "n.tif"), data_bar=0)).labels
    assert (stretched == eight).mean() > 0.9
    # an image below CONTRAST_FLOOR x the training images' contrast is stretched to that floor, with
    # a note
    from napari_rockseg.engine.models.info import CONTRAST_FLOOR, LOW_CONTRAST, contrast_of

    med = float(np.median(image))
    dull = np.clip(med + 0.4 * (image.astype(np.float32) - med), 0, 255).round().astype(np.uint8)
    own, floor = contrast_of(dull), CONTRAST_FLOOR * model.info.contrast
    assert LOW_CONTRAST < own < floor
    (_, full), note = model.info.stats_and_note(dull)
    assert full == pytest.approx(255.0 * own / floor) and "low contrast" in note
    assert model.info.stats_and_note(image)[1] is None  # the training contrast is left as recorded
    seg = drain(segment(model, SEMImage(dull), data_bar=0))
    assert any("low contrast" in n for n in seg.notes)
    tiny = image[:20, :30]
    out = drain(segment(model, SEMImage(tiny), data_bar=0, tile=256)).labels
    assert out.shape == (20, 30) and out.min() >= 1
    tifffile.imwrite(tmp_path / "t.tif", image[:5, :5])
    with pytest.raises(InputError, match="too small"):
        io.read_image(tmp_path / "t.tif")


def test_unwritable_output_and_full_disk_leave_nothing(tmp_path, test_pair, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = cli(
        "predict",
        test_pair[0],
        "--out",
        blocker / "sub",
        "--model",
        "src/napari_rockseg/models/lda.safetensors",
    )
    assert (
        proc.returncode == 2
        and "cannot create folder" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    out = tmp_path / "out"
    out.mkdir()
    old = out / "labels.tif"
    old.write_bytes(b"previous result")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full)
    with pytest.raises(InputError, match="No space left on device"):
        io.write_labels(old, np.ones((8, 8), np.uint8))
    assert old.read_bytes() == b"previous result"
    assert sorted(p.name for p in out.iterdir()) == ["labels.tif"]


def test_a_stack_is_segmented_as_a_volume_from_cli(tmp_path):
    stack = (np.random.default_rng(0).random((4, 64, 64)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    proc = cli(
        "predict", tmp_path / "stack.tif", "--out", tmp_path / "o", "--model", model_path(LDA_NAME)
    )
    assert proc.returncode == 0, proc.stderr
    assert tifffile.imread(tmp_path / "o" / "stack_labels.tif").shape == (4, 64, 64)
    assert "voxel size is partly unknown" in proc.stderr


# -- kill -9 and resume ------------------------------------------------------------------
def test_kill_9_then_resume_reaches_the_uninterrupted_result(scene_dir, tmp_path):
    common = [
        "train",
        "--method",
        "unet",
        "--data-dir",
        scene_dir,
        "--steps",
        "150",
        "--tile",
        "32",
        "--width",
        "8",
        "--depth",
        "2",
        "--batch-size",
        "4",
        "--data-bar",
        "0",
        "--pixel-size",
        "0",
        "--checkpoint-every",
        "5",
        "--threads",
        "1",
        "--seed",
        "3",
    ]
    assert cli(*common, "--out", tmp_path / "full.safetensors").returncode == 0
    ckpt = tmp_path / "killed.ckpt.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "napari_rockseg.cli",
            *map(str, common),
            "--out",
            str(tmp_path / "killed.safetensors"),
            "--checkpoint",
            str(ckpt),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.exists() and checkpoint_info(ckpt)["step"] >= 10:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed.safetensors").exists()
    step = checkpoint_info(ckpt)["step"]
    assert 10 <= step < 150
    resumed = cli(
        *common, "--out", tmp_path / "resumed.safetensors", "--checkpoint", ckpt, "--resume", ckpt
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_file(tmp_path / "full.safetensors"), load_file(tmp_path / "resumed.safetensors")
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k


def test_corrupt_checkpoint_is_refused(tmp_path, scene_dir):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage" * 10)
    proc = cli(
        "train",
        "--method",
        "unet",
        "--data-dir",
        scene_dir,
        "--steps",
        "2",
        "--resume",
        bad,
        "--out",
        tmp_path / "m.safetensors",
        "--data-bar",
        "0",
    )
    assert proc.returncode == 2 and "cannot resume" in proc.stderr


# -- fuzzing ---------------------------------------------------------------------------
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(st.binary(min_size=0, max_size=2048))
def test_readers_on_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fz") / "x.tif"
    path.write_bytes(data)
    for read in (io.read_image, lambda p: io.read_labels(p, SHALE)):
        try:
            out = read(path)
        except RockSegError:
            continue
        arr = out.data if isinstance(out, SEMImage) else out
        assert isinstance(arr, np.ndarray) and arr.ndim == 2


@FUZZ
@given(
    st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.int32]),
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from([1, 3, 4]),
    st.sampled_from([None, "zlib", "lzw"]),
    st.integers(0, 2**31 - 1),
)
def test_readers_on_valid_looking_tiffs(tmp_path_factory, dtype, h, w, channels, compression, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    arr = (rng.random(shape) * 300 - 20).astype(dtype)
    path = tmp_path_factory.mktemp("fz") / "v.tif"
    tifffile.imwrite(
        path, arr, compression=compression, photometric="rgb" if channels in (3, 4) else None
    )
    for read in (io.read_image, lambda p: io.read_labels(p, SHALE)):
        try:
            out = read(path)
        except RockSegError:
            continue
        arr2 = out.data if isinstance(out, SEMImage) else out
        assert arr2.shape == (h, w)
        if isinstance(out, SEMImage) and arr2.dtype.kind == "f":
            assert np.isfinite(arr2).all()


@FUZZ
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda kids: (
            st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_scheme_parser_on_random_json(value):
    try:
        scheme = ClassScheme.from_dict(value)
    except SchemeError:
        return
    assert scheme.n_classes >= 1


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.text(min_size=0, max_size=6),
            st.one_of(st.text(max_size=8), st.lists(st.integers(-5, 300), min_size=0, max_size=4)),
        ),
        min_size=0,
        max_size=5,
    )
)
def test_scheme_parser_on_valid_looking_schemes(entries):
    data = {"classes": [{"name": n, "color": c} for n, c in entries], "rest": None}
    try:
        scheme = ClassScheme.from_dict(data)
    except SchemeError:
        return
    assert len(set(scheme.colors)) == scheme.n_classes


# -- one line, exit 2, nothing written, inputs untouched: every command ----------------------
LDA = "src/napari_rockseg/models/lda.safetensors"


def _with_meta(src, dst, change):
    """A copy of the bundle ``src`` whose metadata ``change(meta)`` has edited."""
    import json

    from safetensors.torch import save_file

    from napari_rockseg.engine.models import bundle

    meta, tensors = bundle.read_bundle(src)
    change(meta)
    save_file(tensors, str(dst), metadata={"rockseg": json.dumps(meta)})
    return dst


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """Inputs of the table below: a good image and labels, and bad files of every kind."""
    from napari_rockseg.engine.models import bundle
    from napari_rockseg.engine.models.ensemble import NetModel
    from napari_rockseg.engine.models.info import ModelInfo
    from napari_rockseg.engine.models.nets import UNet

    d = tmp_path_factory.mktemp("bad")
    image, labels = synthetic_scene(64, seed=5)
    tifffile.imwrite(d / "img.tif", image)
    tifffile.imwrite(d / "lab.tif", labels)
    tifffile.imwrite(d / "zero.tif", np.zeros_like(labels))
    (d / "garbage.tif").write_bytes(b"II*\x00" + b"\x07" * 100)
    (d / os.fsdecode(b"caf\xe9.tif")).write_bytes(b"not an image")
    net = bundle.save_model(NetModel(UNet(1, 4, 4, 2), ModelInfo()), d / "net.safetensors")

    def widen(m):
        m["config"]["net"]["width"] = 4096

    _with_meta(net, d / "wide.safetensors", widen)
    _with_meta(net, d / "deep.safetensors", lambda m: m["config"]["net"].update(depth=12))
    _with_meta(LDA, d / "nanpx.safetensors", lambda m: m["info"].update(pixel_size_nm=float("nan")))
    _with_meta(LDA, d / "negpx.safetensors", lambda m: m["info"].update(pixel_size_nm=-5))
    _with_meta(LDA, d / "strbar.safetensors", lambda m: m["info"].update(data_bar="bottom"))
    return d


def _table(d):
    odd = os.fsdecode(b"caf\xe9.tif")
    out = str(d / "out")
    pred = ["predict", str(d / "img.tif"), "--out", out, "--model", LDA]
    return {
        "predict --tile 7": [*pred, "--tile", "7"],
        "predict --batch-size 0": [*pred, "--batch-size", "0"],
        "predict --overlap above tile": [*pred, "--tile", "64", "--overlap", "64"],
        "predict --pixel-size inf": [*pred, "--pixel-size", "inf"],
        "predict --pixel-size 1e9": [*pred, "--pixel-size", "1e9"],
        "predict --tile 7.5": [*pred, "--tile", "7.5"],
        "predict missing input": ["predict", str(d / "nope.tif"), "--out", out, "--model", LDA],
        "predict garbage": ["predict", str(d / "garbage.tif"), "--out", out, "--model", LDA],
        "predict non-UTF-8 name": ["predict", str(d / odd), "--out", out, "--model", LDA],
        "predict model width 4096": [*pred[:-1], str(d / "wide.safetensors")],
        "predict model depth 12": [*pred[:-1], str(d / "deep.safetensors")],
        "predict model pixel size NaN": [*pred[:-1], str(d / "nanpx.safetensors")],
        "predict model pixel size -5": [*pred[:-1], str(d / "negpx.safetensors")],
        "predict model string data_bar": [*pred[:-1], str(d / "strbar.safetensors")],
        "convert model width 4096": [
            "convert",
            str(d / "wide.safetensors"),
            "--out",
            f"{out}/m.safetensors",
        ],
        "combine model depth 12": [
            "combine",
            str(d / "deep.safetensors"),
            "--out",
            f"{out}/m.safetensors",
        ],
        "evaluate all-zero truth": ["evaluate", str(d / "lab.tif"), str(d / "zero.tif")],
        "evaluate everything masked": [
            "evaluate",
            str(d / "lab.tif"),
            str(d / "lab.tif"),
            "--data-bar",
            "1000",
        ],
        "evaluate non-UTF-8 name": ["evaluate", str(d / odd), str(d / "lab.tif")],
        "analyze non-UTF-8 name": ["analyze", str(d / odd), "--out", f"{out}/r"],
    }


def _snapshot(d):
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


@pytest.mark.parametrize("case", list(_table(Path("."))))
def test_every_bad_case_is_one_line_exit_2_and_writes_nothing(case, bad_inputs, capsys):
    from napari_rockseg.cli import main

    before = _snapshot(bad_inputs)
    try:
        code = main(_table(bad_inputs)[case])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("rockseg: error:"), err
    assert not (bad_inputs / "out").exists()
    assert _snapshot(bad_inputs) == before


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to user nobody"
)
def test_an_unreadable_input_is_one_line_for_another_user(tmp_path):
    """Root reads every file, so the case runs as user nobody."""
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    probe = subprocess.run([*nobody, "-c", "import napari_rockseg"], capture_output=True)
    if probe.returncode != 0:  # e.g. a checkout in a folder only root may enter (mktemp -d)
        pytest.skip("user nobody cannot import this checkout")
    os.chmod(tmp_path, 0o777)
    image, labels = synthetic_scene(64)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    for name in ("img.tif", "lab.tif"):
        os.chmod(tmp_path / name, 0)
    out = str(tmp_path / "out")
    for args in (
        ["predict", "img.tif", "--out", out, "--model", os.path.abspath(LDA)],
        ["evaluate", "lab.tif", "lab.tif"],
    ):
        proc = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "napari_rockseg.cli",
                *args,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "Permission denied" in lines[0]
    assert not (tmp_path / "out").exists()


def test_an_unforeseen_os_error_is_one_line_with_the_way_to_the_traceback(monkeypatch, capsys):
    from napari_rockseg import cli

    def broken(args):
        raise PermissionError(13, "Permission denied", "/some/file")

    monkeypatch.setattr(cli.evaluate, "cmd_evaluate", broken)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _rebind(parser(), broken))
    assert cli.main(["evaluate", "a", "b"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PermissionError: Permission denied (/some/file)" in err[0]
    assert "--debug" in err[0]
    with pytest.raises(PermissionError):
        cli.main(["--debug", "evaluate", "a", "b"])


def _rebind(parser, func):
    parser._subparsers._group_actions[0].choices["evaluate"].set_defaults(func=func)
    return parser


def test_class_names_from_a_model_file_reach_the_terminal_clean(tmp_path, capsys):
    from napari_rockseg.cli import main

    def evil(m):
        m["info"]["scheme"]["classes"][0]["name"] = "grain\x1b[2J\nrm -rf"
        m["info"]["scheme"]["rest"] = None

    model = _with_meta(LDA, tmp_path / "evil.safetensors", evil)
    image, _ = synthetic_scene(64)
    tifffile.imwrite(tmp_path / "img.tif", image)
    assert (
        main(
            [
                "predict",
                str(tmp_path / "img.tif"),
                "--out",
                str(tmp_path / "o"),
                "--model",
                str(model),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "grain" in out and not any(ord(c) < 32 and c != "\n" for c in out), repr(out)
    starts = ("/", "grain", "organic", "pores", "clay")
    assert all(line.startswith(starts) for line in out.splitlines())
