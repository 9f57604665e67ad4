"""A bag's members run as one network of grouped convolutions give the members' mean."""

import numpy as np
import pytest
import torch

from napari_rockseg.engine.events import drain
from napari_rockseg.engine.inference.window import predict_proba
from napari_rockseg.engine.models import bundle
from napari_rockseg.engine.models.ensemble import Bag
from napari_rockseg.engine.models.info import ModelInfo
from napari_rockseg.engine.models.nets import FusedUNets, UNet
from napari_rockseg.models import default_model_path


def _trained_looking(net: UNet, seed: int) -> UNet:
    """Random batch-norm statistics and affine parameters, as training leaves them (fresh
    ones are the identity, which would hide a wrong folding)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                mod.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=g) + 0.5)
                mod.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return net.eval()


def _loop_mean(members, x):
    with torch.no_grad():
        return sum(torch.softmax(m(x), dim=1) for m in members) / len(members)


@pytest.mark.parametrize("up", ["bilinear", "transpose"])
@pytest.mark.parametrize("dense", [False, True])
def test_fused_unets_equal_the_members_mean(up, dense):
    torch.manual_seed(0)
    members = [_trained_looking(UNet(1, 3, 4, 2, up), i) for i in range(3)]
    x = torch.randn(2, 1, 36, 28)  # not a multiple of 4: the nearest-resize branch runs
    fused = FusedUNets(members, dense=dense).eval()
    with torch.no_grad():
        got = fused(x)
    want = _loop_mean(members, x)
    assert got.shape == want.shape == (2, 3, 36, 28)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, torch.softmax(members[0](x), 1), atol=1e-3)  # all members count


def test_fused_unets_refuse_different_configurations():
    with pytest.raises(ValueError, match="one configuration"):
        FusedUNets([UNet(1, 3, 4, 2), UNet(1, 3, 8, 2)])


def test_bag_of_mixed_members_fuses_each_configuration():
    torch.manual_seed(1)
    shapes = [(4, 2), (8, 3), (4, 2)]
    members = [_trained_looking(UNet(1, 4, w, d), i) for i, (w, d) in enumerate(shapes)]
    bag = Bag(members, ModelInfo()).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        got = bag.probabilities(x)
    assert len(bag._fused_nets()) == 2
    assert torch.allclose(got, _loop_mean(members, x), atol=1e-5)


def test_fused_form_follows_weight_changes_and_training_uses_members():
    torch.manual_seed(2)
    bag = Bag([_trained_looking(UNet(1, 4, 4, 2), i) for i in range(2)], ModelInfo()).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        before = bag.probabilities(x)
        bag.members[0].head.bias[0] += 3.0  # an in-place update, as an optimiser step makes
        after = bag.probabilities(x)
    assert not torch.allclose(before, after, atol=1e-3)
    assert torch.allclose(after, _loop_mean(bag.members, x), atol=1e-5)
    bag.train()
    out = bag.probabilities(x)
    assert out.requires_grad  # training runs the members themselves, gradients flow to them
    assert set(bag.state_dict()) == {f"members.{k}" for k in bag.members.state_dict()}


def test_shipped_default_fused_equals_unfused_and_keeps_labels():
    model = bundle.load_model(default_model_path())
    # any bag file loads ready to fuse: grouped on GPUs, the members' loop on CPUs
    assert model.kind == "bag" and model.fused == "auto"
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (64, 48)).astype(np.float32)
    model.fused = "grouped"
    fused = drain(predict_proba(model, x, tile=64, overlap=0, device="cpu"))
    model.fused = None
    loop = drain(predict_proba(model, x, tile=64, overlap=0, device="cpu"))
    # bfloat16 on CPUs that have it rounds the two orders of summation differently
    tol = 2e-2 if torch.cpu._is_avx512_bf16_supported() else 1e-4
    assert np.abs(fused - loop).max() < tol
    assert np.mean(fused.argmax(0) == loop.argmax(0)) > 0.99
    with torch.inference_mode():
        t = torch.from_numpy(x[None, None, :32, :32])
        model.fused = "grouped"
        a = model.probabilities(t)
        model.fused = None
        b = model.probabilities(t)
    assert torch.allclose(a, b, atol=1e-4)  # float32: equal within float rounding
