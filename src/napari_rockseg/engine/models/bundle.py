"""Model files: one ``.safetensors`` file with the weights as tensors and a JSON
metadata entry (kind, architecture, class scheme, normalisation, training
pixel size, data-bar rule, provenance).  Loading never unpickles anything."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np
import torch

from ... import __version__
from ..errors import BundleError
from ..io import atomic_path
from .ensemble import Bag, Ensemble, NetModel
from .forest import PixelForest, check_forest
from .info import ModelInfo
from .lda import GreyLDA

FORMAT = 1
META_KEY = "rockseg"


def provenance(**settings) -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        **settings,
    }


#: prefix of a bag's forest arrays among its tensors
FOREST = "forest."


def _tensors_of(model) -> dict[str, torch.Tensor]:
    if isinstance(model, (GreyLDA, PixelForest)):
        return {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in model.tensors().items()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if getattr(model, "forest", None) is not None:
        tensors.update({FOREST + k: v for k, v in _tensors_of(model.forest).items()})
    return tensors


def _config_of(model) -> dict:
    return {} if isinstance(model, GreyLDA) else model.config()


def _as_half(name: str, v: torch.Tensor) -> torch.Tensor:
    """float16 copy of a floating-point weight; normalisation statistics and any
    tensor that float16 cannot hold (|x| > 65504 turns into inf) stay float32."""
    if not v.is_floating_point() or name.endswith(("running_mean", "running_var")):
        return v
    h = v.half()
    return h if torch.isfinite(h).all() else v


def save_model(model, path, half: bool = False) -> Path:
    """Write ``model`` (with its ``info``) as a safetensors bundle, atomically.
    ``half`` stores floating-point network weights as float16 (half the file;
    they are computed in float32 after loading)."""
    from safetensors.torch import save_file

    meta = {
        "format": FORMAT,
        "kind": model.kind,
        "config": _config_of(model),
        "info": model.info.to_dict(),
    }
    tensors = _tensors_of(model)
    if half and model.kind in ("unet", "ensemble", "bag"):
        tensors = {k: v if k.startswith(FOREST) else _as_half(k, v) for k, v in tensors.items()}
        meta["stored_dtype"] = "float16"
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
    return Path(path)


def _refuse_pickle(path: Path, head: bytes):
    if head[8:9] == b"{":  # safetensors: 8-byte header length, then a JSON header
        return
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise BundleError(
            f"{path} is a pickle-based file (torch.save / pickle); it is refused because loading "
            f"it "
            "could run code. Only .safetensors model bundles are loaded"
        )


def read_bundle(path):
    """(metadata dict, tensors dict) of a bundle, validated for shape only."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise BundleError(f"model file {path} does not exist")
    if path.is_dir():
        raise BundleError(f"{path} is a directory; give a .safetensors model file")
    with open(path, "rb") as fh:
        head = fh.read(16)
    _refuse_pickle(path, head)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BundleError(
            f"{path} is not a readable model bundle (corrupt or truncated?): {exc}"
        ) from None
    if raw is None:
        raise BundleError(f"{path} has no napari-rockseg metadata; it was not written by rockseg")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: its metadata is not valid JSON ({exc})") from None
    for key in ("format", "kind", "info"):
        if key not in meta:
            raise BundleError(f"{path}: metadata lacks {key!r}")
    if not isinstance(meta.get("config", {}), dict):
        raise BundleError(f"{path}: its metadata's config is not a mapping")
    if meta["format"] != FORMAT:
        raise BundleError(
            f"{path} has bundle format {meta['format']}; this version reads format {FORMAT}"
        )
    return meta, tensors


def load_model(path):
    """Load a model bundle; refuses missing, inconsistent or pickle files."""
    path = Path(path)
    meta, tensors = read_bundle(path)
    try:
        info = ModelInfo.from_dict(meta["info"])
    except Exception as exc:
        raise BundleError(f"{path}: invalid model information: {exc}") from None
    kind = meta["kind"]
    if kind == "lda":
        missing = {"coef", "intercept", "classes"} - set(tensors)
        if missing:
            raise BundleError(f"{path}: LDA bundle lacks {sorted(missing)}")
        model = GreyLDA.from_tensors({k: v.numpy() for k, v in tensors.items()})
        k = len(model.classes)
        if (
            model.coef.shape != (k, 1)
            or model.intercept.shape != (k,)
            or not set(model.classes.tolist()) <= set(info.scheme.labels)
        ):
            raise BundleError(f"{path}: LDA arrays do not match its class scheme")
        model.info = info
        return model
    if kind == "rf":
        return _forest(path, tensors, info, meta.get("config") or {})
    forest = None
    if kind == "bag" and "forest" in (meta.get("config") or {}):
        forest = _forest(
            path,
            {k[len(FOREST) :]: v for k, v in tensors.items() if k.startswith(FOREST)},
            info,
            meta["config"]["forest"],
        )
        tensors = {k: v for k, v in tensors.items() if not k.startswith(FOREST)}
    builders = {"unet": NetModel, "ensemble": Ensemble, "bag": Bag}
    if kind not in builders:
        raise BundleError(f"{path}: unknown model kind {kind!r}")
    # built on the meta device (no memory, no initialised weights; the file's tensors are
    # assigned to it below), checked against the file's tensors
    model = _check_architecture(path, builders[kind], meta.get("config") or {}, info, tensors)
    n_out = model.net.config["n_classes"] if kind == "unet" else model.n_classes
    if n_out != info.scheme.n_classes:
        raise BundleError(
            f"{path}: the network has {n_out} outputs but the class scheme "
            f"has {info.scheme.n_classes} classes"
        )
    tensors = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    floats = [v.reshape(-1) for v in tensors.values() if v.is_floating_point()]
    broken = []  # one check over all weights (a NaN or an infinity makes their float64 sum
    # non-finite); per tensor (600 calls) only to name the culprits
    if floats and not torch.isfinite(torch.cat(floats).sum(dtype=torch.float64)):
        broken = [
            k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()
        ]
    if broken:
        raise BundleError(
            f"{path}: non-finite weights in {', '.join(broken[:3])}"
            f"{' and more' if len(broken) > 3 else ''}"
        )
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        raise BundleError(
            f"{path}: weights do not fit the architecture: {' '.join(first[:3])}"
        ) from None
    if forest is not None:
        weight = meta["config"]["forest"].get("weight", 0.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
            raise BundleError(f"{path}: the forest's weight {weight} is not between 0 and 1")
        model.forest, model.forest_weight = forest, float(weight)
    model.eval()
    return model


#: limits of what a model file may describe: far above any trained model, far below what
#: would exhaust memory before the tensors are compared (a width of 256 at depth 8 is 6 GB)
LIMITS = {"width": 256, "depth": 8, "in_channels": 512, "n_classes": 255, "members": 64}
UPSAMPLING = ("bilinear", "transpose")


def _net_configs(kind: str, config: dict) -> list:
    if not isinstance(config, dict):
        raise TypeError("its config is not a JSON object")
    if kind == "unet":
        return [config.get("net")]
    if kind == "bag":
        members = config.get("members")
        if not isinstance(members, list) or not 1 <= len(members) <= LIMITS["members"]:
            n = len(members) if isinstance(members, list) else members
            raise ValueError(f"a bag of {n!r} members (1 to {LIMITS['members']} can be loaded)")
        return members
    return [config.get("binary"), config.get("multi")] + (
        [config["synth"]] if config.get("synth") is not None else []
    )


def _check_net_config(cfg) -> None:
    if not isinstance(cfg, dict) or set(cfg) - {*LIMITS, "up"}:
        raise ValueError(f"a network's config {str(cfg)[:80]!r} is not one of a U-Net")
    for key in ("width", "depth", "in_channels", "n_classes"):
        v = cfg.get(key, 1)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= LIMITS[key]:
            raise ValueError(f"a network's {key} is {v!r} (1 to {LIMITS[key]} can be loaded)")
    if cfg.get("up", "bilinear") not in UPSAMPLING:
        raise ValueError(f"a network's upsampling is {cfg.get('up')!r}, not one of {UPSAMPLING}")


def _check_architecture(path, builder, config: dict, info: ModelInfo, tensors: dict):
    """The metadata's networks, checked against limits and then built without memory (on
    torch's meta device) and compared with the file's tensors, before any real network is
    built: a file cannot make rockseg allocate more than the weights it holds.  Returns the
    model built on the meta device."""
    kind = builder.kind
    try:
        for cfg in _net_configs(kind, config):
            _check_net_config(cfg)
        with torch.device("meta"):
            built = builder.build(config, info)
        shapes = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    except Exception as exc:  # noqa: BLE001 - any failure of a described network is the file's
        raise BundleError(f"{path}: cannot build a {kind} from its metadata: {exc}") from None
    have = {k: tuple(v.shape) for k, v in tensors.items()}
    if shapes != have:
        need = sum(math.prod(s) for s in shapes.values()) * 4
        odd = sorted(set(shapes) ^ set(have)) or [k for k in shapes if shapes[k] != have[k]]
        raise BundleError(
            f"{path}: weights do not fit the architecture: its metadata describes a "
            f"{kind} of {need / 1e6:.3g} MB that differs from its weights (first: "
            f"{odd[0]}); the file is corrupt or was edited"
        )
    return built


def _forest(path, tensors: dict, info: ModelInfo, config: dict) -> PixelForest:
    """A random forest from its arrays, checked against each other, the class scheme and
    the features its ``sigma_max`` makes, before any pixel meets it."""
    need = {"left", "right", "feature", "threshold", "value", "roots", "depth"}
    if need - set(tensors):
        raise BundleError(f"{path}: forest arrays lack {sorted(need - set(tensors))}")
    try:
        sigma = config.get("sigma_max", 16.0) if isinstance(config, dict) else None
        sigma_max = check_forest(
            {k: v.numpy() for k, v in tensors.items()}, info.scheme.n_classes, sigma
        )
    except ValueError as exc:
        raise BundleError(f"{path}: forest arrays are inconsistent: the forest {exc}") from None
    return PixelForest(info, {k: v.numpy() for k, v in tensors.items()}, sigma_max)
