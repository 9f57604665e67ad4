"""Outputs never touch inputs or each other: result sets are written whole or not at all,
under a lock, and what a killed run left behind is cleaned by the next one."""

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_rockseg.cli import main
from napari_rockseg.engine.errors import InputError
from napari_rockseg.engine.io.write import STALE_SECONDS, clean_stale, result_set

ROOT = Path(__file__).resolve().parents[1]
LDA = ROOT / "src" / "napari_rockseg" / "models" / "lda.safetensors"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _image(path, seed=0, size=64):
    rng = np.random.default_rng(seed)
    tifffile.imwrite(path, (rng.random((size, size)) * 255).astype(np.uint8))
    return path


# -- the result-set helper -----------------------------------------------------------
def test_a_failed_set_leaves_the_earlier_one_and_no_temporary(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    with result_set([a, b]) as rs:
        rs.path(a).write_text("old a")
        rs.path(b).write_text("old b")
    with pytest.raises(RuntimeError), result_set([a, b], overwrite=True) as rs:
        rs.path(a).write_text("new a")
        raise RuntimeError("the run fails before b is written")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_existing_set_needs_overwrite_and_is_replaced_whole(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    b.write_text("earlier optional map")
    with pytest.raises(InputError, match="add --overwrite"), result_set([a, b]) as rs:
        rs.path(a).write_text("x")
    assert not a.exists() and b.read_text() == "earlier optional map"
    with result_set([a, b], overwrite=True) as rs:
        rs.path(a).write_text("new a")
    assert a.read_text() == "new a" and not b.exists()  # b belonged to the earlier set only


def test_a_failed_set_removes_the_folders_it_made(tmp_path):
    out = tmp_path / "x" / "y"
    with pytest.raises(KeyboardInterrupt), result_set([out / "a.txt"]) as rs:
        rs.path(out / "a.txt").write_text("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_live_lock_refuses_and_a_dead_one_is_taken_over(tmp_path):
    a = tmp_path / "a.txt"
    lock = tmp_path / ".a.txt.lock"
    lock.write_text(f"{os.getpid()} {os.uname().nodename}\n")
    with pytest.raises(InputError, match="another rockseg run"), result_set([a]):
        pass
    lock.write_text(f"{_dead_pid()} {os.uname().nodename}\n")
    with result_set([a]) as rs:
        rs.path(a).write_text("a")
    assert a.read_text() == "a" and not lock.exists()


def test_stale_temporaries_of_killed_runs_are_cleaned(tmp_path):
    dead = tmp_path / f".a_labels.tif.{_dead_pid()}-abcd1234.tif"
    alive = tmp_path / f".a_labels.tif.{os.getppid()}-abcd1234.tif"
    old = tmp_path / ".a.json.k2j4h_9a.json"  # an older version's name, without a process id
    young = tmp_path / ".b.json.k2j4h_9a.json"
    user = tmp_path / ".notes.txt"
    for p in (dead, alive, old, young, user):
        p.write_text("x")
    os.utime(old, (time.time() - 2 * STALE_SECONDS,) * 2)
    removed = clean_stale(tmp_path)
    assert sorted(removed) == sorted([dead, old])
    assert alive.exists() and young.exists() and user.exists()


_WRITER = """
import sys, time
from pathlib import Path
from napari_rockseg.engine.io.write import result_set
from napari_rockseg.engine.errors import InputError
out, me = Path(sys.argv[1]), sys.argv[2]
members = [out / f"{n}.txt" for n in ("labels", "overlay", "json")]
try:
    with result_set(members, overwrite=True) as rs:
        for m in members:
            rs.path(m).write_text(me)
            time.sleep(0.3)
except InputError as exc:
    print("refused", exc)
"""


def test_two_processes_into_one_folder_never_mix(tmp_path):
    for _ in range(3):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, str(tmp_path), who],
                stdout=subprocess.PIPE,
                text=True,
            )
            for who in ("A", "B")
        ]
        outs = [p.communicate(timeout=60)[0] for p in procs]
        texts = {(tmp_path / f"{n}.txt").read_text() for n in ("labels", "overlay", "json")}
        assert len(texts) == 1, texts  # one run's whole set, never a mixture
        assert sum("refused" in o for o in outs) <= 1
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- rockseg predict ------------------------------------------------------------------
def test_predict_refuses_an_output_that_is_an_input(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    _image(d / "s.tif")
    (d / "s_overlay.png").write_bytes(b"the user's own picture")
    assert main(["predict", str(d), "--out", str(d), "--model", str(LDA), "--quiet"]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert (d / "s_overlay.png").read_bytes() == b"the user's own picture"
    assert sorted(p.name for p in d.iterdir()) == ["s.tif", "s_overlay.png"]


def test_predict_refuses_two_inputs_with_one_stem(tmp_path, capsys):
    _image(tmp_path / "a.tif")
    (tmp_path / "a.png").write_bytes((tmp_path / "a.tif").read_bytes())
    out = tmp_path / "o"
    assert (
        main(
            [
                "predict",
                str(tmp_path / "a.tif"),
                str(tmp_path / "a.png"),
                "--out",
                str(out),
                "--model",
                str(LDA),
                "--quiet",
            ]
        )
        == 2
    )
    assert "same name stem" in capsys.readouterr().err and not out.exists()


def test_predict_replaces_a_result_set_only_with_overwrite_and_whole(tmp_path, capsys):
    img, out = _image(tmp_path / "a.tif"), tmp_path / "o"
    args = ["predict", str(img), "--out", str(out), "--model", str(LDA), "--quiet"]
    assert main([*args, "--probabilities"]) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "a_probabilities.tif" in first
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a_labels.tif", "a_overlay.png"]


def test_predict_that_fails_while_writing_keeps_the_earlier_set(tmp_path, monkeypatch, capsys):
    img, out = _image(tmp_path / "a.tif"), tmp_path / "o"
    args = ["predict", str(img), "--out", str(out), "--model", str(LDA), "--quiet", "--overwrite"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", full)  # the overlay, written after the labels
    assert main(args) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_predict_cleans_what_a_killed_run_left(tmp_path):
    img, out = _image(tmp_path / "a.tif"), tmp_path / "o"
    out.mkdir()
    left = out / f".a_labels.tif.{_dead_pid()}-x1y2z3w4.tif"
    left.write_bytes(b"half a TIFF")
    (out / ".a_labels.tif.lock").write_text(f"{_dead_pid()} {os.uname().nodename}\n")
    assert main(["predict", str(img), "--out", str(out), "--model", str(LDA), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a_labels.tif", "a_overlay.png"]


def test_predict_json_is_valid_and_no_folder_is_made_for_a_bad_input(tmp_path):
    bad, out = tmp_path / "bad.tif", tmp_path / "new" / "out"
    bad.write_bytes(b"not an image")
    assert main(["predict", str(bad), "--out", str(out), "--model", str(LDA), "--quiet"]) == 2
    assert not (tmp_path / "new").exists()
    img = _image(tmp_path / "a.tif")
    assert main(["predict", str(img), "--out", str(out), "--model", str(LDA), "--quiet"]) == 0
    json.loads((out / "a.json").read_text(), parse_constant=lambda c: pytest.fail(c))
