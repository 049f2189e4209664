"""A content-addressed cache of trained models and teacher outputs.

An entry's key is a hash of what determines it: a name, the caller's parts (architecture, data,
hyper-parameters, seed) and the kdlab version, so a changed recipe never loads a stale model.
Entries live in ``$KDLAB_CACHE`` (default ``~/.cache/kdlab``) as ``<key>.pt`` with a
``<key>.sha256`` digest. A truncated, corrupted or foreign entry is detected, reported and
recomputed, never used; writes are atomic, and two processes computing the same entry take a
file lock so the second waits and then loads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kdlab import _io, metrics
from kdlab.data import Tensors
from kdlab.train import History

_KEY_ATTRIBUTE = "_kdlab_cache_key"


def cache_dir() -> Path:
    """``$KDLAB_CACHE`` or ``~/.cache/kdlab``."""
    return Path(os.environ.get("KDLAB_CACHE", Path.home() / ".cache" / "kdlab"))


def _version() -> str:
    from kdlab import __version__

    return __version__


def _json_default(value: Any) -> str:
    # A tensor's str() elides most of its values, so two different tensors could share a key:
    # a tensor in parts stands for its content hash instead.
    return f"tensor {tensor_digest(value)}" if isinstance(value, Tensor) else str(value)


def _as_json(parts: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(parts, default=_json_default))


def key(name: str, parts: Mapping[str, Any]) -> str:
    """The hash of ``name``, ``parts`` (JSON-able; tuples count as lists, a tensor as its
    :func:`tensor_digest`) and the kdlab version."""
    text = json.dumps(
        {"name": name, "parts": parts, "kdlab": _version()}, sort_keys=True, default=_json_default
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def tensor_digest(tensor: Tensor) -> str:
    """A short content hash of a tensor (its dtype, shape and bytes), to key data in ``parts``."""
    array = tensor.detach().cpu().contiguous()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype}{tuple(array.shape)}".encode())
    h.update(array.view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return h.hexdigest()


def data_digest(data: Tensors | Sequence[Tensor] | None) -> list[str] | None:
    """The :func:`tensor_digest` of each tensor of a data set (``None`` for none), for ``parts``:
    a trained model's cached History holds its test metrics, so its key names the test set too."""
    if data is None:
        return None
    return [tensor_digest(t) for t in (data.tensors if isinstance(data, Tensors) else data)]


@contextlib.contextmanager
def _locked(entry: str) -> Iterator[None]:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{entry}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(entry: str, name: str, parts: Mapping[str, Any]) -> dict | None:
    path, digest_path = cache_dir() / f"{entry}.pt", cache_dir() / f"{entry}.sha256"
    if not path.exists():
        return None
    try:
        data = path.read_bytes()
        if not digest_path.exists() or hashlib.sha256(data).hexdigest() != digest_path.read_text().strip():
            raise ValueError("its digest does not match its contents")
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        expected = _as_json(parts)
        if (
            payload.get("name") != name
            or payload.get("kdlab") != _version()
            or payload.get("parts") != expected
        ):
            raise ValueError("it was written for another name, version or parts")
        return payload
    except Exception as error:  # any unreadable entry is recomputed, never used
        warnings.warn(
            f"kdlab cache entry {path.name} ({name}) is unusable ({error}); recomputing", stacklevel=3
        )
        return None


def _write(entry: str, name: str, parts: Mapping[str, Any], payload: dict) -> None:
    payload = {
        **payload,
        "name": name,
        "kdlab": _version(),
        "parts": _as_json(parts),
    }
    folder = cache_dir()
    # The digest goes last: an entry whose digest is missing or stale is treated as corrupt.
    (folder / f"{entry}.sha256").unlink(missing_ok=True)
    data = _io.atomic_torch_save(payload, folder / f"{entry}.pt")
    _io.atomic_write_bytes(folder / f"{entry}.sha256", hashlib.sha256(data).hexdigest().encode())


def tensor(name: str, compute: Callable[[], Tensor], **parts: Any) -> Tensor:
    """``compute()`` once per (name, parts, version); later calls load the stored tensor (on CPU)."""
    entry = key(name, parts)
    with _locked(entry):
        payload = _read(entry, name, parts)
        if payload is None:
            value = compute().detach().cpu()
            _write(entry, name, parts, {"tensor": value})
            return value
        return payload["tensor"]


def trained(
    make_model: Callable[[], nn.Module],
    train: Callable[[nn.Module], History | list[History]],
    name: str,
    **parts: Any,
) -> tuple[nn.Module, History | list[History]]:
    """A model trained once and then loaded: ``train(make_model())`` on the first call.

    ``parts`` must name everything that determines the result (architecture, data, every
    hyper-parameter, the seed, and the test set when the History holds test metrics). Returns the
    model (on CPU when loaded, where ``train`` left it otherwise) and what ``train`` returned: its
    :class:`~kdlab.train.History`, or a list of them for a recipe of several stages. The model
    remembers its cache key, so :func:`logits` can cache its outputs.
    """
    entry = key(name, parts)
    with _locked(entry):
        model = make_model()
        payload = _read(entry, name, parts)
        if payload is None:
            history = train(model)
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            stored = [h.to_dict() for h in history] if isinstance(history, list) else history.to_dict()
            _write(entry, name, parts, {"state_dict": state, "history": stored})
        else:
            model.load_state_dict(payload["state_dict"])
            stored = payload["history"]
            if isinstance(stored, list):
                history = [History.from_dict(h) for h in stored]
            else:
                history = History.from_dict(stored)
    setattr(model, _KEY_ATTRIBUTE, entry)
    return model, history


def key_of(model: nn.Module) -> str | None:
    """The cache key of a model that came from :func:`trained` (``None`` for any other model).

    Recipes key cached outputs of a frozen teacher (logits, hints, FSP matrices, t-SNE P) by it.
    """
    return getattr(model, _KEY_ATTRIBUTE, None)


def weights_digest(model: nn.Module) -> str:
    """A content hash of a model's state (parameters and buffers), to key what is computed from it."""
    state = model.state_dict()
    return tensor_digest(torch.cat([v.detach().float().flatten().cpu() for v in state.values()]))


def logits(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """``model``'s logits on ``x`` (eval mode), cached when ``model`` came from :func:`trained`.

    The entry is keyed by the model's cache key and a content hash of ``x``; the result is on
    ``x``'s device. For augmented inputs do not cache: run the teacher per batch instead.
    """
    model_key = key_of(model)
    if model_key is None:
        return metrics.predict(model, x, batch_size)
    value = tensor(
        "logits", lambda: metrics.predict(model, x, batch_size), model=model_key, x=tensor_digest(x)
    )
    return value.to(x.device)


def clear() -> int:
    """Delete every entry; returns how many were removed."""
    folder = cache_dir()
    removed = 0
    for path in folder.glob("*.pt"):
        for companion in (path, path.with_suffix(".sha256"), path.with_suffix(".lock")):
            companion.unlink(missing_ok=True)
        removed += 1
    return removed
