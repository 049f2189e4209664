"""Dict batches, and models that take more than one input (Hugging Face's text classifiers).

kdlab's recipes pass a model one tensor, ``model(x)``, and batch, shuffle, cache and slice that
tensor along its first dimension. A dict batch (a Hugging Face dataset or collator, a torchvision
style dict) is read as ``(x, y)`` from its one input key (:data:`INPUT_KEYS`) and its one label key
(:data:`LABEL_KEYS`). When it also holds inputs a model takes as keywords (:data:`EXTRA_KEYS`: an
attention mask, token types), they are stacked with the input ids into one tensor ``x`` of shape
``(batch, len(keys), ...)``, and :func:`keyword_inputs` makes the models split it again through a
forward pre-hook: ``model(x)`` runs as ``model(input_ids=x[:, 0], attention_mask=x[:, 1])``, so a
padded batch is attended as the collator meant it, and the models' layer names stay their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

INPUT_KEYS = ("pixel_values", "input_ids", "inputs", "input", "images", "image", "x")
LABEL_KEYS = ("labels", "label", "targets", "target", "y")
# Inputs passed to the models as keywords beside the input key, in this order.
EXTRA_KEYS = ("attention_mask", "token_type_ids")


def keys_of(batch: Mapping[Any, Any], where: str) -> tuple[tuple[str, ...], str]:
    """The input keys of the dict batch ``where`` (e.g. ``"train batch 3"``: its input key, then those of
    :data:`EXTRA_KEYS` it holds) and its label key; a ``TypeError`` naming the keys for a dict kdlab
    cannot read."""
    keys = sorted(map(str, batch))
    inputs = [key for key in INPUT_KEYS if key in batch]
    labels = [key for key in LABEL_KEYS if key in batch]
    if len(inputs) != 1 or len(labels) != 1:
        raise TypeError(
            f"{where} is a dict with keys {keys}: kdlab reads a dict batch with one input key of "
            f"{list(INPUT_KEYS)} and one label key of {list(LABEL_KEYS)}, or (x, y) batches (a tuple: "
            "inputs, then labels)"
        )
    extras = tuple(key for key in EXTRA_KEYS if key in batch)
    other = sorted(set(keys) - {inputs[0], labels[0], *extras})
    if other:
        raise TypeError(
            f"{where} holds the key {other[0]!r}: kdlab passes the models their input ({inputs[0]!r}) and, "
            f"with token ids, {list(EXTRA_KEYS)} as keywords; drop the other columns (a datasets.Dataset: "
            f".remove_columns({other!r})) or wrap the model to take them"
        )
    return (inputs[0], *extras), labels[0]


def read(batch: Mapping[Any, Any], where: str, keys: Sequence[str] | None = None) -> tuple[Tensor, Any]:
    """The dict batch ``where`` as ``(x, y)``: ``x`` the input tensor, or the inputs stacked as
    ``(batch, len(keys), ...)`` when the batch has keyword inputs (see the module). With ``keys`` (those
    of the first training batch), a batch with other input keys is a ``TypeError`` naming both."""
    found, label = keys_of(batch, where)
    if keys is not None and tuple(keys) != found:
        raise TypeError(
            f"{where} has the inputs {list(found)}, but the models take {list(keys)} (the first "
            "training batch's): give every batch, and the test and val sets, the same keys"
        )
    tensors = [torch.as_tensor(batch[key]) for key in found]
    if len(tensors) == 1:
        return tensors[0], batch[label]
    first = tensors[0]
    if first.is_floating_point():
        raise TypeError(
            f"{where}: {found[0]!r} is {first.dtype} with keyword inputs {list(found[1:])}: kdlab "
            "passes an attention mask or token types only with token ids (an integer tensor)"
        )
    for key, tensor in zip(found[1:], tensors[1:], strict=True):
        if tensor.shape != first.shape:
            raise TypeError(
                f"{where}: {key!r} has shape {tuple(tensor.shape)}, {found[0]!r} "
                f"{tuple(first.shape)}; they must be the same"
            )
    return torch.stack([t.to(first.dtype) for t in tensors], dim=1), batch[label]


def _split_hook(keys: tuple[str, ...]) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs or len(args) != 1 or not isinstance(args[0], Tensor):
            return None  # a call of the user's own: left as it is
        x = args[0]
        if x.dim() < 2 or x.shape[1] != len(keys):
            raise ValueError(
                f"this model takes {list(keys)} stacked as x of shape (batch, {len(keys)}, ...) (the "
                f"training batches' keys), got x of shape {tuple(x.shape)}: give test and val the same keys"
            )
        return (), {key: x[:, i] for i, key in enumerate(keys)}

    hook.kdlab_inputs = True  # type: ignore[attr-defined]
    return hook


def keyword_inputs(model: nn.Module, keys: Sequence[str] | None) -> nn.Module:
    """Make ``model(x)``, for ``x`` stacked by :func:`read` from ``keys``, run as ``model(**{key: x[:, i]})``
    (a forward pre-hook; layer names unchanged). Nothing for ``None`` or a single key. Returns ``model``;
    :func:`restore_inputs` undoes it."""
    if keys is not None and len(keys) > 1:
        restore_inputs(model)
        model.register_forward_pre_hook(_split_hook(tuple(keys)), with_kwargs=True)
    return model


def restore_inputs(model: nn.Module) -> nn.Module:
    """Remove the hook of :func:`keyword_inputs` from ``model``."""
    for key, hook in list(model._forward_pre_hooks.items()):
        if getattr(hook, "kdlab_inputs", False):
            del model._forward_pre_hooks[key]
            model._forward_pre_hooks_with_kwargs.pop(key, None)
    return model
