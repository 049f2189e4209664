"""Tiny models and data shared by the API tests: a conv net on 4x4 images of 3 classes."""

from collections import OrderedDict

import torch
from torch import nn

from kdlab.data import Tensors

FIT = dict(epochs=1, batch_size=16, progress=False, device="cpu")


def net(classes: int = 3, width: int = 4) -> nn.Module:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(1, width, 3, padding=1), relu=nn.ReLU(), flatten=nn.Flatten(),
        fc=nn.Linear(width * 16, classes),
    ))


def toy(n: int = 48, classes: int = 3, seed: int = 0) -> Tensors:
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 1, 4, 4, generator=generator) + y.view(-1, 1, 1, 1).float()
    return Tensors(x, y)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(p, q) for p, q in pairs)
