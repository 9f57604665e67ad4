"""engine/options: one source of defaults, ranges and help for training and prediction."""

import dataclasses
import subprocess
import sys

import pytest

from napari_rockseg.cli import build_parser, main
from napari_rockseg.engine import options
from napari_rockseg.engine.errors import InputError
from napari_rockseg.engine.training.config import TrainConfig

# (option, bad value as typed) of issue #32 item 11 and the impossible pixel sizes of item 8
BAD_TRAIN = [
    ("--batch-size", "0"),
    ("--tile", "7"),
    ("--width", "0"),
    ("--depth", "20"),
    ("--lr", "nan"),
    ("--lr", "inf"),
    ("--checkpoint-every", "0"),
    ("--steps", "0"),
    ("--steps", "-1"),
    ("--val-fraction", "1"),
    ("--val-fraction", "-1"),
    ("--pixel-size", "inf"),
    ("--pixel-size", "1e9"),
    ("--pixel-size", "1e-9"),
    ("--pixel-size", "nan"),
    ("--minutes", "0"),
    ("--members", "0"),
    ("--ema", "1"),
    ("--threads", "0"),
    ("--noise", "-1"),
    ("--patience", "-1"),
]


@pytest.mark.parametrize("flag,value", BAD_TRAIN)
def test_train_refuses_an_option_out_of_range_in_one_line(flag, value, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    code = main(["train", "--data-dir", str(tmp_path), "--out", str(out), flag, value])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and flag in err and "got" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "name,value",
    [
        ("batch_size", 0),
        ("tile", 7),
        ("overlap", -1),
        ("pixel_size", float("inf")),
        ("pixel_size", 1e9),
        ("pixel_size", 1e-9),
        ("pixel_size", float("nan")),
        ("pixel_size", 0),
        ("data_bar", -1),
        ("threads", 0),
        ("precision", "fp64"),
    ],
)
def test_prediction_options_refuse_impossible_values(name, value):
    with pytest.raises(InputError, match=options.PREDICT[name].flag):
        options.check_all({name: value}, options.PREDICT)


def test_an_option_message_names_the_flag_and_its_range():
    with pytest.raises(InputError) as err:
        options.TRAIN["batch_size"].check(0)
    assert str(err.value) == "--batch-size must be between 1 and 256, got 0"


def test_plausible_values_pass_unchanged():
    good = {
        "batch_size": 1,
        "tile": 16,
        "lr": 1e-4,
        "pixel_size": 2230.0,
        "val_fraction": 0.0,
        "steps": None,
        "method": "rf",
        "noise": 0.0,
    }
    assert options.check_all(good, options.TRAIN) == good
    assert options.PREDICT["pixel_size"].check(0.05) == 0.05
    assert options.PREDICT["pixel_size"].check(1e6) == 1e6


def test_train_config_defaults_are_the_options_defaults():
    config = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, opt in options.TRAIN.items():
        if name == "noise":  # the option in grey levels of an 8-bit image, the config normalised
            assert config["noise"] == pytest.approx(opt.default * options.GREY_LEVEL)
        elif name == "pixel_size":
            assert config["pixel_size_nm"] is opt.default is None
        elif name in config:
            assert config[name] == opt.default, name
    # the one default the three places used to disagree on (#27): one U-Net, no early stopping
    assert (config["method"], config["patience"], config["pixel_size_nm"]) == ("bag", 0, None)


def test_the_train_parser_is_built_from_the_options():
    args = build_parser().parse_args(["train", "--data-dir", ".", "--out", "m.safetensors"])
    assert {name: getattr(args, name) for name in options.TRAIN} == options.defaults(options.TRAIN)


def test_help_shows_ranges_and_units_without_importing_torch():
    code = (
        "import sys\nfrom napari_rockseg.cli import build_parser\n"
        "p = build_parser()\n"
        "sub = p._subparsers._group_actions[0].choices['train']\n"
        "print(sub.format_help())\nprint('torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = run.stdout
    assert out.strip().endswith("False")
    flat = " ".join(out.split())
    assert "between 1 and 256; default 8" in flat  # --batch-size
    assert "between 0.05 and 1e+06 nm" in flat  # --pixel-size


def test_option_names_match_the_engine_lists():
    from napari_rockseg.engine.inference.device import PRECISIONS
    from napari_rockseg.engine.training.losses import LOSSES

    assert options.LOSSES == LOSSES and options.PRECISIONS == PRECISIONS
