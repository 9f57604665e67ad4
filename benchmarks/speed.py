"""Speed benchmark: prediction and training throughput of our default model
against the original work's configuration, on the same machine in one run.

    python benchmarks/speed.py [--sizes 1 16 64] [--threads N] [--skip-options] [--device cuda]

Every measurement runs in its own subprocess so that its peak RSS is its own.
The original approach is timed with its network configuration and random
weights (timing does not depend on the weights): 6 U-Nets of base width 64,
depth 4, bilinear upsampling, 3 input channels (4 binary members, 1
multi-class member, the synthesizer on their 8 maps), each run on the whole
image in one forward pass.  Ours: the shipped default (a bag of U-Nets of
width 16), tiled and blended, at the model's pixel size (the input is not resampled,
so megapixels per second compare like with like).
With ``--device cuda`` both run on the GPU (after a warm-up prediction, so that CUDA's
start-up is not timed), the table adds the peak GPU memory and a row of ours on the
CPU's cores in the same run, and the "batch 8" option row replaces "contiguous".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


#: where the cases run (``--device``; passed to the case subprocesses in RS_DEVICE)
DEVICE = os.environ.get("RS_DEVICE", "cpu")


def _gpu_peak_mb() -> float | None:
    import torch

    if DEVICE != "cuda":
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def _warm_up(model) -> None:
    """One small prediction first on a GPU: CUDA's context and kernels load on first use."""
    if DEVICE == "cuda":
        from napari_rockseg.engine.events import drain
        from napari_rockseg.engine.inference.segment import segment
        from napari_rockseg.engine.io import SEMImage

        img = np.zeros((256, 256), np.uint8)
        drain(segment(model, SEMImage(img, model.info.pixel_size_nm), data_bar=0, device=DEVICE))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory now (Linux /proc; the peak elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def micrograph(h: int, w: int) -> np.ndarray:
    """An (h, w) uint8 image with a real micrograph's content: the packaged sample image
    (above its data bar) tiled with mirroring. Prediction's cost depends on content since
    it smooths pixel noise (an image of random values would be smoothed, a micrograph is
    not), so the networks' timings use this rather than noise."""
    from napari_rockseg.engine import io

    sample = Path(__file__).resolve().parents[1] / "src/napari_rockseg/data/shale_test.tif"
    grey = io.read_image(sample).data
    grey = grey[: grey.shape[0] - io.resolve_data_bar(grey, None)]
    reps = (-(-h // grey.shape[0]), -(-w // grey.shape[1]))
    return np.pad(
        grey,
        (
            (0, reps[0] * grey.shape[0] - grey.shape[0]),
            (0, reps[1] * grey.shape[1] - grey.shape[1]),
        ),
        mode="symmetric",
    )[:h, :w].astype(np.uint8)


def ours_model():
    from napari_rockseg.engine.models.bundle import load_model
    from napari_rockseg.engine.models.ensemble import Ensemble
    from napari_rockseg.engine.models.info import ModelInfo
    from napari_rockseg.models import DEFAULT, model_path

    path = model_path(DEFAULT)
    if path.exists():
        model = load_model(path)
        return model, f"shipped default: {describe(model)}"
    return Ensemble.new(
        ModelInfo(pixel_size_nm=11.16)
    ).eval(), "ensemble of 6 U-Nets, random weights"


def describe(model) -> str:
    if model.kind == "bag":
        forest = (
            f" + {len(model.forest.arrays['roots'])}-tree forest"
            if model.forest is not None
            else ""
        )
        return (
            f"bag of {len(model.members)} U-Nets, width {model.members[0].config['width']}{forest}"
        )
    if model.kind == "ensemble":
        return f"ensemble of 6 U-Nets, width {model.multi.config['width']}"
    return f"U-Net, width {model.net.config['width']}"


def original_nets():
    import torch

    from napari_rockseg.engine.models.nets import UNet

    torch.manual_seed(0)
    members = [UNet(3, 1, 64, 4, "bilinear").eval() for _ in range(4)] + [
        UNet(3, 4, 64, 4, "bilinear").eval()
    ]
    synth = UNet(8, 4, 64, 4, "bilinear").eval()
    return members, synth


def _side(mp: float) -> tuple[int, int]:
    side = int(np.sqrt(mp * 1e6 * 4 / 3) / 16) * 16
    return side * 3 // 4, side


def case_predict_ours(mp: float, tta: bool, option: str) -> dict:
    """``segment`` of the shipped default, end to end in memory; ``option``: none (as
    shipped: fused bag, channels-last, auto precision, auto tiles), loop (members one after
    another), fp32 / bf16, b8 (8 tiles a batch), cpu (on the CPU while DEVICE is a GPU),
    tiled (the CPU's 512-pixel tiles on a GPU instead of tiles from its free memory)."""
    import torch

    from napari_rockseg.engine.events import drain
    from napari_rockseg.engine.inference.device import autocast_dtype
    from napari_rockseg.engine.inference.segment import segment
    from napari_rockseg.engine.inference.window import BATCH, TILE
    from napari_rockseg.engine.io import SEMImage

    model, what = ours_model()
    if option == "loop":
        model.fused = None
    device = "cpu" if option == "cpu" else DEVICE
    tile, batch = (
        (TILE, 8) if option == "b8" else (TILE, BATCH) if option == "tiled" else (None, None)
    )
    if device == "cuda":
        _warm_up(model)
    h, w = _side(mp)
    image = SEMImage(micrograph(h, w), model.info.pixel_size_nm)
    if option in ("fp32", "bf16"):  # else the default, ROCKSEG_PRECISION=auto
        os.environ["ROCKSEG_PRECISION"] = option
    t0 = time.perf_counter()
    seg = drain(
        segment(model, image, data_bar=0, tta=tta, device=device, tile=tile, batch_size=batch)
    )
    dt = time.perf_counter() - t0
    if os.environ.get("RS_LABELS_OUT"):
        np.save(os.environ["RS_LABELS_OUT"], seg.labels)
    dtype = autocast_dtype(torch.device(device))
    return {
        "seconds": dt,
        "mp": h * w / 1e6,
        "rss_mb": peak_rss_mb(),
        "what": what,
        "precision": "float32" if dtype is None else str(dtype).removeprefix("torch."),
        "gpu_mb": _gpu_peak_mb() if device == "cuda" else None,
    }


def case_nets(mp: float) -> dict:
    """The networks alone (``predict_proba`` of the shipped default, median of 3 after a
    warm-up), fused and as a loop of members, channels-last and contiguous, in one process."""
    from napari_rockseg.engine.events import drain
    from napari_rockseg.engine.inference.window import predict_proba

    model, what = ours_model()
    x = model.info.normalize(micrograph(*_side(mp)), None)
    out = {"mp": x.size / 1e6, "what": what}
    runs = [
        ("fused", "grouped", True),
        ("loop", None, True),
        ("fused_contiguous", "grouped", False),
    ]
    if DEVICE == "cuda":
        runs.append(("dense", "dense", True))
    for key, fused, cl in (
        runs + runs[:2]
    ):  # fused and loop twice, interleaved: a shared machine drifts
        model.fused = fused
        drain(predict_proba(model, x, device=DEVICE, channels_last=cl))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            drain(predict_proba(model, x, device=DEVICE, channels_last=cl))
            times.append(time.perf_counter() - t0)
        out[key] = min(out.get(key, np.inf), float(np.median(times)))
    return out


def case_first_pixel() -> dict:
    """From this process's start (the kernel's clock) to the first batch of probabilities of
    the sample: interpreter, imports, model, image; then to the labels."""
    t_imp = time.perf_counter()
    from napari_rockseg.engine import io
    from napari_rockseg.engine.inference.segment import segment

    model, _ = ours_model()
    sample = HERE.parents[1] / "src/napari_rockseg/data/shale_test.tif"
    image = io.read_image(sample)
    gen = segment(model, image, device=DEVICE)
    first = None
    try:
        while True:
            ev = next(gen)
            if first is None and ev.stage == "predict" and ev.step >= 1:
                first = _since_start()
    except StopIteration:
        pass
    return {
        "first_pixel": first,
        "labels": _since_start(),
        "in_process": time.perf_counter() - t_imp,
        "rss_mb": peak_rss_mb(),
    }


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the platform's processor."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _since_start() -> float:
    """Seconds since this process started (Linux: /proc/self/stat's start time)."""
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
    return float(Path("/proc/uptime").read_text().split()[0]) - start


def case_cli(runs: int = 3) -> dict:
    """Whole-process ``rockseg predict`` of the sample, the median wall time of ``runs`` runs
    (each listed) and the children's peak RSS."""
    import tempfile

    sample = HERE.parents[1] / "src/napari_rockseg/data/shale_test.tif"
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            cmd = [
                sys.executable,
                "-m",
                "napari_rockseg.cli",
                "predict",
                str(sample),
                "--out",
                d,
                "--quiet",
                "--device",
                DEVICE,
            ]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
        if proc.returncode:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
    return {
        "seconds": float(np.median(times)),
        "runs": [round(t, 3) for t in times],
        "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def case_train_steps(steps: int) -> dict:
    """Seconds of ``steps`` training steps of the default U-Net (width 16, 8 crops of 128 x 128,
    AdamW, focal-dice), after one warm-up step: the bare network step that the trainer's
    steps are compared with."""
    import torch

    from napari_rockseg.engine.inference.device import autocast
    from napari_rockseg.engine.models.nets import UNet
    from napari_rockseg.engine.training.losses import focal_dice

    torch.manual_seed(0)
    net = UNet(1, 4, 16, 4)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x, y = torch.randn(8, 1, 128, 128), torch.randint(1, 5, (8, 128, 128))
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        with autocast(torch.device("cpu")):  # the trainer's precision (bfloat16 where native)
            loss = focal_dice(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}


def case_trainer_steps(steps: int) -> dict:
    """Seconds per step of the real trainer (``rockseg train --method unet`` defaults: the
    default U-Net, 8 crops of 128 x 128) on the bundled sample, from its progress events:
    sampling, augmentation, the step, the weight average and the validations every
    ``eval_every`` steps; set-up and the final checks left out."""
    from napari_rockseg.engine.classes import SHALE
    from napari_rockseg.engine.events import Progress
    from napari_rockseg.engine.training.config import TrainConfig
    from napari_rockseg.engine.training.data import load_training_pairs
    from napari_rockseg.engine.training.trainer import Trainer

    data = HERE.parents[1] / "src/napari_rockseg/data"
    pairs = load_training_pairs([data / "shale_test.tif"], [data / "shale_test_labels.tif"], SHALE)
    trainer = Trainer(TrainConfig(method="unet", steps=steps + 1, seed=0), *pairs, SHALE)
    events = trainer.run()
    stamps = [time.perf_counter() for e in events if isinstance(e, Progress) and e.stage == "unet"]
    stamps = stamps[-(steps + 1) :]  # the steps' events (the first one: a warm-up)
    return {"seconds_per_step": (stamps[-1] - stamps[0]) / steps, "rss_mb": peak_rss_mb()}


def case_breakdown(mp: float) -> dict:
    """Seconds of the parts of one prediction of the shipped default (median of 3 after a
    warm-up): the U-Nets on DEVICE, the forest's features on the CPU (2 threads, as
    shipped, and one per scale) and its tree walk with numpy, the forest on DEVICE
    (features and walk with torch, used on a GPU), and ``segment`` end to end with the
    forest on DEVICE and on the CPU."""
    import torch

    from napari_rockseg.engine.events import drain
    from napari_rockseg.engine.inference.device import resolve_device
    from napari_rockseg.engine.inference.segment import segment
    from napari_rockseg.engine.inference.window import predict_proba
    from napari_rockseg.engine.io import SEMImage
    from napari_rockseg.engine.models import forest as forest_module

    model, what = ours_model()
    dev = resolve_device(DEVICE)
    forest = model.forest
    side = int(np.sqrt(mp * 1e6 * 4 / 3) / 16) * 16
    img = micrograph(side * 3 // 4, side)
    x = model.info.normalize(img, None)
    features = forest_module.pixel_features
    spent = []

    def timed(*a, **k):  # the features' share of the forest's time
        t0 = time.perf_counter()
        out = features(*a, **k)
        spent.append(time.perf_counter() - t0)
        return out

    def median(fn, reps=3):
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    def features_with(workers):  # the forest module's features, timed, with ``workers`` threads
        forest_module.pixel_features = lambda x, s=16.0, *_, **__: timed(x, s, workers)
        spent.clear()
        total = median(lambda: forest.probabilities(x, device=torch.device("cpu")))
        return sum(
            spent[len(spent) // 4 :]
        ) / 3, total  # per call (one per strip), warm-up left out

    out = {"mp": img.size / 1e6, "what": what}
    out["nets"] = median(lambda: drain(predict_proba(model, x, device=dev)))
    n_scales = int(np.log2(forest.sigma_max)) + 1
    out["features_2"], cpu_forest = features_with(2)
    out["features_all"], _ = features_with(min(torch.get_num_threads(), n_scales))
    out["walk_cpu"] = cpu_forest - out["features_2"]
    forest_module.pixel_features = features
    out["forest_device"] = median(lambda: forest.probabilities(x, device=dev))
    image = SEMImage(img, model.info.pixel_size_nm)
    out["segment"] = median(lambda: drain(segment(model, image, data_bar=0, device=DEVICE)))
    blend = type(model).blend
    type(model).blend = lambda self, p, x, device=None: blend(self, p, x, torch.device("cpu"))
    out["segment_forest_cpu"] = median(
        lambda: drain(segment(model, image, data_bar=0, device=DEVICE))
    )
    type(model).blend = blend
    out["n_scales"] = n_scales
    return out


def case_predict_stream(mp: float) -> dict:
    """Block-by-block prediction of a tiled TIFF on disk (the huge-image path)."""
    import tempfile

    import tifffile

    from napari_rockseg.engine.inference.stream import segment_to_file
    from napari_rockseg.engine.io import open_lazy

    model, what = ours_model()
    side = int(np.sqrt(mp * 1e6 * 4 / 3) / 256) * 256
    h, w = side * 3 // 4, side
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "big.tif"
        tile = micrograph(256, 256)

        def tiles():
            for _ in range(-(-h // 256) * -(-w // 256)):
                yield tile

        tifffile.imwrite(
            src, tiles(), shape=(h, w), dtype=np.uint8, tile=(256, 256), compression="zlib"
        )
        rss_before = peak_rss_mb()
        image = open_lazy(src)
        image.pixel_size_nm = model.info.pixel_size_nm
        _warm_up(model)
        t0 = time.perf_counter()
        trace = []  # (fraction of blocks done, resident MB): flat when nothing accumulates
        gen = segment_to_file(model, image, Path(d) / "labels.tif", data_bar=0, device=DEVICE)
        try:
            while True:
                ev = next(gen)
                trace.append((ev.step / ev.total, current_rss_mb()))
        except StopIteration:
            pass
        dt = time.perf_counter() - t0
    at = {q: next((mb for f, mb in trace if f >= q), trace[-1][1]) for q in (0.25, 0.5, 1.0)}
    return {
        "seconds": dt,
        "mp": h * w / 1e6,
        "rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
        "rss_at": at,
        "blocks": len(trace),
        "what": what,
        "gpu_mb": _gpu_peak_mb(),
    }


def case_predict_original(mp: float) -> dict:
    import torch

    members, synth = original_nets()
    side = int(np.sqrt(mp * 1e6 * 4 / 3) / 16) * 16
    h, w = side * 3 // 4, side

    def run(x):
        with torch.inference_mode():
            maps = [torch.sigmoid(m(x)) for m in members[:4]] + [torch.softmax(members[4](x), 1)]
            return synth(torch.cat(maps, 1)).argmax(1).cpu()  # .cpu() waits for the GPU

    for net in (*members, synth):
        net.to(DEVICE)
    if DEVICE == "cuda":
        run(torch.rand(1, 3, 256, 256, device=DEVICE))
    x = torch.rand(1, 3, h, w)
    t0 = time.perf_counter()
    out = run(x.to(DEVICE))
    dt = time.perf_counter() - t0
    del out
    return {"seconds": dt, "mp": h * w / 1e6, "rss_mb": peak_rss_mb(), "gpu_mb": _gpu_peak_mb()}


def case_train_ours(steps: int) -> dict:
    """Members-stage steps: 4 binary + 1 multi-class U-Net of width 16 on 8 tiles of 128 x 128."""
    import torch

    from napari_rockseg.engine.models.ensemble import Ensemble
    from napari_rockseg.engine.models.info import ModelInfo
    from napari_rockseg.engine.training.losses import binary_focal_dice, focal_dice

    model = Ensemble.new(ModelInfo())
    nets = [*model.binaries, model.multi]
    opt = torch.optim.AdamW([p for n in nets for p in n.parameters()], lr=1e-3)
    x = torch.randn(8, 1, 128, 128)
    y = torch.randint(1, 5, (8, 128, 128))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = sum(binary_focal_dice(b(x), y == c + 1, y > 0) for c, b in enumerate(model.binaries))
        loss = loss + focal_dice(model.multi(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return {"seconds_per_step": float(np.median(times)), "nets": 5, "rss_mb": peak_rss_mb()}


def case_train_original(steps: int) -> dict:
    """Original members: U-Nets of width 64, 3 channels, 8 tiles of 128 x 128, trained one
    after another."""
    import torch

    from napari_rockseg.engine.models.nets import UNet
    from napari_rockseg.engine.training.losses import binary_focal_dice

    net = UNet(3, 1, 64, 4, "bilinear")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(8, 3, 128, 128)
    y = torch.rand(8, 128, 128) > 0.9
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = binary_focal_dice(net(x), y, torch.ones_like(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    # the original trains its 5 members one after another: 5 such steps per step of ours
    return {"seconds_per_step": 5 * float(np.median(times)), "nets": 5, "rss_mb": peak_rss_mb()}


def run_case(args_list, threads, labels_out=None, env_extra=None) -> dict:
    env = dict(os.environ, RS_DEVICE=DEVICE, **(env_extra or {}))
    if labels_out:
        env["RS_LABELS_OUT"] = str(labels_out)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run(
        [sys.executable, str(HERE), "--case", *map(str, args_list)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    global DEVICE
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes", type=float, nargs="+", default=[1, 16, 64], help="megapixels (streaming path)"
    )
    p.add_argument("--threads", type=int)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--skip-options", action="store_true")
    p.add_argument(
        "--parts",
        nargs="+",
        default=["predict", "train", "stream"],
        choices=["predict", "train", "stream", "breakdown"],
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=DEVICE,
        help="where prediction runs (training rows always run on the CPU)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=HERE.parent / "results",
        help="folder of speed_<device>.md and .json",
    )
    p.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    DEVICE = args.device
    if args.case:
        return _run_case_here(args.case)

    import torch

    head = (
        f"machine: {_cpu_name()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, threads {args.threads or torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f} at the start"
    )
    if DEVICE == "cuda":
        head += f"; prediction on {torch.cuda.get_device_name(0)}"
    _say(head + "\n")
    tables = {
        "predict": predict_table,
        "train": train_table,
        "stream": stream_table,
        "breakdown": breakdown_table,
    }
    for part in args.parts:
        RESULTS[part] = tables[part](args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"speed_{DEVICE}.md").write_text("\n".join(LINES) + "\n")
    (args.out / f"speed_{DEVICE}.json").write_text(
        json.dumps({"header": head, **RESULTS}, indent=1) + "\n"
    )
    return 0


#: the tables as printed (written to speed_<device>.md) and their numbers (.json)
LINES: list[str] = []
RESULTS: dict = {}


def _say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def _run_case_here(case) -> int:
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    name, *rest = case
    fn = {
        "ours": lambda: case_predict_ours(float(rest[0]), rest[1] == "1", rest[2]),
        "nets": lambda: case_nets(float(rest[0])),
        "first_pixel": case_first_pixel,
        "cli": case_cli,
        "train_steps": lambda: case_train_steps(int(rest[0])),
        "trainer_steps": lambda: case_trainer_steps(int(rest[0])),
        "stream": lambda: case_predict_stream(float(rest[0])),
        "breakdown": lambda: case_breakdown(float(rest[0])),
        "original": lambda: case_predict_original(float(rest[0])),
        "train_ours": lambda: case_train_ours(int(rest[0])),
        "train_original": lambda: case_train_original(int(rest[0])),
    }[name]
    print(json.dumps(fn()))
    return 0


def predict_table(args) -> dict:
    """The image is the sample micrograph tiled to 1024 x 768 at the model's pixel size
    (:func:`micrograph`); "same labels" compares each option with the default run's labels.
    The whole-process row runs ``rockseg predict`` on the sample itself (1024 x 768 with its
    data bar, resampled to the model's pixel size)."""
    import tempfile

    gpu = DEVICE == "cuda"
    mp = 0.786432
    _say(f"## Prediction of a 1024 x 768 image{' on the GPU' if gpu else ''}\n")
    _say(
        f"| approach | seconds | megapixels/s | peak RSS (MB) |{' peak GPU (MB) |' if gpu else ''} "
        "speed-up vs original | same labels as default |"
    )
    _say(f"|---|---|---|---|{'---|' if gpu else ''}---|---|")
    tmp = Path(tempfile.mkdtemp())
    orig = run_case(["original", mp], args.threads)
    rows = [("original: 6 U-Nets, width 64, whole image, float32 (network only)", orig, None)]
    ours = run_case(["ours", mp, 0, "none"], args.threads, tmp / "default.npy")
    rows.append(
        (
            f"ours: {ours.get('what', '')}, as shipped (fused on GPUs only), "
            f"{ours.get('precision', '')} (`segment`)",
            ours,
            "default",
        )
    )
    rows.append(
        (
            "ours, members one after another (forced)",
            run_case(["ours", mp, 0, "loop"], args.threads, tmp / "loop.npy"),
            "loop",
        )
    )
    cli = run_case(["cli"], args.threads)
    rows.append(
        (
            "ours: `rockseg predict` on the sample, whole process (median of 3 runs)",
            {**cli, "mp": mp},
            None,
        )
    )
    rows.append(
        (
            "ours + TTA (8 views)",
            run_case(["ours", mp, 1, "none"], args.threads, tmp / "tta.npy"),
            "tta",
        )
    )
    if not args.skip_options:
        options = (
            [
                ("8 tiles per batch", "b8"),
                ("512-pixel tiles, 2 a batch (the CPU's)", "tiled"),
                (f"on the CPU ({args.threads or os.cpu_count()} threads), same run", "cpu"),
            ]
            if gpu
            else [("float32 (`--precision fp32`)", "fp32")]
        )
        for name, key in options:
            rows.append(
                (
                    f"ours, {name}",
                    run_case(["ours", mp, 0, key], args.threads, tmp / f"{key}.npy"),
                    key,
                )
            )
    base = np.load(tmp / "default.npy") if (tmp / "default.npy").exists() else None
    for name, r, key in rows:
        if "error" in r:
            _say(f"| {name} | failed: {r['error']} | | | | |")
            continue
        ratio = f"{orig['seconds'] / r['seconds']:.1f}x" if "seconds" in orig else "n/a"
        same = ""
        if key and base is not None and (tmp / f"{key}.npy").exists():
            same = f"{100 * (np.load(tmp / f'{key}.npy') == base).mean():.2f} %"
        mem = f" {r['gpu_mb']:.0f} |" if gpu and r.get("gpu_mb") else (" |" if gpu else "")
        _say(
            f"| {name} | {r['seconds']:.2f} | {r['mp'] / r['seconds']:.3f} | {r['rss_mb']:.0f} "
            f"|{mem} "
            f"{ratio} | {same} |"
        )
    nets, first = run_case(["nets", mp], args.threads), run_case(["first_pixel"], args.threads)
    _say("\n| the networks alone (`predict_proba`, median of 3) | seconds |\n|---|---|")
    for key in ("fused", "loop", "fused_contiguous", "dense"):
        if key in nets:
            _say(f"| {key.replace('_', ', ')} | {nets[key]:.3f} |")
    if "fused" in nets and "loop" in nets:
        _say(f"| fused bag speed-up over the loop | {nets['loop'] / nets['fused']:.2f}x |")
    if "first_pixel" in first:
        _say(
            f"| time to first pixel (process start to first batch of probabilities) | "
            f"{first['first_pixel']:.2f} |"
        )
        _say(f"| process start to labels (in-process `segment`) | {first['labels']:.2f} |")
    return {"rows": [{"name": n, **r} for n, r, _ in rows], "nets": nets, "first_pixel": first}


def train_table(args):
    print("\n## Training throughput (one step of the 5 ensemble members, 8 tiles of 128 x 128)\n")
    print("| approach | seconds per step | peak RSS (MB) | speed-up |")
    print("|---|---|---|---|")
    to = run_case(["train_original", args.train_steps], args.threads)
    tu = run_case(["train_ours", args.train_steps], args.threads)
    for name, r in (("original: width 64, 3 channels", to), ("ours: width 16, 1 channel", tu)):
        print(
            f"| {name} | {r['seconds_per_step']:.2f} | {r['rss_mb']:.0f} | "
            f"{to['seconds_per_step'] / r['seconds_per_step']:.1f}x |"
        )
    steps = max(20, 4 * args.train_steps)
    bare = run_case(["train_steps", steps], args.threads)
    real = run_case(["trainer_steps", steps], args.threads)
    per_bare, per_real = bare["seconds"] / steps, real["seconds_per_step"]
    print(f"\n## The trainer against the bare network step (default U-Net, {steps} steps)\n")
    print("| what | seconds per step | steps per second |\n|---|---|---|")
    bare_row = "bare step: forward, backward, AdamW on one batch"
    print(f"| {bare_row} | {per_bare:.3f} | {1 / per_bare:.2f} |")
    print(
        f"| `rockseg train --method unet` (sampling, augmentation, validation, average) | "
        f"{per_real:.3f} | {1 / per_real:.2f} |"
    )
    print(f"| trainer overhead | {per_real / per_bare:.2f}x the bare step | |")


def breakdown_table(args):
    r = run_case(["breakdown", 0.786432], args.threads)
    if "error" in r:
        print(f"\nbreakdown failed: {r['error']}")
        return
    threads = args.threads or os.cpu_count()
    print(
        f"\n## Where the time of one prediction goes ({r['mp']:.2f} MP at the model's scale, "
        f"{r['what']}; median of 3)\n"
    )
    print("| part | seconds |")
    print("|---|---|")
    rows = [
        (f"the U-Nets, tiles on {DEVICE}", "nets"),
        ("forest features on the CPU, 2 threads (as shipped)", "features_2"),
        (
            f"forest features on the CPU, {min(threads, r['n_scales'])} threads (one per scale)",
            "features_all",
        ),
        (f"forest tree walk, numpy on the CPU ({threads} threads)", "walk_cpu"),
        (f"forest on {DEVICE}: features and tree walk with torch", "forest_device"),
        (f"`segment` end to end, forest on {DEVICE}", "segment"),
        ("`segment` end to end, forest on the CPU", "segment_forest_cpu"),
    ]
    if DEVICE == "cpu":  # the forest is scikit-image's and numpy's on the CPU
        rows = [row for row in rows if row[1] not in ("forest_device", "segment")]
    for name, key in rows:
        print(f"| {name} | {r[key]:.3f} |")


def stream_table(args):
    on = " on the GPU" if DEVICE == "cuda" else ""
    print(
        f"\n## Memory and time against image size (block-by-block path, tiled TIFF in and "
        f"out{on})\n"
    )
    gpu = DEVICE == "cuda"
    gpu_col = " peak GPU (MB) |" if gpu else ""
    print(
        "| megapixels | blocks | seconds | seconds per megapixel | peak RSS (MB) "
        f"| resident MB after 25 % / 50 % / 100 % of the blocks |{gpu_col}"
    )
    print(f"|---|---|---|---|---|---|{'---|' if gpu else ''}")
    for mp in args.sizes:
        r = run_case(["stream", mp], args.threads)
        if "error" in r:
            print(f"| {mp:g} | failed: {r['error']} | | | | |")
            continue
        at = " / ".join(f"{v:.0f}" for v in r["rss_at"].values())
        mem = f" {r['gpu_mb']:.0f} |" if gpu else ""
        print(
            f"| {r['mp']:.1f} | {r['blocks']} | {r['seconds']:.1f} "
            f"| {r['seconds'] / r['mp']:.2f} | {r['rss_mb']:.0f} | {at} |{mem}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
