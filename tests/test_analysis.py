import numpy as np

from napari_rockseg.engine.analysis.metrics import evaluate, per_class_iou
from napari_rockseg.engine.analysis.rock import phase_fractions


def test_iou_hand_values_and_absent_class_scores_one():
    truth = np.array([[1, 1, 2, 2]])
    pred = np.array([[1, 2, 2, 2]])
    iou = per_class_iou(pred, truth, 3)
    np.testing.assert_allclose(iou, [1 / 2, 2 / 3, 1.0])


def test_unlabelled_and_masked_pixels_are_ignored():
    truth = np.array([[0, 1, 2, 2]])
    pred = np.array([[2, 1, 2, 1]])
    mask = np.array([[True, True, True, False]])
    res = evaluate(pred, truth, 2, mask)
    assert res["iou"] == [1.0, 1.0] and res["pixels"] == 2


def test_prediction_zero_counts_against_truth_class():
    truth = np.array([[1, 1]])
    pred = np.array([[1, 0]])
    assert per_class_iou(pred, truth, 1)[0] == 0.5


def test_phase_fractions():
    lab = np.array([[1, 1, 2, 0], [3, 3, 3, 3]])
    np.testing.assert_allclose(phase_fractions(lab, 3), [2 / 7, 1 / 7, 4 / 7])


def test_unlabelled_bottom_rows():
    from napari_rockseg.engine.analysis.metrics import unlabelled_bottom_rows

    pred = np.ones((10, 4), np.uint8)
    pred[7:] = 0
    pred[2] = 0  # an empty row inside the image is not the data bar
    assert unlabelled_bottom_rows(pred) == 3
    assert unlabelled_bottom_rows(np.zeros((5, 5))) == 0
