"""Nets, ensemble, training, prediction: small synthetic images, seconds each."""

import numpy as np
import pytest
import torch
from helpers import synthetic_scene
from helpers import tiny_config as small_config

from napari_rockseg.engine.analysis.metrics import per_class_iou
from napari_rockseg.engine.classes import ClassScheme
from napari_rockseg.engine.errors import BundleError, InputError
from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.segment import segment
from napari_rockseg.engine.inference.window import predict_proba
from napari_rockseg.engine.io import SEMImage
from napari_rockseg.engine.models import bundle
from napari_rockseg.engine.models.nets import UNet
from napari_rockseg.engine.training.average import WeightAverage
from napari_rockseg.engine.training.checkpoints import checkpoint_info
from napari_rockseg.engine.training.trainer import Trainer

SCHEME = ClassScheme(
    ("background", "blob", "pore"), ((200, 200, 200), (255, 0, 0), (0, 255, 0)), rest=0
)


def fit(config, image, labels, **kw):
    trainer = Trainer(config, [SEMImage(image)], [labels], SCHEME, **kw)
    return trainer, drain(trainer.run())


def stop_after(config, image, labels, step, stage=None):
    """A trainer stopped after ``step`` (of ``stage``) as a cancel does: by no longer iterating."""
    trainer = Trainer(config, [SEMImage(image)], [labels], SCHEME)
    gen = trainer.run()
    for ev in gen:
        if ev.step == step and stage in (None, ev.stage):
            break
    gen.close()
    return trainer


def assert_same_weights(a, b):
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), atol=1e-6), k


@pytest.fixture(scope="module")
def scene():
    torch.set_num_threads(2)
    return synthetic_scene(64, seed=1)


@pytest.fixture(scope="module")
def unet_model(scene):
    return fit(small_config(), *scene)[1]


def test_unet_overfits_rare_class(unet_model, scene):
    image, labels = scene
    assert (labels == 3).mean() < 0.06
    seg = drain(segment(unet_model, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu"))
    iou = per_class_iou(seg.labels, labels, 3)
    assert iou.min() > 0.9, iou


def test_ensemble_overfits_rare_class(scene):
    image, labels = scene
    _, model = fit(small_config(method="ensemble", steps=240), image, labels)
    assert model.kind == "ensemble" and model.synth is not None
    seg = drain(segment(model, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu"))
    iou = per_class_iou(seg.labels, labels, 3)
    assert iou.min() > 0.9, iou
    binary = model.fusion
    model.fusion = "binary"
    seg_b = drain(segment(model, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu"))
    model.fusion = binary
    assert per_class_iou(seg_b.labels, labels, 3).mean() > 0.8


def test_tiling_does_not_change_the_segmentation(unet_model):
    image, _ = synthetic_scene(150, seed=3)
    x = unet_model.info.normalize(image)
    whole = drain(predict_proba(unet_model, x, tile=160, overlap=0, device="cpu")).argmax(0)
    for tile, overlap in [(64, 32), (96, 48), (48, 16)]:
        tiled = drain(
            predict_proba(unet_model, x, tile=tile, overlap=overlap, device="cpu")
        ).argmax(0)
        assert (tiled != whole).mean() < 0.01, (tile, overlap)


def test_one_tile_image_same_tiled_and_untiled(unet_model, monkeypatch):
    monkeypatch.setenv("ROCKSEG_PRECISION", "fp32")  # the direct call below runs in float32
    image, _ = synthetic_scene(64, seed=4)
    x = unet_model.info.normalize(image)
    a = drain(predict_proba(unet_model, x, tile=64, overlap=0, device="cpu"))
    with torch.inference_mode():
        b = unet_model.probabilities(torch.from_numpy(x[None, None].astype(np.float32)))[0].numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_bundle_round_trip_gives_identical_predictions(tmp_path, scene, monkeypatch):
    monkeypatch.setenv("ROCKSEG_PRECISION", "fp32")  # storage rounding alone, not bfloat16's
    image, labels = scene
    _, model = fit(small_config(method="ensemble", steps=30), image, labels)
    path = bundle.save_model(model, tmp_path / "e.safetensors")
    loaded = bundle.load_model(path)
    x = model.info.normalize(image)
    a = drain(predict_proba(model, x, tile=32, overlap=8, device="cpu"))
    b = drain(predict_proba(loaded, x, tile=32, overlap=8, device="cpu"))
    assert np.array_equal(a, b)
    assert loaded.info.scheme == SCHEME
    assert loaded.info.provenance["settings"]["method"] == "ensemble"
    half = bundle.load_model(bundle.save_model(model, tmp_path / "h.safetensors", half=True))
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * path.stat().st_size
    c = drain(predict_proba(half, x, tile=32, overlap=8, device="cpu"))
    assert np.abs(c - a).max() < 1e-3  # float16 storage moves probabilities by rounding only
    # batch-norm variances beyond float16's range (65504) happen in long runs; they stay float32
    name = next(k for k in model.state_dict() if k.endswith("running_var"))
    model.state_dict()[name].fill_(2e5)
    big = bundle.load_model(bundle.save_model(model, tmp_path / "big.safetensors", half=True))
    assert torch.equal(big.state_dict()[name], model.state_dict()[name])
    # a bundle whose weights are not finite is refused, not silently used
    for bad in (float("inf"), float("nan")):
        model.state_dict()[name].fill_(bad)
        with pytest.raises(BundleError, match=f"non-finite weights in {name}"):
            bundle.load_model(bundle.save_model(model, tmp_path / "inf.safetensors"))


def test_sparse_scribbles_train_a_usable_model(scene):
    image, labels = scene
    scribbles = np.zeros_like(labels)
    rng = np.random.default_rng(0)
    for c in (1, 2, 3):  # a few dozen painted pixels per class, 1-2 % of the image
        ys, xs = np.nonzero(labels == c)
        pick = rng.choice(ys.size, size=min(25, ys.size), replace=False)
        scribbles[ys[pick], xs[pick]] = c
    assert (scribbles > 0).mean() < 0.02
    _, model = fit(small_config(steps=200), image, scribbles)
    seg = drain(segment(model, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu"))
    assert per_class_iou(seg.labels, labels, 3).mean() > 0.6


def test_cancel_keeps_best_so_far_and_resume_matches_uninterrupted(tmp_path, scene):
    image, labels = scene
    cfg = small_config(
        steps=40,
        eval_every=10,
        checkpoint=str(tmp_path / "c.pt"),
        checkpoint_every=10,
        val_fraction=0.0,
    )
    _, full = fit(cfg, image, labels)
    trainer = stop_after(cfg, image, labels, 20)
    assert trainer.result() is not None
    assert checkpoint_info(tmp_path / "c.pt")["step"] == 20
    _, resumed = fit(cfg, image, labels, resume=str(tmp_path / "c.pt"))
    assert_same_weights(full, resumed)


def test_weight_average_follows_its_formula_and_is_put_in_and_taken_out():
    net = UNet(1, 3, 4, 2)
    avg = WeightAverage([net], 0.9)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    for n in range(1, 5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        avg.update()
        d = min(0.9, (1 + n) / (10 + n))
        for k, v in net.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v if v.dtype.is_floating_point else v.clone()
    raw = {k: v.clone() for k, v in net.state_dict().items()}
    with avg.applied():
        for k, v in net.state_dict().items():
            assert torch.allclose(v, expected[k], atol=1e-6), k
            if v.dtype.is_floating_point and k.endswith("weight"):
                assert not torch.allclose(v, raw[k]), k
    for k, v in net.state_dict().items():
        assert torch.equal(v, raw[k]), k
    with pytest.raises(InputError, match="decay"):
        WeightAverage([net], 1.0)


def test_weight_average_is_what_training_keeps_and_survives_a_resume(tmp_path, scene):
    """``ema`` with no validation blocks: the model is the final moving average of the
    weights, not the last weights; a run stopped and resumed ends with the same average."""
    image, labels = scene
    cfg = small_config(
        steps=40, eval_every=10, ema=0.9, checkpoint=str(tmp_path / "c.pt"), checkpoint_every=10
    )
    trainer, full = fit(cfg, image, labels)
    assert not any("miou" in h for h in trainer.history)  # nothing held back to validate
    average = trainer.weight_average.shadow[0]
    for k, v in full.net.state_dict().items():
        assert torch.allclose(v, average[k].cpu()), k
    _, plain = fit(small_config(steps=40, eval_every=10), image, labels)
    differs = [
        not torch.allclose(a.float(), b.float(), atol=1e-4)
        for a, b in zip(full.state_dict().values(), plain.state_dict().values())
    ]
    assert any(differs)
    stop_after(cfg, image, labels, 20)
    _, resumed = fit(cfg, image, labels, resume=str(tmp_path / "c.pt"))
    assert_same_weights(full, resumed)
    # cancelled before the first validation: nothing checked was learned, nothing to keep (#32)
    early = stop_after(small_config(steps=40, eval_every=10, ema=0.9), image, labels, 5)
    assert early.result() is None
    with pytest.raises(InputError, match="--ema"):
        Trainer(small_config(ema=1.0), [SEMImage(image)], [labels], SCHEME)


def test_no_validation_blocks_when_the_fraction_is_zero():
    from napari_rockseg.engine.training.sampler import TrainImage, split_validation

    item = TrainImage(np.zeros((512, 512), np.float32), np.ones((512, 512), np.uint8))
    train_items, val = split_validation([item], 128, 0.0)
    assert val == [] and (train_items[0].labels > 0).all()
    train_items, val = split_validation([item], 128, 0.2)
    assert len(val) == 3 and (train_items[0].labels == 0).mean() == pytest.approx(3 / 16)


def test_unet_original_configuration_builds():
    net = UNet(3, 4, width=64, depth=4, up="bilinear")
    with torch.inference_mode():
        assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 4, 32, 32)
    net_t = UNet(1, 4, width=8, depth=3, up="transpose")
    assert net_t(torch.zeros(2, 1, 24, 24)).shape == (2, 4, 24, 24)


def test_blur_augmentation_smooths_some_crops_only_when_asked():
    """Sharpness augmentation: with ``blur`` about half the crops lose most of their
    pixel-scale texture; without it none does (noise off so only blur changes texture)."""
    from napari_rockseg.engine.training.sampler import TileSampler, TrainImage

    rng = np.random.default_rng(0)
    item = TrainImage(rng.normal(0, 1, (96, 96)).astype(np.float32), np.ones((96, 96), np.uint8))

    def texture(blur):
        sampler = TileSampler(
            [item], 32, 1, seed=1, balance=0.0, scale_jitter=0.0, noise=0.0, blur=blur
        )
        out = []
        for _ in range(60):
            img, _ = sampler.sample()
            out.append(np.abs(np.diff(img, axis=1)).mean() / img.std())
        return np.array(out)

    sharp, blurred = texture(0.0), texture(1.5)
    assert sharp.min() > 1.0  # white noise: neighbours differ by more than one std
    smoothed = blurred < 0.8 * sharp.min()
    assert 0.2 < smoothed.mean() < 0.8


def test_lower_magnification_augmentation_coarsens_crops_as_prediction_sees_them():
    """``lower_magnification``: the same field recorded 2x coarser and enlarged back: edges
    spread over about twice the pixels, the mean grey and the size stay, the pixel-scale
    texture is back to at least what prediction restores; the sampler applies it to the
    share of crops asked for, and to none by default."""
    from napari_rockseg.engine.condition import TEXTURE_TARGET, texture
    from napari_rockseg.engine.training.sampler import TileSampler, TrainImage, lower_magnification

    yy, xx = np.mgrid[:128, :128]
    disc = ((yy - 64) ** 2 + (xx - 64) ** 2 < 30**2).astype(np.float32)
    img = disc + np.random.default_rng(0).normal(0, 0.05, disc.shape).astype(np.float32)
    out = lower_magnification(img, 2.0, seed=3)
    assert out.shape == img.shape and out.dtype == np.float32
    assert abs(float(out.mean() - img.mean())) < 0.01
    row = np.convolve(out[64], np.ones(3) / 3, mode="same")  # the disc's edge along one row
    rise = lambda r: int(np.sum((r[20:50] > 0.15) & (r[20:50] < 0.85)))  # noqa: E731
    assert rise(row) > rise(np.convolve(img[64], np.ones(3) / 3, mode="same"))
    assert texture(out) >= 0.9 * TEXTURE_TARGET
    assert np.array_equal(out, lower_magnification(img, 2.0, seed=3))

    item = TrainImage(img, np.where(disc > 0, 2, 1).astype(np.uint8))
    plain = TileSampler([item], 64, 2, seed=1, scale_jitter=0.0, noise=0.0).sample()[0]
    default = TileSampler([item], 64, 2, seed=1, scale_jitter=0.0, noise=0.0, lowmag=0.0).sample()[
        0
    ]
    coarse = TileSampler([item], 64, 2, seed=1, scale_jitter=0.0, noise=0.0, lowmag=1.0).sample()[0]
    assert np.array_equal(plain, default) and not np.allclose(plain, coarse)


def test_contrast_augmentation_scales_each_crop_within_its_range():
    """``contrast``: crops of one scene (median 0, as the median normalisation gives) get
    their contrast scaled by at most exp(+-R), and the whole range is used; 0.2 is the
    default; a negative or absurd range is refused before training."""
    from napari_rockseg.engine.training.sampler import TileSampler, TrainImage

    yy, xx = np.mgrid[:96, :96]
    img = np.where((yy // 12 + xx // 12) % 2 == 0, 0.5, -0.5).astype(np.float32)  # a checkerboard
    item = TrainImage(img, np.where(img > 0, 2, 1).astype(np.uint8))

    def spreads(**kw):
        s = TileSampler([item], 48, 2, seed=4, scale_jitter=0.0, noise=0.0, **kw)
        return np.array([float(np.ptp(s.sample()[0])) for _ in range(200)])

    assert np.array_equal(spreads(), spreads(contrast=0.2))
    none, wide = spreads(contrast=0.0), spreads(contrast=0.7)
    assert np.allclose(none, 1.0, atol=1e-5)  # gamma keeps the range; no gain: no change
    assert wide.min() >= np.exp(-0.7) - 1e-5 and wide.max() <= np.exp(0.7) + 1e-5
    assert wide.min() < 0.6 and wide.max() > 1.7  # the range is used
    scene = synthetic_scene()
    with pytest.raises(InputError, match="--contrast"):
        Trainer(small_config(contrast=-0.5), [SEMImage(scene[0])], [scene[1]], SCHEME)


def test_noise_augmentation_adds_white_noise_up_to_its_sigma():
    """``noise``: each crop gets white noise of a standard deviation drawn up to ``noise``
    (normalised units); 0 adds none; outside 0-1 is refused before training."""
    from napari_rockseg.engine.training.sampler import TileSampler, TrainImage

    img = np.zeros((96, 96), np.float32)
    item = TrainImage(img, np.ones((96, 96), np.uint8))

    def sigmas(noise):
        s = TileSampler([item], 48, 1, seed=5, scale_jitter=0.0, noise=noise, contrast=0.0)
        return np.array([float(np.std(s.sample()[0])) for _ in range(200)])

    assert np.allclose(sigmas(0.0), 0.0)
    wide = sigmas(0.2)
    assert (
        wide.max() <= 0.2 * 1.1 and wide.max() > 0.18 and wide.min() < 0.02
    )  # up to sigma, range used
    scene = synthetic_scene()
    with pytest.raises(InputError, match="--noise"):
        Trainer(small_config(noise=1.5), [SEMImage(scene[0])], [scene[1]], SCHEME)


def test_bag_trains_its_members_in_turn_and_averages_them(tmp_path, scene):
    image, labels = scene
    _, model = fit(small_config(method="bag", members=2, steps=300), image, labels)
    assert model.kind == "bag" and len(model.members) == 2
    assert model.info.provenance["steps"] == {"net1": 150, "net2": 150}  # the budget split evenly
    seg = drain(segment(model, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu"))
    assert per_class_iou(seg.labels, labels, 3).min() > 0.9
    x = torch.from_numpy(model.info.normalize(image)[None, None])
    with torch.inference_mode():
        members = [torch.softmax(m(x), 1) for m in model.members]
        assert not torch.allclose(members[0], members[1], atol=1e-3)  # independently trained
        assert torch.allclose(model.probabilities(x), (members[0] + members[1]) / 2, atol=1e-6)
    loaded = bundle.load_model(bundle.save_model(model, tmp_path / "bag.safetensors", half=True))
    assert loaded.kind == "bag" and len(loaded.members) == 2
    with torch.inference_mode():
        assert (loaded.probabilities(x) - model.probabilities(x)).abs().max() < 1e-3


def test_bag_resumes_in_its_second_member_where_it_stopped(tmp_path, scene):
    image, labels = scene
    cfg = small_config(
        method="bag",
        members=2,
        steps=40,
        eval_every=10,
        checkpoint=str(tmp_path / "c.pt"),
        checkpoint_every=10,
    )
    _, full = fit(cfg, image, labels)
    stop_after(cfg, image, labels, 10, stage="net2")
    assert checkpoint_info(tmp_path / "c.pt") == {"method": "bag", "stage": 1, "step": 10}
    _, resumed = fit(cfg, image, labels, resume=str(tmp_path / "c.pt"))
    assert_same_weights(full, resumed)


def test_bagging_trained_models_checks_they_fit_together():
    from napari_rockseg.engine.models.ensemble import Bag, Ensemble, NetModel
    from napari_rockseg.engine.models.info import ModelInfo

    def unet(px=11.16, contrast=0.5):
        info = ModelInfo(SCHEME, px, contrast=contrast, provenance={"command": f"train {px}"})
        return NetModel(UNet(1, 3, 4, 2), info)

    a, b = unet(), unet()
    bag = Bag.of([a, Bag.of([b, unet()])])
    assert len(bag.members) == 3 and bag.info.pixel_size_nm == 11.16
    assert bag.info.provenance["members"][0] == {"command": "train 11.16"}
    assert bag.members[0] is not a.net  # copies: the bag does not share weights with its sources
    x = torch.randn(1, 1, 16, 16)
    with torch.inference_mode():
        a.eval(), bag.eval()
        assert torch.allclose(bag.members[0](x), a.net(x))
    with pytest.raises(InputError, match="pixel"):
        Bag.of([a, unet(px=5.0)])
    with pytest.raises(InputError, match="normalises"):
        Bag.of([a, unet(contrast=0.8)])
    with pytest.raises(InputError, match="ensemble model"):
        Bag.of([a, Ensemble.new(ModelInfo(SCHEME, 11.16), width=4, depth=2)])


def test_a_new_bag_blends_a_forest_fitted_on_its_images_and_fine_tuning_keeps_it(
    tmp_path, scene, monkeypatch
):
    """Probabilities of a bag with a forest: 0.8 x the members' mean + 0.2 x the forest's,
    at the model's scale, also after a float16 round trip; forest_weight 0 trains none;
    an impossible weight is refused before training; fine-tuning keeps the forest."""
    from napari_rockseg.engine.inference.segment import region_probabilities

    monkeypatch.setenv("ROCKSEG_PRECISION", "fp32")  # storage rounding alone, not bfloat16's
    image, labels = scene
    _, model = fit(small_config(method="bag", members=2, steps=40), image, labels)
    assert model.forest is not None and model.forest_weight == 0.2
    assert len(model.forest.arrays["roots"]) == 20  # a bag's forest: 20 trees unless --trees
    x = model.info.normalize(image)
    nets = drain(predict_proba(model, x, 64, 0, device="cpu"))
    forest = model.forest.probabilities(x)
    assert np.abs(nets - forest).max() > 0.05  # the two differ, so the blend is visible
    blended = drain(region_probabilities(model, image, 1.0, tile=64, overlap=0, device="cpu"))
    assert np.allclose(blended, 0.8 * nets + 0.2 * forest, atol=1e-5)
    loaded = bundle.load_model(bundle.save_model(model, tmp_path / "bag.safetensors", half=True))
    assert loaded.forest_weight == 0.2
    assert all(np.array_equal(loaded.forest.arrays[k], v) for k, v in model.forest.arrays.items())
    again = drain(region_probabilities(loaded, image, 1.0, tile=64, overlap=0, device="cpu"))
    assert np.abs(again - blended).max() < 1e-3
    assert (
        fit(small_config(method="bag", members=1, steps=4, forest_weight=0.0), image, labels)[
            1
        ].forest
        is None
    )
    with pytest.raises(InputError, match="forest's weight"):
        Trainer(small_config(method="bag", forest_weight=1.0), [SEMImage(image)], [labels], SCHEME)
    _, tuned = fit(small_config(method="bag", steps=4), image, labels, init=loaded)
    assert tuned.forest_weight == 0.2 and tuned.forest is not loaded.forest
    assert all(np.array_equal(tuned.forest.arrays[k], v) for k, v in loaded.forest.arrays.items())


def test_stored_forest_arrays_predict_as_scikit_learn_does():
    """The flat tree arrays a forest is saved as, walked with numpy, give scikit-learn's
    own probabilities (classes missing from the training labels get 0)."""
    from sklearn.ensemble import RandomForestClassifier

    from napari_rockseg.engine.models.forest import (
        PixelForest,
        forest_probabilities,
        forest_probabilities_torch,
    )

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3000, 5)).astype(np.float32)
    y = np.where(x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.5, 3, 1)  # classes 1 and 3 of 4
    rf = RandomForestClassifier(n_estimators=7, max_depth=9, random_state=0).fit(x, y)
    arrays = PixelForest._flatten(rf, 4)
    test = rng.normal(0, 1, (100_000, 5)).astype(np.float32)  # more rows than one chunk
    ours = forest_probabilities(arrays, test, workers=2)  # chunks on two threads
    assert np.array_equal(ours, forest_probabilities(arrays, test, workers=1))
    # the walk a GPU does, run here by torch on the CPU: the same probabilities, bit for bit
    assert np.array_equal(
        ours, forest_probabilities_torch(PixelForest(arrays=arrays).on_device("cpu"), test)
    )
    theirs = rf.predict_proba(test)
    assert np.allclose(ours[:, [0, 2]], theirs, atol=1e-5) and np.all(ours[:, [1, 3]] == 0)


def test_torch_features_match_scikit_image(test_pair):
    """The features a GPU computes (torch), run here on the CPU, against scikit-image's on a
    crop of the test image: the same to float32 rounding, in the same order."""
    from napari_rockseg.engine.io import read_image
    from napari_rockseg.engine.models.forest import pixel_features, pixel_features_torch

    x = (read_image(test_pair[0]).data[100:300, 200:500].astype(np.float32) - 128) / 40
    ref = pixel_features(x)
    ours = pixel_features_torch(x).numpy()
    assert ours.shape == ref.shape == (200, 300, 20)
    assert np.abs(ours - ref).max() < 1e-5 * max(1.0, np.abs(ref).max())
    assert np.abs(pixel_features_torch(x, sigma_max=4).numpy() - pixel_features(x, 4)).max() < 1e-5


def test_forest_on_the_gpu_path_gives_the_cpu_probabilities(test_pair, monkeypatch):
    """The forest's GPU path (torch features and walk, strip by strip), run here with torch on
    the CPU, gives the numpy path's probabilities up to one tree's vote on a few pixels."""
    import torch

    from napari_rockseg.engine.io import read_image
    from napari_rockseg.engine.models import forest as forest_module
    from napari_rockseg.engine.models.bundle import load_model
    from napari_rockseg.models import DEFAULT, model_path

    forest = load_model(model_path(DEFAULT)).forest
    x = (read_image(test_pair[0]).data[:600, :500].astype(np.float32) - 128) / 40
    cpu = forest.probabilities(x)
    monkeypatch.setattr(forest_module, "_is_gpu", lambda device: True)
    gpu_path = forest.probabilities(x, device=torch.device("cpu"))
    differ = np.abs(gpu_path - cpu).max(0) > 0
    assert (
        differ.mean() < 0.002 and np.abs(gpu_path - cpu).max() <= 1 / 20 + 1e-6
    )  # one of 20 trees


def test_forest_in_strips_equals_the_whole_image_at_once():
    """The forest computes its features strip by strip (flat memory on big blocks); with
    the Gaussians' reach as context the probabilities equal the whole image's."""
    from napari_rockseg.engine.models.forest import PixelForest

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (150, 90)).astype(np.float32)
    lab = np.where(x > 0.3, 2, 1).astype(np.uint8)
    forest = PixelForest(sigma_max=4.0).fit([x], [lab], n_trees=4, per_class=800)
    whole = forest.probabilities(x, rows=10_000)
    strips = forest.probabilities(x, rows=32)
    assert np.abs(strips - whole).max() < 1e-6
    assert whole.shape == (4, 150, 90) and np.allclose(whole.sum(0), 1, atol=1e-5)


def test_images_without_a_pixel_size_train_as_they_are(scene):
    """Images without a pixel size are not resampled, so a model of only such images claims
    none; beside images that record one, they are used as they are, with a note."""

    image, labels = scene
    cfg = small_config(method="rf", trees=2, pixel_size_nm=11.16)
    trainer = Trainer(cfg, [SEMImage(image), SEMImage(image)], [labels, labels], SCHEME)
    model = drain(trainer.run())
    assert model.info.pixel_size_nm is None
    assert any("record no pixel size" in n for n in trainer.notes)
    known = Trainer(cfg, [SEMImage(image, 11.16), SEMImage(image, 11.16)], [labels, labels], SCHEME)
    assert drain(known.run()).info.pixel_size_nm == 11.16 and not known.notes
    mixed = Trainer(cfg, [SEMImage(image, 11.16), SEMImage(image)], [labels, labels], SCHEME)
    assert mixed.config.pixel_size_nm == 11.16
    assert any("1 training image(s) (image) record no pixel size" in n for n in mixed.notes)


def test_fine_tuning_on_a_few_strokes_keeps_what_was_not_painted(unet_model, scene):
    """Fine-tuning on sparse labels trains on the starting model's sure predictions
    elsewhere (keep_confident), so a few strokes do not undo the rest of the segmentation."""
    image, labels = scene
    before = drain(
        segment(unet_model, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu")
    ).labels
    paint = np.zeros_like(labels)
    paint[labels == 3] = 3  # strokes: the rare class in the left half, a few pixels of the others
    paint[:, 32:] = 0
    for c in (1, 2):
        ys, xs = np.nonzero(labels == c)
        paint[ys[:20], xs[:20]] = c
    cfg = small_config(steps=60)
    trainer = Trainer(cfg, [SEMImage(image)], [paint], SCHEME, init=unet_model)
    filled = drain(trainer._with_kept_predictions(torch.device("cpu")))[0]
    assert np.array_equal(filled[paint > 0], paint[paint > 0])
    unpainted = paint == 0
    assert (filled[unpainted] > 0).mean() > 0.8  # the model is sure of most of the image
    sure = unpainted & (filled > 0)
    assert np.array_equal(filled[sure], before[sure])
    tuned = drain(trainer.run())
    after = drain(
        segment(tuned, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu")
    ).labels
    assert (after == before).mean() > 0.95
    # without it only the strokes are labelled
    plain = Trainer(
        small_config(keep_confident=0.0), [SEMImage(image)], [paint], SCHEME, init=unet_model
    )
    assert np.array_equal(drain(plain._with_kept_predictions(torch.device("cpu")))[0], paint)


def test_crops_centre_on_the_strokes_when_asked():
    """focus_share of the crops are centred on the focus pixels (the user's strokes), the
    rest are drawn as usual; without focus pixels nothing changes."""
    from napari_rockseg.engine.training.sampler import TileSampler, TrainImage

    labels = np.ones((256, 256), np.uint8)
    focus = np.zeros((256, 256), bool)
    focus[240:, 240:] = True  # a stroke in one corner
    item = TrainImage(np.zeros((256, 256), np.float32), labels)

    def corner_share(**kw):
        s = TileSampler(
            [item], 32, 1, seed=0, balance=0.0, scale_jitter=0.0, noise=0.0, augment=False, **kw
        )
        return np.mean([min(s._position(32)[1:]) >= 200 for _ in range(400)])

    assert corner_share() < 0.1
    assert corner_share(focus=[focus], focus_share=1.0) == 1.0
    assert 0.3 < corner_share(focus=[focus], focus_share=0.5) < 0.7
    assert corner_share(focus=[np.zeros_like(focus)], focus_share=1.0) < 0.1


def test_balance_sets_the_share_of_crops_centred_on_a_rare_class():
    """--balance: that share of the crops is centred on a class drawn uniformly (so a class
    covering 0.4 % of the image is in about half the crops at 1.0 with two classes), none at 0;
    values outside 0..1 are refused with a message naming the option."""
    from napari_rockseg.engine.training.sampler import TileSampler, TrainImage

    labels = np.ones((256, 256), np.uint8)
    labels[100:116, 100:116] = 2  # 0.4 % of the image
    item = TrainImage(np.zeros((256, 256), np.float32), labels)

    def rare_share(balance):
        s = TileSampler([item], 32, 2, seed=0, balance=balance, scale_jitter=0.0, augment=False)
        return np.mean([(s.sample()[1] == 2).any() for _ in range(400)])

    assert rare_share(0.0) < 0.1
    assert 0.4 < rare_share(1.0) < 0.6
    assert rare_share(0.0) < rare_share(0.5) < rare_share(1.0)
    with pytest.raises(InputError, match="--balance"):
        Trainer(
            small_config(balance=1.5),
            [SEMImage(np.zeros((64, 64), np.float32))],
            [np.ones((64, 64), np.uint8)],
            SCHEME,
        )


def test_training_steps_run_in_the_precision_asked(scene):
    """The same seed and steps: float32 twice gives the same weights, bfloat16 different
    ones (the autocast is in effect), and both learn the scene."""

    image, labels = scene
    a, b, c = (fit(small_config(precision=p), image, labels)[1] for p in ("fp32", "fp32", "bf16"))
    sa, sb, sc = (m.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    for m in (a, c):
        seg = drain(segment(m, SEMImage(image), data_bar=0, tile=64, overlap=0, device="cpu"))
        assert per_class_iou(seg.labels, labels, 3).min() > 0.9
    with pytest.raises(InputError, match="unknown precision"):
        fit(small_config(precision="half"), image, labels)


def test_a_model_that_learned_nothing_is_reported_with_what_to_try():
    """Two steps from scratch learn nothing: the trainer says so (#27) instead of 'ready'."""
    image, labels = synthetic_scene(128, seed=2)
    trainer = Trainer(
        small_config(steps=2, val_fraction=0.2, lr=1e-4), [SEMImage(image)], [labels], SCHEME
    )
    events = list(trainer.run())
    assert trainer.warnings
    assert any("not learned" in w or "random forest" in w for w in trainer.warnings)
    assert any("random-forest method (rf)" in w for w in trainer.warnings)
    assert events[-1].stage == "check" and "warning" in events[-1].message
    # a model that did learn gets no warning
    learned = Trainer(
        small_config(steps=150, val_fraction=0.2), [SEMImage(image)], [labels], SCHEME
    )
    drain(learned.run())
    assert learned.warnings == []
