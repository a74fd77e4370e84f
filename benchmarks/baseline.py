"""The plain-library baseline: the same trained model, every detector called the way the libraries
are normally called (scikit-learn estimators, a PyTorch module for the autoencoder), with
scikit-learn's usual input validation. Features, calibration and combination are shared with ours,
so the benchmark isolates what the serving path changes.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn


class PlainDetector:
    def __init__(self, name: str, det: Any) -> None:
        self.name, self.det = name, det
        if name == "autoencoder":
            layers: list[nn.Module] = []
            last = len(det.weights_) - 1
            for i, (w, b) in enumerate(zip(det.weights_, det.biases_, strict=True)):
                lin = nn.Linear(w.shape[0], w.shape[1]).double()
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(w.T.copy()))
                    lin.bias.copy_(torch.from_numpy(b.copy()))
                layers.append(lin)
                if i < last:
                    layers.append(nn.Tanh())
            self.net = nn.Sequential(*layers).eval()

    def score_samples(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        det = self.det
        if self.name in ("iforest", "lof"):
            return -det.model_.score_samples(X)
        if self.name == "ocsvm":
            return -det.model_.decision_function(X)
        if self.name == "pca":
            Z = (X - det.mean_) / det.scale_
            return ((Z - det.model_.inverse_transform(det.model_.transform(Z))) ** 2).sum(axis=1)
        if self.name == "autoencoder":
            Xc = np.clip(X, -det.clip, det.clip)
            with torch.no_grad():
                recon = self.net(torch.from_numpy(Xc)).numpy()
            return ((recon - Xc) ** 2).mean(axis=1)
        return det.score_samples(X)

    _score = score_samples  # the pipeline's per-step path calls _score; the baseline keeps validation


def plain_model(model: Any) -> Any:
    base = copy.copy(model)
    base.detectors_ = {name: PlainDetector(name, det) for name, det in model.detectors_.items()}
    return base
