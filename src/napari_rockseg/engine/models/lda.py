"""The original work's classical baseline: a linear discriminant on grey values.

Fitted parameters are plain arrays (safetensors, no pickle); prediction needs numpy only.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .info import ModelInfo
from .protocol import RAW_GREY


class GreyLDA:
    """Linear discriminant analysis on the grey value of each pixel.

    ``coef``/``intercept`` are those of scikit-learn's
    ``LinearDiscriminantAnalysis`` (decision = x @ coef.T + intercept), and
    ``classes`` the integer labels they score.
    """

    kind = "lda"
    reads, texture_levels = RAW_GREY, False

    def __init__(self, coef=None, intercept=None, classes=None, info: ModelInfo | None = None):
        self.info = info or ModelInfo(normalization="none")
        self.coef = None if coef is None else np.asarray(coef, np.float64)
        self.intercept = None if intercept is None else np.asarray(intercept, np.float64)
        self.classes = None if classes is None else np.asarray(classes, np.int64)

    @staticmethod
    def features(grey: np.ndarray) -> np.ndarray:
        return np.asarray(grey, np.float64).reshape(-1, 1)

    def fit(self, images, labels, masks=None) -> GreyLDA:
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        xs, ys = [], []
        for i, (img, lab) in enumerate(zip(images, labels)):
            keep = lab > 0
            if masks is not None:
                keep &= masks[i]
            xs.append(self.features(img)[keep.ravel()])
            ys.append(lab[keep])
        x = np.concatenate(xs)
        y = np.concatenate(ys)
        present = np.unique(y)
        if present.size < 2:
            raise InputError(
                f"the training labels hold only class {present.tolist()}; LDA needs at least two "
                f"classes"
            )
        lda = LinearDiscriminantAnalysis(solver="svd").fit(x, y)
        coef, intercept = lda.coef_, lda.intercept_
        if present.size == 2:  # scikit-learn folds two classes into one discriminant
            coef = np.vstack([-coef, coef]) / 2
            intercept = np.array([-intercept[0], intercept[0]]) / 2
        self.coef, self.intercept, self.classes = coef, intercept, lda.classes_.astype(np.int64)
        return self

    def decision(self, grey: np.ndarray) -> np.ndarray:
        if self.coef is None:
            raise InputError("the LDA model is not fitted")
        x = self.features(grey)
        return x @ self.coef.T + self.intercept

    def predict(self, grey: np.ndarray) -> np.ndarray:
        scores = self.decision(grey)
        return self.classes[np.argmax(scores, axis=1)].reshape(np.shape(grey)).astype(np.uint8)

    def probabilities(self, grey: np.ndarray) -> np.ndarray:
        """(K, H, W) posterior probabilities over the scheme's classes 1..K."""
        scores = self.decision(grey)
        scores -= scores.max(axis=1, keepdims=True)
        post = np.exp(scores)
        post /= post.sum(axis=1, keepdims=True)
        k = self.info.scheme.n_classes
        out = np.zeros((k, post.shape[0]), np.float32)
        out[self.classes - 1] = post.T
        return out.reshape((k,) + np.shape(grey))

    def tensors(self) -> dict:
        return {"coef": self.coef, "intercept": self.intercept, "classes": self.classes}

    @classmethod
    def from_tensors(cls, t: dict) -> GreyLDA:
        return cls(t["coef"], t["intercept"], t["classes"])
