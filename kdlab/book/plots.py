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
    runs: Mapping[str, Sequence[History]],
    key: str = "test_error",
    ax: Axes | None = None,
    ylabel: str | None = None,
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
        offset = (k - (len(temperatures) - 1) / 2) * width
        ax.bar(classes + offset, probabilities, width, label=f"T = {temperature:g}")
    ax.set_xticks(classes)
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    ax.legend(frameon=False)
    return ax


def reliability_diagram(
    logits: Tensor, labels: Tensor, bins: int = 15, ax: Axes | None = None, label: str | None = None
) -> Axes:
    """Accuracy against mean confidence per bin (:func:`kdlab.metrics.reliability`), with the diagonal.

    A calibrated model lies on the diagonal; points below it are over-confident. Empty bins are
    left out. The legend gives each model's ECE.
    """
    from kdlab import metrics

    ax = _axes(ax, (4.2, 4.0))
    table = metrics.reliability(logits, labels, bins)
    filled = table["count"] > 0
    ece = metrics.ece(logits, labels, bins)
    name = f"{label}, ECE {ece:.4f}" if label else f"ECE {ece:.4f}"
    ax.plot(table["confidence"][filled].numpy(), table["accuracy"][filled].numpy(), marker="o", markersize=3,
            label=name)
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("confidence (top softmax probability)")
    ax.set_ylabel("accuracy")
    ax.legend(frameon=False, fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def heatmap(
    values: Sequence[Sequence[float]] | np.ndarray,
    rows: Sequence[object],
    columns: Sequence[object],
    ax: Axes | None = None,
    fmt: str = "{:.0f}",
    xlabel: str | None = None,
    ylabel: str | None = None,
    cmap: str = "viridis_r",
) -> Axes:
    """A (rows x columns) table as coloured cells, each value written in its cell (errors over T x alpha)."""
    ax = _axes(ax, (1.0 + 0.9 * len(columns), 0.8 + 0.55 * len(rows)))
    grid = np.asarray(values, dtype=float)
    if grid.shape != (len(rows), len(columns)):
        raise ValueError(f"values must have shape ({len(rows)}, {len(columns)}) to match rows and columns, "
                         f"got {grid.shape}")
    image = ax.imshow(grid, cmap=cmap, aspect="auto")
    middle = np.nanmean(grid)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            # Dark text on the light end of the colour map, light text on the dark end.
            light = (grid[i, j] > middle) == cmap.endswith("_r")
            ax.text(j, i, fmt.format(grid[i, j]), ha="center", va="center", fontsize="small",
                    color="white" if light else "black")
    ax.set_xticks(range(len(columns)), [str(c) for c in columns])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return ax
