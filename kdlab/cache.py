"""A content-addressed cache of trained models and teacher outputs.

**The contract.** An entry is keyed by everything that determines it, and nothing else:

- the *code*: a digest of the library's sources (:func:`code_digest`: data, models, features,
  losses, methods, train, cache...; not the book's machinery in :mod:`kdlab.book`), so an edit to a
  loss or a recipe retrains, and an edit to a plot, a claim or a chapter does not;
- the *initial state* of the model: :func:`trained` builds the model and keys the entry by its
  architecture and starting weights (:func:`model_digest`), so a pre-trained student and a random
  one never share an entry;
- the *data*, by content (every tensor by :func:`tensor_digest`, never by its elided ``str``);
- *every knob*: the caller's parts, where a function (an objective) stands for its code's name and
  the values it closes over, a module for its content.

A part that cannot be keyed that way is an error, never a guess. No model object carries a key:
a model that came from :func:`trained` is remembered (weakly) as such, and its outputs are keyed
by its current content, so a copy of it, or the same object trained further, never reads another
model's outputs. A wrong hit is a bug; a miss only costs time.

Entries live in ``$KDLAB_CACHE`` (default ``~/.cache/kdlab``) as ``<key>.pt`` with a
``<key>.sha256`` digest. A truncated, corrupted or foreign entry is detected, reported and
recomputed, never used; writes are atomic, and two processes computing the same entry take a
file lock so the second waits and then loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import inspect
import io
import json
import os
import sys
import types
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from kdlab import _io, dry_run, metrics
from kdlab.data import Tensors
from kdlab.train import History

# The models that came from trained(): their outputs may be cached (keyed by their content).
_FROM_CACHE: weakref.WeakSet[nn.Module] = weakref.WeakSet()
_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """``$KDLAB_CACHE`` or ``~/.cache/kdlab``."""
    return Path(os.environ.get("KDLAB_CACHE", Path.home() / ".cache" / "kdlab"))


def _version() -> str:
    from kdlab import __version__

    return __version__


def library_sources(package: Path = _PACKAGE) -> list[Path]:
    """The library's source files under ``package``: every ``.py`` but the book's machinery
    (``book/``) and the command-line front door (``cli.py``), which compute no cached value."""
    return sorted(
        path for path in package.rglob("*.py")
        if "book" not in path.relative_to(package).parts[:-1] and path.name != "cli.py"
    )


@functools.cache
def code_digest(package: Path = _PACKAGE) -> str:
    """A hash of the library's sources (:func:`library_sources`): part of every key."""
    h = hashlib.sha256()
    for path in library_sources(package):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:32]


def _in_library(module: str | None) -> bool:
    """Whether ``module`` is one of the library's, whose source :func:`code_digest` covers."""
    if module is None or not (module == "kdlab" or module.startswith("kdlab.")):
        return False
    return not (module == "kdlab.cli" or module == "kdlab.book" or module.startswith("kdlab.book."))


def _class_code(cls: type) -> str:
    """What stands for a module class's code in :func:`model_digest`: nothing for the library's
    classes (in :func:`code_digest`), the package version for torch's and torchvision's, and the
    class's source for any other; a class whose source cannot be read cannot be keyed."""
    package = cls.__module__.split(".")[0]
    if _in_library(cls.__module__):
        return ""
    if package in ("torch", "torchvision", "timm", "transformers"):
        return f"{package} {getattr(sys.modules.get(package), '__version__', '?')}"
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        raise TypeError(
            f"cannot key a model of class {cls.__qualname__!r} (module {cls.__module__!r}): its source is "
            "not available, so an edit of its forward could not be seen; define it in a module file, or "
            "cache=False"
        ) from None


def _function_parts(function: types.FunctionType) -> dict[str, Any]:
    # A function stands for its code's name (the code itself is in code_digest) and every value it
    # closes over or takes by default: two closures of one recipe with other knobs get other keys.
    if not _in_library(function.__module__):
        raise TypeError(
            f"cannot key the function {function.__qualname__!r} of module {function.__module__!r}: only "
            "kdlab's code is in the key's code digest; pass its knobs as parts instead"
        )
    cells = {}
    for name, cell in zip(function.__code__.co_freevars, function.__closure__ or (), strict=True):
        try:
            cells[name] = cell.cell_contents
        except ValueError:  # a name the function closes over that is not bound yet
            cells[name] = None
    return {"function": f"{function.__module__}.{function.__qualname__}", "cells": cells,
            "defaults": function.__defaults__, "kwdefaults": function.__kwdefaults__}


def _json_default(value: Any) -> Any:
    """How a part that JSON cannot write is keyed: by content, or an error naming its type."""
    if isinstance(value, Tensors):
        return {"tensors": [tensor_digest(t) for t in value.tensors]}
    if isinstance(value, Tensor):
        return f"tensor {tensor_digest(value)}"
    if isinstance(value, np.ndarray):
        return f"array {tensor_digest(torch.from_numpy(np.ascontiguousarray(value)))}"
    if isinstance(value, nn.Module):
        return f"module {model_digest(value)}"
    if isinstance(value, (torch.device, torch.dtype)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, functools.partial):
        return {"partial": value.func, "args": value.args, "keywords": value.keywords}
    if isinstance(value, types.FunctionType):
        return _function_parts(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.frozen:
        return {"dataclass": f"{type(value).__module__}.{type(value).__qualname__}",
                "fields": {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}
    raise TypeError(
        f"cannot key a {type(value).__name__} ({value!r:.80}): a cache key holds JSON values, tensors, "
        "modules, frozen dataclasses and kdlab functions; leave cache off or pass what determines it"
    )


def _as_json(parts: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(parts, default=_json_default))


def fingerprint(value: Any) -> str:
    """``value`` as the JSON text a key is made of (tensors, data and modules by content, kdlab
    functions by code and closure), without the code digest: a ``TypeError`` for what cannot be
    keyed (a function outside kdlab)."""
    return json.dumps(value, sort_keys=True, default=_json_default)


def key(name: str, parts: Mapping[str, Any]) -> str:
    """The hash of ``name``, ``parts`` (tuples count as lists; tensors, data and modules by content,
    functions by name and closure, see :func:`_json_default`), the kdlab version and
    :func:`code_digest`; in a dry run (:mod:`kdlab.dry_run`) also ``"dry_run"``: its steps an
    epoch, so a model trained for two steps never answers a real run's key, nor one of twenty."""
    keyed = {"name": name, "parts": parts, "kdlab": _version(), "code": code_digest()}
    if dry_run.active():
        keyed["dry_run"] = dry_run.steps_per_epoch()
    text = json.dumps(keyed, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def tensor_digest(tensor: Tensor) -> str:
    """A short content hash of a tensor (its dtype, shape and bytes), to key data in ``parts``."""
    array = tensor.detach().cpu().contiguous()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype}{tuple(array.shape)}".encode())
    h.update(array.reshape(-1).view(torch.uint8).numpy().tobytes() if array.numel() else b"")
    return h.hexdigest()


def model_digest(model: nn.Module) -> str:
    """A content hash of a model: its architecture (``repr``), the code of each module class
    (:func:`_class_code`), each module's public plain attributes (hyper-parameters a ``repr`` may
    not show, such as a max-norm bound), which parameters are trained (``requires_grad``) and its
    state (every parameter and buffer by name, dtype, shape and bytes). Two models with the same
    digest compute the same outputs and train the same parameters."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(model).encode())
    plain = (bool, int, float, str, tuple, type(None))
    for name, module in model.named_modules():
        cls = type(module)
        settings = {k: v for k, v in sorted(vars(module).items())
                    if not k.startswith("_") and k != "training" and isinstance(v, plain)}
        h.update(f"{name}\0{cls.__module__}.{cls.__qualname__}\0{_class_code(cls)}\0{settings!r}".encode())
    for name, parameter in model.named_parameters():
        h.update(f"{name} requires_grad={parameter.requires_grad}".encode())
    for name, value in model.state_dict().items():
        h.update(name.encode() + b"\0" + tensor_digest(value).encode())
    return h.hexdigest()


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
        def text(value: Any) -> str:  # NaN != NaN as objects; their JSON texts compare equal
            return json.dumps(value, sort_keys=True, default=_json_default)

        if (
            payload.get("name") != name
            or payload.get("kdlab") != _version()
            or payload.get("code") != code_digest()
            or text(payload.get("parts")) != text(_as_json(parts))
        ):
            raise ValueError("it was written for another name, version, code or parts")
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
        "code": code_digest(),
        "parts": _as_json(parts),
    }
    folder = cache_dir()
    # The digest goes last: an entry whose digest is missing or stale is treated as corrupt.
    (folder / f"{entry}.sha256").unlink(missing_ok=True)
    data = _io.atomic_torch_save(payload, folder / f"{entry}.pt")
    _io.atomic_write_bytes(folder / f"{entry}.sha256", hashlib.sha256(data).hexdigest().encode())


def tensor(name: str, compute: Callable[[], Tensor], /, **parts: Any) -> Tensor:
    """``compute()`` once per (name, parts, code); later calls load the stored tensor (on CPU)."""
    parts = _as_json(parts)
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
    /,
    **parts: Any,
) -> tuple[nn.Module, History | list[History]]:
    """A model trained once and then loaded: ``train(make_model())`` on the first call.

    The model is built first, and the entry is keyed by ``name``, ``parts``, the code and the
    built model's architecture and initial state (:func:`model_digest`), so ``parts`` must name
    everything else that determines the result (data, every knob, the seed of the batch order, and
    the test set when the History holds test metrics). Returns the model (on CPU when loaded, where
    ``train`` left it otherwise) and what ``train`` returned: its
    :class:`~kdlab.train.History`, or a list of them for a recipe of several stages.
    """
    model = make_model()
    # Frozen now: an objective's closure may change as it trains (a step counter), its key must not.
    parts = _as_json({**parts, "initial model": model_digest(model)})
    entry = key(name, parts)
    with _locked(entry):
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
    _FROM_CACHE.add(model)
    return model, history


def key_of(model: nn.Module) -> str | None:
    """The content key of a model that came from :func:`trained` (:func:`model_digest` of its
    current state), ``None`` for any other model, copies of cached models included.

    Recipes key cached outputs of a frozen teacher (logits, hints, FSP matrices) by it; a model
    trained further after it came from the cache gets the key of its new weights.
    """
    return model_digest(model) if model in _FROM_CACHE else None


def logits(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """``model``'s logits on ``x`` (eval mode), cached when ``model`` came from :func:`trained`.

    The entry is keyed by the model's content (:func:`key_of`) and a content hash of ``x``; the
    result is on ``x``'s device. For augmented inputs do not cache: run the teacher per batch instead.
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
