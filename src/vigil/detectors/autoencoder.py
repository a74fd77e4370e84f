"""A small dense autoencoder (PyTorch) over a short window of every metric.

The pipeline feeds it the ``level`` and ``lag_k`` feature blocks, i.e. each input row is the last
``lags`` steps of every metric, so the network learns short temporal context (how metrics move
together over a few steps) while the detector itself stays row-wise. Row-wise means batch scoring,
``score_features`` and the stream agree exactly. Training uses PyTorch; the learned weights are
kept as float64 numpy arrays and inference is plain numpy, so scores are deterministic, identical
after save/load, and cheap for a single row.
"""

from __future__ import annotations

import numpy as np

from vigil.detectors.base import BaseDetector, subsample


class AutoencoderDetector(BaseDetector):
    """Mean squared reconstruction error of a ``d -> hidden -> bottleneck -> hidden -> d`` MLP.

    Parameters
    ----------
    hidden : int
        Width of the hidden layers (capped at the input width).
    bottleneck : int
        Width of the code layer.
    epochs : int
        Passes over the (subsampled) training set.
    batch_size : int
        Minibatch size.
    lr : float
        Adam learning rate.
    weight_decay : float
        L2 penalty.
    max_train : int
        Largest training subsample.
    clip : float
        Inputs are clipped to ``[-clip, clip]`` (they arrive standardised) so one wild value
        cannot dominate training.
    random_state : int or None
        Seed for weights, shuffling and the subsample.

    Examples
    --------
    >>> import numpy as np
    >>> from vigil.config import load_settings
    >>> X = np.loadtxt(load_settings().data_dir / "smd" / "train" / "machine-1-2.txt", delimiter=",")[:3000]
    >>> det = AutoencoderDetector(epochs=2, random_state=0).fit(X[:2000])
    >>> det.reconstruct(X[2000:2005]).shape
    (5, 38)
    """

    def __init__(
        self,
        hidden: int = 64,
        bottleneck: int = 8,
        epochs: int = 8,
        batch_size: int = 128,
        lr: float = 2e-3,
        weight_decay: float = 1e-5,
        max_train: int = 12000,
        clip: float = 10.0,
        random_state: int | None = 0,
    ) -> None:
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_train = max_train
        self.clip = clip
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        import torch
        from torch import nn

        seed = 0 if self.random_state is None else int(self.random_state)
        torch.manual_seed(seed)
        Xs = np.clip(subsample(X, self.max_train, seed), -self.clip, self.clip)
        d = Xs.shape[1]
        h = max(2, min(self.hidden, d))
        b = max(1, min(self.bottleneck, h))
        net = nn.Sequential(
            nn.Linear(d, h), nn.Tanh(), nn.Linear(h, b), nn.Tanh(), nn.Linear(b, h), nn.Tanh(), nn.Linear(h, d)
        )
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        data = torch.as_tensor(Xs, dtype=torch.float32)
        gen = torch.Generator().manual_seed(seed)
        # Few CPU threads: the model is tiny and the bench runs several entities in parallel.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            net.train()
            losses = []
            for _ in range(self.epochs):
                perm = torch.randperm(len(data), generator=gen)
                total = 0.0
                for start in range(0, len(data), self.batch_size):
                    batch = data[perm[start : start + self.batch_size]]
                    opt.zero_grad()
                    loss = ((net(batch) - batch) ** 2).mean()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(batch)
                losses.append(total / len(data))
        finally:
            torch.set_num_threads(threads)
        self.loss_curve_ = losses
        linears = [m for m in net if isinstance(m, nn.Linear)]
        self.weights_ = [m.weight.detach().double().numpy().T.copy() for m in linears]
        self.biases_ = [m.bias.detach().double().numpy().copy() for m in linears]

    def reconstruct(self, X: np.ndarray) -> np.ndarray:
        """Reconstruction of (clipped) rows, numpy float64 forward pass."""
        a = np.clip(np.asarray(X, dtype=np.float64), -self.clip, self.clip)
        last = len(self.weights_) - 1
        for i, (w, bias) in enumerate(zip(self.weights_, self.biases_, strict=True)):
            a = a @ w + bias
            if i < last:
                a = np.tanh(a)
        return a

    def _score(self, X: np.ndarray) -> np.ndarray:
        Xc = np.clip(X, -self.clip, self.clip)
        return ((self.reconstruct(Xc) - Xc) ** 2).mean(axis=1)
