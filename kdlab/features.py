"""Reading intermediate activations by module name, without changing the model."""

from __future__ import annotations

import difflib
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor, nn

# Per layer (module object): whether its output has been seen modified in place after the layer
# returned, e.g. by torchvision's ReLU(inplace=True) after a batch norm. Until a layer has been seen
# once, capture copies its output and watches the original; afterwards it copies only if needed.
_OVERWRITTEN: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


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


class _Recorder:
    """The forward hooks of :func:`capture`: each layer's output, copied when an in-place operation
    later in the forward pass would overwrite it (known from an earlier pass, or not yet known);
    the original's version counter is compared at the end of the pass to learn which is the case."""

    def __init__(self, modules: dict[str, nn.Module], detach: bool) -> None:
        self.modules = modules
        self.detach = detach
        self.features: dict[str, Tensor] = {}
        self.watched: dict[str, tuple[Tensor, int, bool]] = {}

    def hook_for(self, name: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        module = self.modules[name]

        def hook(_module: nn.Module, _inputs: tuple, output: Tensor) -> None:
            value = output.detach() if self.detach else output
            if isinstance(output, Tensor):
                copy = _OVERWRITTEN.get(module, True)
                if not output.is_inference():  # inference tensors keep no version counter
                    self.watched[name] = (output, output._version, copy)
                value = value.clone() if copy else value
            self.features[name] = value

        return hook

    def check(self, *_args: object) -> None:
        """After a forward pass: learn which outputs were modified in place after their layer ran."""
        for name, (output, version, copied) in self.watched.items():
            overwritten = output._version != version
            module = self.modules[name]
            _OVERWRITTEN[module] = _OVERWRITTEN.get(module, False) or overwritten
            if overwritten and not copied:
                warnings.warn(
                    f"the output of layer {name!r} was modified in place after it was captured (an in-place "
                    "operation such as ReLU(inplace=True) follows it), so this pass captured the modified "
                    "value; later passes capture a copy", RuntimeWarning, stacklevel=2,
                )
        self.watched.clear()


@contextmanager
def capture(
    model: nn.Module, names: str | Sequence[str], *, detach: bool = False
) -> Iterator[dict[str, Tensor]]:
    """Record the outputs of the named submodules during forward passes inside the block.

    >>> with capture(student, ["conv2", "fc"]) as features:
    ...     logits = student(x)
    >>> features["fc"].shape   # (batch, 32)

    Forward hooks, removed on exit (also on error). Each forward pass overwrites the previous
    value; the tensors keep their graph unless ``detach=True`` (teachers). A value is the layer's
    own output even when an in-place operation later in the pass overwrites it (torchvision's
    ``ReLU(inplace=True)`` after ``layer1.0.bn1``): such outputs are copied when captured, as
    :func:`kdlab.methods.fitnets.features_until` would return them. An unknown name raises
    ``KeyError`` listing close matches and the model's layer names.
    """
    # A DistributedDataParallel wrapper (fit under torchrun) keeps the model's own layer names.
    model = (
        getattr(model, "module", model) if isinstance(model, nn.parallel.DistributedDataParallel) else model
    )
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("names must list at least one layer name, got an empty list")
    recorder = _Recorder({name: _resolve(model, name) for name in names}, detach)
    handles = []
    try:
        for name, module in recorder.modules.items():
            handles.append(module.register_forward_hook(recorder.hook_for(name)))
        handles.append(model.register_forward_hook(recorder.check))
        yield recorder.features
        recorder.check()
    finally:
        for handle in handles:
            handle.remove()
