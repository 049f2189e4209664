"""The book's figures (matplotlib only). Each function draws on ``ax`` (or a new figure) and returns it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from torch import Tensor

from kdlab.train import History


def _axes(ax: Axes | None, size: tuple[float, float] = (6.0, 3.6)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size, layout="constrained")
    return ax


def learning_curves(
    runs: Mapping[str, Sequence[History]], key: str = "test_error", ax: Axes | None = None, ylabel: str | None = None
) -> Axes:
    """One line per named group of runs: the mean of ``key`` per epoch, with a min-max band over seeds."""
    ax = _axes(ax)
    for label, histories in runs.items():
        curves = np.array([h[key] for h in histories], dtype=float)
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, curves.mean(0), marker="o", markersize=3, label=f"{label} (n={len(histories)})")
        if len(histories) > 1:
            ax.fill_between(epochs, curves.min(0), curves.max(0), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or key.replace("_", " "))
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return ax


def softmax_at_temperatures(logits: Tensor, temperatures: Sequence[float], ax: Axes | None = None) -> Axes:
    """Bars of softmax(logits / T) for each T: how a higher temperature reveals the small probabilities."""
    ax = _axes(ax)
    logits = torch.as_tensor(logits, dtype=torch.float32).flatten()
    classes = np.arange(len(logits))
    width = 0.8 / len(temperatures)
    for k, temperature in enumerate(temperatures):
        probabilities = torch.softmax(logits / temperature, dim=0).numpy()
        ax.bar(classes + (k - (len(temperatures) - 1) / 2) * width, probabilities, width, label=f"T = {temperature:g}")
    ax.set_xticks(classes)
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    ax.legend(frameon=False)
    return ax
