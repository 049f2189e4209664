"""The CUDA speed knobs for a conv net: bf16 autocast, channels-last memory and ``torch.compile``.

    python benchmarks/gpu.py [--json PATH] [--quick] [--threads N] [--strict]

On ``$KDLAB_BENCH_DEVICE`` (default ``cuda``; ``make gpu-check`` runs it on the device it checks):
on a machine without a CUDA GPU it prints ``skipped: no CUDA GPU`` and exits 0. Each
variant is one :func:`kdlab.train.fit` epoch (``progress=False``) of a ResNet-20 (He et al. 2016,
the FSP chapter's family) on CIFAR-shaped random tensors, batch 128, whose tensors live on the GPU
(a :class:`~kdlab.data.TensorLoader`); variants run in turn and are compared by medians, the GPU
synchronised around each.

- ``bf16_autocast``: fp32 epoch time / bf16 autocast epoch time (``fit``'s ``amp``), both
  contiguous, with torch's default precision settings (cuDNN may run fp32 convolutions in TF32).
  Target >= 1 (autocast is kdlab's default on CUDA: it must not slow training down).
- ``channels_last``: contiguous / channels-last epoch time, both under autocast. Target >= 1.
- ``compile``: channels-last autocast epoch time / the same model under ``torch.compile`` (its
  compilation is in the warm-up, not timed). No target; reported as unavailable where the
  compiler cannot run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import _common
import torch
from torch import nn

from kdlab.data import TensorLoader
from kdlab.models import resnet
from kdlab.train import fit

NAME = "gpu"
BATCH_SIZE = 128
SPEEDUP_TARGET = _common.target(">=", 1.0)
# Images, most rounds, seconds after which no new round starts, depth, widths.
FULL = (10_240, 7, 20.0, 20, (16, 32, 64))
QUICK = (256, 1, 0.0, 8, (4, 8, 16))


def _epoch(model: nn.Module, loader: TensorLoader, amp: bool, device: str) -> Callable[[], object]:
    return lambda: fit(model, loader, epochs=1, amp=amp, device=device, progress=False)


def measure(device: str = "cuda", quick: bool = False, compile: bool = True) -> dict:
    """Time the variants on ``device``; returns the dict of :func:`_common.result` with ratios
    ``bf16_autocast``, ``channels_last`` and, when ``compile`` works, ``compile``.

    ``device="cpu"`` runs the same code without a GPU (autocast is then off: ``fit`` only
    autocasts on CUDA), which is how the test checks it.
    """
    size, rounds, budget, depth, widths = QUICK if quick else FULL
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(size, 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (size,), generator=generator).to(device)
    x_last = x.contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    first = resnet(depth, widths).to(device)

    def copy(channels_last: bool) -> nn.Module:
        model = resnet(depth, widths).to(device)
        model.load_state_dict(first.state_dict())
        return model.to(memory_format=torch.channels_last) if channels_last else model

    def loader(channels_last: bool) -> TensorLoader:
        return TensorLoader(x_last if channels_last else x, y, batch_size=BATCH_SIZE)

    variants = {
        "fp32": _epoch(first, loader(False), False, device),
        "bf16": _epoch(copy(False), loader(False), True, device),
        "bf16_channels_last": _epoch(copy(True), loader(True), True, device),
    }
    # One warm-up epoch each: the first pays for cuDNN's kernel choice and the allocator's growth.
    for call in variants.values():
        call()
    compile_note = "not asked for"
    if compile:
        compiled = _epoch(torch.compile(copy(True)), loader(True), True, device)
        try:
            compiled()
            variants["compiled"] = compiled
            compile_note = "compiled in the warm-up"
        except Exception as error:  # no Triton, no C compiler, an unsupported GPU: all mean "not here"
            compile_note = f"unavailable: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    times = _common.interleaved(
        variants, rounds=rounds, budget_s=budget, min_rounds=min(3, rounds), sync=sync
    )
    t = {name: times.median(name) for name in variants}
    steps, count = -(-size // BATCH_SIZE), len(times.wall["fp32"])
    measurements = [
        _common.measurement(
            "bf16_autocast", f"fp32 epoch / bf16 autocast epoch ({steps} steps)", t["fp32"] / t["bf16"],
            SPEEDUP_TARGET,
            detail=f"fp32 {t['fp32'] * 1e3:.0f} ms, bf16 {t['bf16'] * 1e3:.0f} ms, medians of {count}",
            seconds=t, samples=times.wall,
        ),
        _common.measurement(
            "channels_last", "contiguous / channels-last epoch, both bf16 autocast",
            t["bf16"] / t["bf16_channels_last"], SPEEDUP_TARGET,
            detail=f"channels-last {t['bf16_channels_last'] * 1e3:.0f} ms",
        ),
    ]
    if "compiled" in t:
        measurements.append(_common.measurement(
            "compile", "channels-last bf16 epoch / the same under torch.compile",
            t["bf16_channels_last"] / t["compiled"], detail=f"compiled {t['compiled'] * 1e3:.0f} ms",
        ))
    return _common.result(
        NAME, measurements, quick=quick, model=f"resnet {depth} {widths}", batch_size=BATCH_SIZE,
        data=f"random CIFAR-shaped tensors, {size:,} images on {device}; torch.compile {compile_note}",
    )


def run(quick: bool = False) -> dict:
    """:func:`measure` on ``$KDLAB_BENCH_DEVICE`` (default ``cuda``; ``make gpu-check`` sets it), or
    a result marked skipped where that is CUDA and there is no CUDA GPU. Off CUDA, ``torch.compile``
    is left out (it is a GPU knob here, and compiling on a 2-core CPU takes minutes)."""
    device = os.environ.get("KDLAB_BENCH_DEVICE", "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        return _common.result(NAME, [], quick=quick, skipped="no CUDA GPU")
    return measure(device, quick=quick, compile=device.startswith("cuda"))


if __name__ == "__main__":
    sys.exit(_common.main(NAME, run, __doc__.splitlines()[0]))
