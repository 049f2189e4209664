"""Shipping the student: size, measured CPU latency, and export with ``torch.export`` or ONNX.

Distillation exists to deploy a smaller model (Bucila et al. 2006, "Model Compression"; Hinton et
al. 2015): these helpers measure what the deployment gains (parameters, bytes on disk, median
latency at a batch size) and export the student so that it runs without kdlab, checking that the
exported model computes what PyTorch computes. ``onnx`` and ``onnxruntime`` are optional
(``pip install onnx onnxruntime``) and imported only when an ONNX helper is called.
"""

from __future__ import annotations

import importlib
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kdlab import _checks, metrics


def _optional(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{purpose} needs the package {module!r}, which is not installed; "
            f"install it with `pip install {module}` (or kdlab's 'book' extra)"
        ) from None


def size_bytes(model: nn.Module) -> int:
    """Bytes of ``model``'s ``state_dict`` as ``torch.save`` writes it (what a checkpoint weighs)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def latency_ms(
    model: nn.Module, example: Tensor, repeats: int = 20, warmup: int = 3, threads: int | None = None
) -> float:
    """Median milliseconds of one forward pass on the batch ``example`` (eval mode, no gradients),
    with ``threads`` intra-op CPU threads during the measurement (None: leave the setting as it is)."""
    if threads is not None:
        _checks.at_least("threads", threads, 1)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return 1000.0 * metrics.latency(model, example, repeats=repeats, warmup=warmup)
    finally:
        torch.set_num_threads(before)


def deployment(
    models: Mapping[str, nn.Module], example: Tensor, batch_sizes: Sequence[int] = (1, 64), **latency: Any
) -> dict[str, dict[str, float]]:
    """For each named model: ``parameters``, ``megabytes`` (:func:`size_bytes` / 1e6) and
    ``latency_ms@B`` for each batch size B (:func:`latency_ms` on the first B rows of ``example``,
    repeated when ``example`` is shorter; ``latency`` is passed on). All on ``example``'s device."""
    if not batch_sizes:
        raise ValueError("batch_sizes must list at least one batch size, got none")
    rows: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        row = {"parameters": float(metrics.parameter_count(model)), "megabytes": size_bytes(model) / 1e6}
        for size in batch_sizes:
            _checks.at_least("batch size", size, 1)
            reps = -(-size // example.shape[0])
            batch = example.repeat(reps, *([1] * (example.dim() - 1)))[:size]
            row[f"latency_ms@{size}"] = latency_ms(model, batch, **latency)
        rows[name] = row
    return rows


def export_program(model: nn.Module, example: Tensor, path: str | os.PathLike | None = None):
    """``torch.export.export`` of ``model`` (eval mode) on ``example`` with a dynamic batch dimension;
    saved to ``path`` (a ``.pt2`` file, reloaded with ``torch.export.load``) when given. Returns the
    ``ExportedProgram``; ``program.module()(x)`` runs it. ``model`` is left in the mode it had."""
    if example.shape[0] < 2:  # a batch of one would be specialised to a constant size
        example = torch.cat([example, example])
    batch = torch.export.Dim("batch", min=1)
    with metrics.eval_mode(model):
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    if path is not None:
        torch.export.save(program, str(path))
    return program


def to_onnx(
    model: nn.Module, example: Tensor, path: str | os.PathLike, opset: int = 17, dynamo: bool = False
) -> Path:
    """Export ``model`` (eval mode) to ONNX at ``path`` with input ``x`` and output ``logits``, the batch
    dimension dynamic, then check the file with ``onnx.checker``. Needs the ``onnx`` package;
    returns ``path``.

    ``dynamo=False`` uses the TorchScript-based exporter: for plain classifiers it takes a fraction
    of a second, needs no ``onnxscript``, and its deprecation warning is silenced here.
    ``dynamo=True`` uses the ``torch.export``-based exporter (needs ``onnxscript``; slower to start).
    ``model`` is left in the mode it had.
    """
    onnx = _optional("onnx", "exporting to ONNX")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with metrics.eval_mode(model):
        _onnx_export(model, example, path, opset, dynamo)
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def _onnx_export(model: nn.Module, example: Tensor, path: Path, opset: int, dynamo: bool) -> None:
    names = dict(input_names=["x"], output_names=["logits"], opset_version=opset)
    if dynamo:
        _optional("onnxscript", "the torch.export-based ONNX exporter")
        example = torch.cat([example, example]) if example.shape[0] < 2 else example
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(
            model, (example,), str(path), dynamic_shapes=({0: batch},), dynamo=True, verbose=False, **names
        )
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            axes = {"x": {0: "batch"}, "logits": {0: "batch"}}
            torch.onnx.export(model, (example,), str(path), dynamic_axes=axes, dynamo=False, **names)


def onnx_predict(path: str | os.PathLike, x: Tensor, batch_size: int = 1000) -> Tensor:
    """The ONNX model at ``path`` run by ``onnxruntime`` (CPU) on ``x``, batched: (n, ...) -> (n, classes)
    float32 on the CPU. Needs the ``onnxruntime`` package."""
    ort = _optional("onnxruntime", "running an ONNX model")
    _checks.at_least("batch_size", batch_size, 1)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    array = x.detach().cpu().float().numpy()
    starts = range(0, len(array), batch_size)
    outputs = [session.run(None, {name: array[i : i + batch_size]})[0] for i in starts]
    return torch.from_numpy(np.concatenate(outputs))


def max_abs_difference(reference: Tensor, other: Tensor) -> float:
    """max |reference - other| over every entry, both (n, classes): how far an export strays from PyTorch."""
    _checks.same_shape("reference", reference, "other", other)
    return float((reference.detach().cpu().float() - other.detach().cpu().float()).abs().max())
