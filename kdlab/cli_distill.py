"""``kdlab distill``: distil a saved teacher into a student from the command line, no Python written.

    kdlab distill --teacher teacher.pt --student "lenet(widths=(8, 16, 64), image_size=8)" \\
        --data digits --method hinton -p temperature=4 -p epochs=20 --out runs/student

The teacher is a file: a whole module saved with ``torch.save(model, path)`` (unpickled, so load
only files you trust) or a ``torch.export`` program (``.pt2``, run as it was exported). The student
is such a file too, or a call of a model factory with literal arguments: a :mod:`kdlab.models`
factory (``mlp(sizes=(64, 32, 10))``), or a callable under ``torchvision.models``
(``torchvision.models.resnet18(num_classes=10)``) or ``timm`` (when installed); any other name is
refused, and no code runs but that factory. Training goes through :func:`kdlab.api.distill`;
``--out`` receives ``student.pt`` (the trained module),
``results.json`` (method, knobs, accuracies, sizes, the per-epoch history) and, with ``--onnx``,
``student.onnx`` with its largest difference from PyTorch's outputs on the test set.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdlab import adapters, api, data, export, metrics, runtime

# Where a student factory may come from: a call of anything else is refused before it is imported.
FACTORY_MODULES = ("kdlab.models", "torchvision.models", "timm")


def parse_value(text: str) -> Any:
    """A ``-p`` value: a Python literal if it is one (``30``, ``[1, 2]``, ``None``), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=30", "device=cuda"]`` -> ``{"epochs": 30, "device": "cuda"}``."""
    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"parameter must look like name=value, got {pair!r}")
        parameters[name] = parse_value(value)
    return parameters


def load_module(path: str | Path, role: str) -> nn.Module:
    """The module saved at ``path``: a ``torch.export`` program (``.pt2``, as an
    :class:`~kdlab.adapters.ExportedModule`, which runs as it was exported) or a ``torch.save``'d module."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{role} file {str(path)!r} does not exist")
    if path.suffix == ".pt2":
        return adapters.as_teacher(torch.export.load(str(path)))
    loaded = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(loaded, nn.Module):
        raise ValueError(
            f"{role} file {str(path)!r} holds a {type(loaded).__name__}, not a module; save the whole model "
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
    model = _resolve(ast.unparse(tree.func))(*args, **kwargs)
    if not isinstance(model, nn.Module):
        raise ValueError(f"student {spec!r} built a {type(model).__name__}, not an nn.Module")
    return model


def run(args: argparse.Namespace) -> int:
    """The ``distill`` subcommand's handler: load, distil, write, print a summary; returns the exit code."""
    knobs = parse_parameters(args.parameter or [])
    knobs.setdefault("progress", False)
    if args.device is not None:
        knobs["device"] = args.device
    where = runtime.device(knobs.get("device"))
    split = data.load(args.data, train_size=args.train_size, test_size=args.test_size, seed=args.seed)
    split = split.to(where)
    teacher = load_module(args.teacher, "teacher").to(where)
    try:
        student, history = api.distill(
            teacher, build_student(args.student), split.train, split.test, method=args.method, **knobs
        )
    except (KeyError, TypeError) as error:  # the command prints ValueErrors cleanly; these read the same
        raise ValueError(error.args[0] if error.args else str(error)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(student.cpu(), out / "student.pt")
    student_logits = metrics.predict(student, split.test.x.cpu())
    teacher_logits = metrics.predict(teacher, split.test.x)
    record = {
        "method": args.method, "knobs": {k: str(v) if k == "device" else v for k, v in knobs.items()},
        "data": args.data, "train_size": len(split.train), "test_size": len(split.test),
        "teacher": {"test_accuracy": metrics.accuracy(teacher_logits, split.test.y),
                    "parameters": metrics.parameter_count(teacher), "bytes": export.size_bytes(teacher)},
        "student": {"test_accuracy": metrics.accuracy(student_logits, split.test.y.cpu()),
                    "parameters": metrics.parameter_count(student), "bytes": export.size_bytes(student)},
        "history": history.to_dict()["epochs"],
    }
    if args.onnx:
        path = export.to_onnx(student, split.test.x[:1].cpu(), out / "student.onnx")
        record["onnx"] = {"path": str(path), "max_abs_difference": export.max_abs_difference(
            student_logits, export.onnx_predict(path, split.test.x))}
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str))
    print(f"kdlab: {args.method}: teacher {record['teacher']['test_accuracy']:.4f}, student "
          f"{record['student']['test_accuracy']:.4f} test accuracy; wrote {out / 'student.pt'} and "
          f"{out / 'results.json'}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``distill`` subcommand to ``kdlab``'s subparsers (its handler is :func:`run`)."""
    parser = subparsers.add_parser(
        "distill", help="distil a saved teacher into a student on a data set",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--teacher", required=True, help="torch.save'd module or torch.export .pt2 file")
    parser.add_argument(
        "--student", required=True,
        help="a saved module, or a call with literal arguments of a kdlab.models factory (like "
        "'mlp((64, 32, 10))') or of a callable under torchvision.models or timm; nothing else is run",
    )
    parser.add_argument("--data", required=True, choices=data.NAMES, help="a kdlab data set")
    parser.add_argument("--method", default="hinton", choices=[m for m in api.METHODS if m != "tsne"])
    parser.add_argument(
        "-p", "--parameter", action="append", metavar="NAME=VALUE",
        help="a method or training knob (repeatable), e.g. temperature=4, epochs=20",
    )
    parser.add_argument("--train-size", type=int, help="a class-stratified slice of the training set")
    parser.add_argument("--test-size", type=int, help="a class-stratified slice of the test set")
    parser.add_argument("--seed", type=int, default=0, help="which training slice (with --train-size)")
    parser.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--out", default="distilled", help="output folder (default: ./distilled)")
    parser.add_argument("--onnx", action="store_true", help="also export the student to ONNX and check it")
    parser.set_defaults(handler=run)
    return parser
