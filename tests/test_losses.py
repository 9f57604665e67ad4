import math

import numpy as np
import pytest
import torch

from napari_rockseg.engine.training import losses


def test_binary_focal_hand_value():
    # one positive pixel with p = sigmoid(0) = 0.5: -alpha (1-0.5)^2 log 0.5
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[True, False]]])
    valid = torch.tensor([[[True, False]]])
    got = losses.binary_focal(logits, target, valid, alpha=0.25, gamma=2.0)
    assert got.item() == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-5)


def test_binary_dice_hand_value():
    logits = torch.tensor([[[[10.0, -10.0, 10.0]]]])  # p ~ 1, 0, 1
    target = torch.tensor([[[True, False, False]]])
    valid = torch.ones(1, 1, 3, dtype=torch.bool)
    # 2*1 / (2 + 1) -> loss 1/3
    assert losses.binary_dice(logits, target, valid).item() == pytest.approx(1 / 3, abs=1e-3)


def test_multiclass_focal_and_ce_hand_values():
    logits = torch.zeros(1, 2, 1, 2)  # p = 0.5 for both classes
    labels = torch.tensor([[[1, 0]]])  # second pixel unlabelled
    assert losses.cross_entropy(logits, labels).item() == pytest.approx(math.log(2), rel=1e-5)
    assert losses.focal(logits, labels, gamma=2.0).item() == pytest.approx(
        0.25 * math.log(2), rel=1e-5
    )
    assert losses.focal(logits, labels, alpha=[0.3, 1.0], gamma=0.0).item() == pytest.approx(
        0.3 * math.log(2)
    )


def test_soft_dice_hand_value():
    logits = torch.tensor([[[[10.0, 10.0]], [[-10.0, -10.0]]]])  # predicts class 1 everywhere
    labels = torch.tensor([[[1, 2]]])
    # class 1: 2*1/(2+1) = 2/3 -> 1/3; class 2: 0/(0+1) -> 1; mean 2/3
    assert losses.soft_dice(logits, labels).item() == pytest.approx(2 / 3, abs=1e-3)


def test_lovasz_softmax_is_one_minus_iou_on_hard_predictions():
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 4, (2, 16, 16)))  # 0 = unlabelled
    labels[0, 0, 0] = 3  # class 3 present
    pred = torch.from_numpy(rng.integers(1, 4, (2, 16, 16)))
    logits = 50.0 * torch.nn.functional.one_hot(pred - 1, 3).permute(0, 3, 1, 2).float()
    lab, prd = labels.numpy(), pred.numpy()
    valid = lab > 0
    ious = [
        ((lab == c) & (prd == c) & valid).sum() / (((lab == c) | (prd == c)) & valid).sum()
        for c in (1, 2, 3)
    ]
    assert losses.lovasz_softmax(logits, labels).item() == pytest.approx(
        1 - np.mean(ious), abs=1e-4
    )
    # a class absent from the labels is left out of the mean, as in soft_dice
    labels2 = torch.where(labels == 3, torch.ones_like(labels), labels)
    lab2 = labels2.numpy()
    ious2 = [
        ((lab2 == c) & (prd == c) & valid).sum() / (((lab2 == c) | (prd == c)) & valid).sum()
        for c in (1, 2)
    ]
    assert losses.lovasz_softmax(logits, labels2).item() == pytest.approx(
        1 - np.mean(ious2), abs=1e-4
    )
    # from a uniform start, the gradient raises the true class's logit wherever it is known
    soft = torch.zeros(2, 3, 16, 16, requires_grad=True)
    losses.lovasz_softmax(soft, labels).backward()
    true = torch.nn.functional.one_hot((labels - 1).clamp(min=0), 3).permute(0, 3, 1, 2).bool()
    true &= torch.from_numpy(valid)[:, None]
    assert (soft.grad[true] <= 0).all() and (soft.grad[true] < 0).mean(dtype=torch.float) > 0.5


def test_ignored_pixels_change_nothing():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    labels = torch.randint(1, 4, (2, 8, 8))
    masked = labels.clone()
    masked[:, :4] = 0
    other_logits = logits.clone()
    other_logits[:, :, :4] = torch.randn(2, 3, 4, 8) * 10  # scores where unlabelled do not matter
    for name in ["focal-dice", "focal", "ce", "dice", "lovasz", "focal-dice-lovasz"]:
        f = losses.multiclass_loss(name)
        assert f(logits, masked).item() == pytest.approx(f(other_logits, masked).item(), rel=1e-5)


@pytest.mark.parametrize(
    "name", ["focal-dice", "focal", "ce", "dice", "lovasz", "focal-dice-lovasz"]
)
def test_finite_gradients_on_one_class_and_empty_batches(name):
    f = losses.multiclass_loss(name, alpha=[1.0, 2.0, 3.0])
    for labels in (torch.full((2, 8, 8), 2), torch.zeros(2, 8, 8, dtype=torch.long)):
        logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        loss = f(logits, labels)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    loss = losses.binary_focal_dice(
        logits, torch.ones(2, 8, 8, dtype=torch.bool), torch.ones(2, 8, 8, dtype=torch.bool)
    )
    loss.backward()
    assert torch.isfinite(logits.grad).all()
