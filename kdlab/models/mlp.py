"""Fully connected nets: Hinton et al.'s MNIST nets (784-1200-1200-10 and 784-800-800-10)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from kdlab import _checks


class MaxNormLinear(nn.Linear):
    """A linear layer whose incoming weight vector of each unit has L2 norm at most ``max_norm``.

    Srivastava et al. (2014)'s max-norm constraint, used by Hinton et al. (2015) for the
    cumbersome net: after each optimiser step the weights are projected back onto the ball
    (:meth:`project_`, through :func:`constrain_`, which the caller passes to
    :func:`kdlab.train.fit` as its ``after_step`` hook: ``fit(..., after_step=constrain_)``).
    """

    def __init__(self, in_features: int, out_features: int, max_norm: float) -> None:
        super().__init__(in_features, out_features)
        self.max_norm = _checks.positive("max_norm", max_norm)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_norm={self.max_norm}"

    @torch.no_grad()
    def project_(self) -> None:
        # Row i holds the weights into unit i: renorm rescales only rows whose norm exceeds max_norm.
        self.weight.copy_(torch.renorm(self.weight, p=2, dim=0, maxnorm=self.max_norm))


def constrain_(model: nn.Module) -> None:
    """Apply every weight constraint in ``model`` (today: :class:`MaxNormLinear`) in place."""
    for module in model.modules():
        if isinstance(module, MaxNormLinear):
            module.project_()


def mlp(
    sizes: Sequence[int],
    dropout: float = 0.0,
    max_norm: float | None = None,
    input_dropout: float = 0.0,
) -> nn.Sequential:
    """A ReLU MLP with ``sizes = (inputs, hidden..., classes)``, e.g. ``(784, 800, 800, 10)``.

    Images are flattened first. Feature points (for :func:`kdlab.features.capture`):
    ``hidden1``, ``hidden2``, ... (post-activation, post-dropout) and ``logits``. Hinton's
    cumbersome net is ``mlp((784, 1200, 1200, 10), dropout=0.5, max_norm=..., input_dropout=0.2)``
    (dropout on the hidden units, 20 % on the inputs, as in Srivastava et al.).
    """
    sizes = list(sizes)
    if len(sizes) < 2 or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must list >= 2 positive integers (inputs, ..., classes), got {sizes}")
    _checks.in_range("dropout", dropout, 0.0, 1.0)
    _checks.in_range("input_dropout", input_dropout, 0.0, 1.0)

    def linear(i: int, o: int) -> nn.Linear:
        return nn.Linear(i, o) if max_norm is None else MaxNormLinear(i, o, max_norm)

    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    if input_dropout:
        layers["input_dropout"] = nn.Dropout(input_dropout)
    for k, (i, o) in enumerate(zip(sizes[:-2], sizes[1:-1], strict=True), start=1):
        block = [linear(i, o), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        layers[f"hidden{k}"] = nn.Sequential(*block)
    layers["logits"] = linear(sizes[-2], sizes[-1])
    return nn.Sequential(layers)
