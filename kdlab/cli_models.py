"""The teacher and the student of ``kdlab distill``: a module loaded from a file, a student built
from a factory spec such as ``"mlp((64, 16, 10))"`` or ``"torchvision.models.resnet18(num_classes=3)"``.

A spec is parsed, never evaluated: the callee must be a factory of :data:`FACTORY_MODULES` and its
arguments Python literals (``ast.literal_eval``), so no code runs but that factory. Every failure
is a ``ValueError`` naming the option (``--teacher``, ``--student``), the value and what is valid.
"""

from __future__ import annotations

import ast
import importlib
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdlab import adapters

# Where a student factory may come from: a call of anything else is refused before it is imported.
FACTORY_MODULES = ("kdlab.models", "torchvision.models", "timm")


def first_line(error: BaseException) -> str:
    """``error``'s message on one line: its first non-empty line, else its type's name."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def load_module(path: str | Path, role: str) -> nn.Module:
    """The module saved at ``path``: a ``torch.export`` program (``.pt2``, as an
    :class:`~kdlab.adapters.ExportedModule`, which runs as it was exported) or a ``torch.save``'d module.
    ``role`` (``teacher``, ``student``) names the option in errors: a missing path, a folder, a file
    that torch cannot read, a module whose class cannot be imported here, or something else than a
    module."""
    path = Path(path)
    where = f"--{role} {str(path)!r}"
    valid = "give a file saved with torch.save(model, path) or a .pt2 from torch.export"
    if not path.exists():
        raise FileNotFoundError(f"{where}: the {role} file does not exist; {valid}")
    if path.is_dir():
        raise ValueError(f"{where} is a folder; {valid}")
    if path.suffix == ".pt2":
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{where} is not a torch.export program (not a zip archive); {valid}")
        # torch.export logs a traceback when a file is not of its current format, before trying older ones.
        logger = logging.getLogger("torch.export")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            program = torch.export.load(str(path))
        except Exception as error:  # a zip of something else, a truncated file...
            raise ValueError(
                f"{where} cannot be read as a torch.export program ({type(error).__name__}: "
                f"{first_line(error)}); {valid}"
            ) from None
        finally:
            logger.setLevel(level)
        return adapters.as_teacher(program)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as error:  # the pickled class, not importable here
        raise ValueError(
            f"{where} holds a model whose class cannot be imported here ({first_line(error)}): "
            "torch.save(model, path) stores the class by its module's name, so run where that module is "
            "importable, or export the model with torch.export to a .pt2 file"
        ) from None
    except (pickle.UnpicklingError, EOFError, RuntimeError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{where} is not a torch file ({first_line(error)}); {valid}") from None
    if not isinstance(loaded, nn.Module):
        raise ValueError(
            f"{where} holds a {type(loaded).__name__}, not a module; save the whole model "
            "with torch.save(model, path) (a state_dict alone does not say the architecture)"
        )
    return loaded


def _allowed(module_name: str) -> bool:
    return any(module_name == root or module_name.startswith(root + ".") for root in FACTORY_MODULES)


def _refuse(name: str, why: str) -> ValueError:
    from kdlab import models

    factories = [n for n in models.__all__ if callable(getattr(models, n)) and n.islower() and n[-1] != "_"]
    return ValueError(
        f"student {name!r} {why}; a student is built only by a kdlab.models factory ({factories}) or a "
        "callable under torchvision.models or timm (e.g. torchvision.models.resnet18), so that no other "
        "code runs"
    )


def _resolve(name: str) -> Any:
    """The factory ``name`` names: a :mod:`kdlab.models` name, or a public callable defined under
    :data:`FACTORY_MODULES`; anything else is refused before any module is imported."""
    from kdlab import models

    if "." not in name:
        if name not in models.__all__ or not callable(getattr(models, name)):
            raise _refuse(name, "is not a kdlab model")
        return getattr(models, name)
    module_name, _, attribute = name.rpartition(".")
    if not _allowed(module_name) or attribute.startswith("_"):
        raise _refuse(name, "is not an allowed model factory")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"student {name!r} cannot be imported ({error})") from None
    # A name re-exported from elsewhere (a torch.hub helper) is not a model factory of these packages.
    if not callable(factory) or not _allowed(getattr(factory, "__module__", None) or ""):
        raise _refuse(name, "is not an allowed model factory")
    return factory


def build_student(spec: str) -> nn.Module:
    """A student from ``spec``: a saved module's path, or a call such as ``lenet(image_size=8)`` of a
    :mod:`kdlab.models` factory or a callable under ``torchvision.models`` or ``timm``, whose arguments
    are Python literals (``ast.literal_eval``: no code runs but the factory; other names are refused)."""
    if Path(spec).exists():
        return load_module(spec, "student")
    try:
        tree = ast.parse(spec, mode="eval").body
    except SyntaxError:
        raise ValueError(
            f"student must be a file or a call like 'lenet(image_size=8)', got {spec!r}"
        ) from None
    if isinstance(tree, (ast.Name, ast.Attribute)):
        tree = ast.Call(func=tree, args=[], keywords=[])
    if not isinstance(tree, ast.Call):
        raise ValueError(f"student must be a file or a call like 'lenet(image_size=8)', got {spec!r}")
    try:
        args = [ast.literal_eval(a) for a in tree.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in tree.keywords}
    except ValueError:
        raise ValueError(f"the student's arguments must be Python literals, got {spec!r}") from None
    factory = _resolve(ast.unparse(tree.func))
    try:
        model = factory(*args, **kwargs)
    except OSError as error:  # urllib's URLError, a failed or refused download of pretrained weights
        raise ValueError(
            f"--student {spec!r} could not be built: {type(error).__name__}: {first_line(error)}; "
            "pretrained weights are downloaded on first use, so give weights=None (the default) offline, or "
            "build the model once with a network connection (the weights are cached) and torch.save it to a "
            "file"
        ) from None
    except Exception as error:  # wrong arguments (TypeError), a bad value (ValueError, KeyError)...
        raise ValueError(
            f"--student {spec!r} could not be built: {type(error).__name__}: {first_line(error)}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"student {spec!r} built a {type(model).__name__}, not an nn.Module")
    return model


# The command's options, as --config keys, with their defaults ("knobs" holds the -p knobs, and
# "environment" what a saved config.yaml records of the run that wrote it).
