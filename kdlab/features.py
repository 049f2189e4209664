"""Reading intermediate activations by module name, without changing the model."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor, nn


def layer_names(model: nn.Module) -> list[str]:
    """Names of every submodule, in definition order (``model.get_submodule`` accepts each)."""
    return [name for name, _ in model.named_modules() if name]


def _resolve(model: nn.Module, name: str) -> nn.Module:
    names = layer_names(model)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = f"; close matches: {close}" if close else ""
        shown = names if len(names) <= 40 else names[:40] + ["..."]
        raise KeyError(f"model has no layer named {name!r}{hint}; its layers are {shown}")
    return model.get_submodule(name)


def check_layers(model: nn.Module, names: str | Sequence[str], role: str) -> None:
    """Raise ``KeyError`` naming ``role`` (e.g. ``"hint layer"``) when a name is not a layer of
    ``model``, with close matches and the model's layer names; the recipes and :func:`kdlab.distill`
    check every layer name before they train."""
    for name in [names] if isinstance(names, str) else names:
        try:
            _resolve(model, name)
        except KeyError as error:
            raise KeyError(f"{role}: {error.args[0]}") from None


@contextmanager
def capture(
    model: nn.Module, names: str | Sequence[str], *, detach: bool = False
) -> Iterator[dict[str, Tensor]]:
    """Record the outputs of the named submodules during forward passes inside the block.

    >>> with capture(student, ["conv2", "fc"]) as features:
    ...     logits = student(x)
    >>> features["fc"].shape   # (batch, 32)

    Forward hooks, removed on exit (also on error). Each forward pass overwrites the previous
    value; the tensors keep their graph unless ``detach=True`` (teachers). An unknown name
    raises ``KeyError`` listing close matches and the model's layer names.
    """
    # A DistributedDataParallel wrapper (fit under torchrun) keeps the model's own layer names.
    model = (
        getattr(model, "module", model) if isinstance(model, nn.parallel.DistributedDataParallel) else model
    )
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("names must list at least one layer name, got an empty list")
    modules = {name: _resolve(model, name) for name in names}
    features: dict[str, Tensor] = {}
    handles = []

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs: tuple, output: Tensor) -> None:
            features[name] = output.detach() if detach else output

        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(hook_for(name)))
        yield features
    finally:
        for handle in handles:
            handle.remove()
