"""Batching plus augmentation on the device against a DataLoader that augments image by image.

    python benchmarks/augment.py [--json PATH] [--quick] [--threads N] [--strict]

One epoch over 10,240 random CIFAR-shaped images (the time does not depend on the pixel values),
batches of 64 and of 128, each batch touched (its labels summed, which also checks that every
example came once). kdlab's side is :class:`kdlab.data.TensorLoader` with
``augment=kdlab.augment.CIFAR`` over standardised float tensors (n, 3, 32, 32), as
:func:`kdlab.data.load` gives them: the whole batch is cropped (zero padding 4) and flipped at
once, in this process, on its CPU threads (one by default). The DataLoaders are written as users
write them, ``DataLoader(dataset, batch_size, shuffle=True, num_workers=2)`` with torchvision's
``RandomCrop(32, padding=4)`` and ``RandomHorizontalFlip()`` per image in the workers, and
``persistent_workers=True`` so that starting the workers is not counted (their best case). Two
DataLoaders, compared with kdlab's loader in turn (A B C, C B A ...) by medians:

- ``tensor_b64``, ``tensor_b128``: the dataset holds the same float tensors and applies the two
  transforms to each image tensor (the cheapest per-image form). Target >= 10x.
- ``pil_b64``, ``pil_b128``: the torchvision CIFAR dataset's own path (uint8 (32, 32, 3) arrays,
  ``PIL.Image.fromarray``, the two transforms, ``ToTensor``, ``Normalize``), the pipeline of the
  distillation repositories' CIFAR training scripts; its batches are the same standardised,
  augmented float tensors. Target >= 10x.
- ``augment_cost``: TensorLoader with augmentation / without, batch 128. No target.

Each DataLoader uses two worker processes, that is both cores of a 2-core machine, while kdlab's
loader uses one thread: the ratios are for the machine as a whole, not per core.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import _common
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from kdlab.augment import CIFAR
from kdlab.data import TensorLoader

NAME = "augment"
BATCH_SIZES = (64, 128)
TARGET = _common.target(">=", 10.0)
WORKERS = 2
# Images, most rounds, seconds after which no new round starts, DataLoader workers. The quick run
# (a smoke test, no numbers) uses no worker processes.
FULL = (10_240, 7, 12.0, WORKERS)
QUICK = (256, 1, 0.0, 0)


class _TensorImages(Dataset):
    """Float image tensors (n, 3, 32, 32) and labels, one transformed image per ``__getitem__``."""

    def __init__(self, x: Tensor, y: Tensor, transform: Callable[[Tensor], Tensor]) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.transform(self.x[index]), self.y[index]


class _CifarImages(Dataset):
    """What ``torchvision.datasets.CIFAR10.__getitem__`` does: uint8 (32, 32, 3) array -> PIL -> transform."""

    def __init__(self, data: np.ndarray, y: Tensor, transform: Callable) -> None:
        self.data, self.y, self.transform = data, y, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        from PIL import Image

        return self.transform(Image.fromarray(self.data[index])), self.y[index]


def _data(size: int) -> tuple[np.ndarray, Tensor, Tensor, tuple, tuple]:
    """Random uint8 CIFAR images (n, 32, 32, 3), the same as standardised float tensors (n, 3, 32,
    32), labels, and the per-channel mean and standard deviation used."""
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, size=(size, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    x = ((x - mean[:, None, None]) / std[:, None, None]).contiguous()
    y = torch.from_numpy(generator.integers(0, 100, size=size))
    return images, x, y, tuple(mean.tolist()), tuple(std.tolist())


def run(quick: bool = False) -> dict:
    """Time the loaders; returns the dict of :func:`_common.result` with ratios ``tensor_b64``,
    ``tensor_b128``, ``pil_b64``, ``pil_b128`` (DataLoader time / TensorLoader time: above 1 means
    kdlab's loader is faster) and ``augment_cost``."""
    from torchvision import transforms

    size, rounds, budget, workers = QUICK if quick else FULL
    images, x, y, mean, std = _data(size)
    label_sum = int(y.sum())
    crop_flip = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    tensor_set = _TensorImages(x, y, transforms.Compose(crop_flip))
    pil_set = _CifarImages(
        images, y, transforms.Compose([*crop_flip, transforms.ToTensor(), transforms.Normalize(mean, std)])
    )
    measurements = []
    names = ("DataLoader", "TensorLoader")
    for batch_size in BATCH_SIZES:
        torch.manual_seed(0)
        loaders = {
            "tensor_loader": TensorLoader(x, y, batch_size=batch_size, seed=0, augment=CIFAR),
            "plain_tensor_loader": TensorLoader(x, y, batch_size=batch_size, seed=0),
            "data_loader_tensor": DataLoader(
                tensor_set, batch_size=batch_size, shuffle=True, num_workers=workers,
                persistent_workers=workers > 0,
            ),
            "data_loader_pil": DataLoader(
                pil_set, batch_size=batch_size, shuffle=True, num_workers=workers,
                persistent_workers=workers > 0,
            ),
        }
        epochs = {name: _common.epoch_over(loader, label_sum) for name, loader in loaders.items()}
        for epoch in epochs.values():  # warm-up: allocations, the workers' start
            epoch()
        timings = _common.interleaved(epochs, rounds=rounds, budget_s=budget, min_rounds=min(3, rounds))
        steps = len(loaders["tensor_loader"])
        what = f"batch {batch_size}, one epoch ({steps} batches) of crop + flip"
        measurements += [
            _common.timed_ratio(
                f"tensor_b{batch_size}",
                f"{what}, DataLoader (tensor transforms, {workers} workers) time / TensorLoader time",
                timings, "data_loader_tensor", "tensor_loader", TARGET, names=names,
            ),
            _common.timed_ratio(
                f"pil_b{batch_size}",
                f"{what}, DataLoader (PIL, ToTensor, Normalize, {workers} workers) time / TensorLoader time",
                timings, "data_loader_pil", "tensor_loader", TARGET, names=names,
            ),
        ]
        if batch_size == BATCH_SIZES[-1]:
            measurements.append(
                _common.timed_ratio(
                    "augment_cost",
                    f"batch {batch_size}, one epoch: TensorLoader with crop + flip time / without",
                    timings, "tensor_loader", "plain_tensor_loader",
                    names=("with augmentation", "without"),
                )
            )
        del loaders, epochs  # shuts the persistent workers down before the next batch size
    return _common.result(
        NAME, measurements, quick=quick,
        data=f"random CIFAR-shaped images, {size:,} (uint8 for the PIL path, standardised float32 otherwise)",
        batch_sizes=list(BATCH_SIZES), workers=workers,
    )


if __name__ == "__main__":
    sys.exit(_common.main(NAME, run, __doc__.splitlines()[0]))
