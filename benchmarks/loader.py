"""Batching by indexing: :class:`kdlab.data.TensorLoader` against a ``torch.utils.data.DataLoader``.

    python benchmarks/loader.py [--json PATH] [--quick] [--threads N] [--strict]

Both loaders shuffle the same 60,000 MNIST training tensors in batches of 128; the DataLoader is
the usual ``DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)`` (one ``__getitem__``
per example, then a collate that stacks them). Variants run in turn and are compared by medians.

- ``batching``: one epoch of batches alone, each touched (its labels summed, which also checks
  that both loaders hand out every example once). Target: TensorLoader >= 3x faster.
- ``model_epoch``: one epoch of :func:`kdlab.train.fit` (``progress=False``) of a small MLP,
  784-100-10, with each loader. No target: on a CPU the model's steps take most of the time;
  on CUDA the DataLoader also pays a host-to-device copy per batch, which the TensorLoader
  (whose tensors moved to the device once) does not.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

import _common
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from kdlab.data import TensorLoader
from kdlab.models import mlp
from kdlab.train import fit

NAME = "loader"
BATCH_SIZE = 128
BATCHING_TARGET = _common.target(">=", 3.0)
LOADER_NAMES = ("DataLoader", "TensorLoader")  # how the variants data_loader, tensor_loader print
# Images, most rounds of the batching and of the model epochs, seconds after which no new round
# starts, the model's sizes.
FULL = (60_000, 7, 5, 15.0, (784, 100, 10))
QUICK = (512, 1, 1, 0.0, (784, 8, 10))


def _fit(model: nn.Module, batches: Iterable[tuple[Tensor, ...]]) -> Callable[[], object]:
    return lambda: fit(model, batches, epochs=1, progress=False)  # type: ignore[arg-type]


def run(quick: bool = False) -> dict:
    """Time both loaders; returns the dict of :func:`_common.result` with ratios ``batching`` and
    ``model_epoch`` (DataLoader time / TensorLoader time: above 1 means the TensorLoader is faster)."""
    size, rounds_batching, rounds_model, budget, sizes = QUICK if quick else FULL
    x, y, source = _common.mnist_tensors(size, synthetic=quick)
    label_sum = int(y.sum())
    tensor_loader = TensorLoader(x, y, batch_size=BATCH_SIZE, shuffle=True, seed=0)
    data_loader = DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True)
    batching = {
        "tensor_loader": _common.epoch_over(tensor_loader, label_sum),
        "data_loader": _common.epoch_over(data_loader, label_sum),
    }
    # fit moves a TensorLoader's tensors to its device, so the model epochs get a loader of their own.
    fit_loader = TensorLoader(x, y, batch_size=BATCH_SIZE, shuffle=True, seed=0)
    torch.manual_seed(0)
    model_t = mlp(sizes)
    model_d = mlp(sizes)
    model_d.load_state_dict(model_t.state_dict())
    model = {"tensor_loader": _fit(model_t, fit_loader), "data_loader": _fit(model_d, data_loader)}
    # One warm-up call each: the first pays for allocations and the DataLoader's set-up.
    for call in (*batching.values(), *model.values()):
        call()
    times_batching = _common.interleaved(
        batching, rounds=rounds_batching, budget_s=budget, min_rounds=min(3, rounds_batching)
    )
    times_model = _common.interleaved(
        model, rounds=rounds_model, budget_s=budget, min_rounds=min(3, rounds_model)
    )
    steps = len(tensor_loader)
    measurements = [
        _common.timed_ratio(
            "batching",
            f"batching alone, one epoch ({steps} batches): DataLoader time / TensorLoader time",
            times_batching, "data_loader", "tensor_loader", BATCHING_TARGET, names=LOADER_NAMES,
        ),
        _common.timed_ratio(
            "model_epoch",
            f"one fit epoch of mlp {sizes}: DataLoader time / TensorLoader time",
            times_model, "data_loader", "tensor_loader", names=LOADER_NAMES,
        ),
    ]
    return _common.result(
        NAME, measurements, quick=quick, data=source, model=f"mlp {sizes}", batch_size=BATCH_SIZE
    )


if __name__ == "__main__":
    sys.exit(_common.main(NAME, run, __doc__.splitlines()[0]))
