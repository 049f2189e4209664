"""``kdlab distill``: distil a saved teacher into a student from the command line, no Python written.

    kdlab distill --teacher teacher.pt --student "lenet(widths=(8, 16, 64), image_size=8)" \\
        --data digits --method hinton -p temperature=4 -p epochs=20 --out runs/student
    kdlab distill --teacher teacher.pt --student "mlp((3072, 256, 5))" --data photos/ --image-size 32
    kdlab distill --teacher teacher.pt --student "mlp((64, 32, 10))" --data digits --val-fraction 0.1
    kdlab distill --config run.yaml -p epochs=5          # options from a file, a flag overriding it
    kdlab distill --config runs/student/config.yaml      # repeat a run exactly

The teacher is a file: a whole module saved with ``torch.save(model, path)`` (unpickled, so load
only files you trust) or a ``torch.export`` program (``.pt2``, run as it was exported). The student
is such a file too, or a call of a model factory with literal arguments: a :mod:`kdlab.models`
factory (``mlp(sizes=(64, 32, 10))``), or a callable under ``torchvision.models``
(``torchvision.models.resnet18(num_classes=10)``) or ``timm`` (when installed); any other name is
refused, and no code runs but that factory. The student's initial weights are drawn with the knob
``seed``. ``--method`` is any method of :data:`kdlab.api.METHODS` (``hinton``, ``logits``, ``dkd``,
``dist``, ``fitnets``, ``fsp``, ``tsne``, ``born_again``); ``-p NAME=VALUE`` sets its knobs
(:func:`kdlab.api.knobs_of` lists them with their defaults).

Data (``--data``): a kdlab data set (``digits``, ``mnist``, ``cifar10``, ``cifar100``,
``breast_cancer``; a folder of such a name is ``./NAME``), or your own, read by
:func:`kdlab.userdata.load`:

- an image folder, one sub-folder of images per class (torchvision's ImageFolder layout; classes
  in sorted order), read as float tensors in [0, 1] (one channel if every image is grayscale, else
  RGB), resized to N x N only with ``--image-size N`` (else all images must have one size); a
  folder holding just ``train/`` and ``test/``, each in that layout, gives both parts;
- a ``.npz`` file with arrays ``x`` and ``y`` (integer labels), optionally ``x_test`` and ``y_test``;
- a ``.pt`` file holding a dict of tensors with those keys (read with ``weights_only=True``).

uint8 inputs are divided by 255. Data without a test part get one held out: a class-stratified
``--test-fraction`` (default 0.2) drawn with ``--seed``.

Validation (``--val-fraction F``, for kdlab's data sets and your own alike): a class-stratified
share F of the training set (after ``--train-size``), drawn with ``--seed`` and never taken from
the test set, is held out as the ``val`` split of :func:`kdlab.distill`: the student of the epoch
with the fewest val errors is kept (``best_epoch``), and results.json records ``best_epoch`` and
the student's test accuracy at that epoch and at the last one (``student.best_epoch``,
``student.last_epoch``). The knob ``val`` itself (tensors) cannot be given with ``-p`` or in a file.

Config file (``--config FILE``, YAML): the options as keys (``teacher``, ``student``, ``data``,
``method``, ``out``, ``seed``, ``train_size``, ``test_size``, ``test_fraction``, ``val_fraction``,
``image_size``, ``device``, ``onnx``) and ``knobs:``, a mapping of knobs as ``-p`` gives them; flags
given on the command line override the file (a ``-p`` knob overrides that knob). An unknown key is an
error.
Paths are relative to the working directory, in a file as on the command line.

``--out`` receives ``student.pt`` (the trained module), ``results.json`` (method, every knob,
data, accuracies, sizes, versions and device, the per-epoch history), ``config.yaml`` (every
option and knob as used, defaults filled in, paths made absolute (the teacher, student and data
files, ``--out``, and the knobs ``log``, ``checkpoint`` and ``tensorboard``, which the run itself
also uses absolute), with the kdlab and torch versions and the device: ``kdlab distill --config
OUT/config.yaml`` repeats the run) and, with ``--onnx``, ``student.onnx`` with its largest
difference from PyTorch's outputs on the test set.

Errors: every failure the command can foresee is one line, ``kdlab: error: ...``, naming the
option, its value and what would be valid, with exit status 2, before any training: a teacher or
student file that is missing, a folder, not a torch file or holding no module; a student factory
that cannot be built (wrong arguments, pretrained weights that cannot be downloaded); a teacher or
student that cannot run on the data's examples (another number of channels, features or size);
an ``--out`` that is a file or cannot be written; bad data, options, knobs or config files. Any
other error of the run prints ``kdlab: error: <type>: <message>`` and exits with status 2; set the
environment variable ``KDLAB_DEBUG=1`` to see its Python traceback instead.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import yaml
from torch import nn

from kdlab import __version__, _checks, api, data, export, metrics, runtime, userdata
from kdlab.cli_models import build_student, first_line, load_module


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


OPTIONS: Mapping[str, Any] = MappingProxyType({
    "teacher": None, "student": None, "data": None, "method": "hinton", "out": "distilled", "seed": 0,
    "train_size": None, "test_size": None, "test_fraction": None, "val_fraction": None, "image_size": None,
    "device": None, "onnx": False,
})
REQUIRED = ("teacher", "student", "data")
CONFIG_KEYS = (*OPTIONS, "knobs", "environment")
_STRINGS = ("teacher", "student", "data", "method", "out", "device")
_INTEGERS = ("seed", "train_size", "test_size", "image_size")
_FRACTIONS = ("test_fraction", "val_fraction")
# Knobs that are paths: made absolute (in the run and in config.yaml), so that a saved config runs
# from anywhere and writes where the first run did.
PATH_KNOBS = ("checkpoint", "log", "tensorboard")


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, but ``1e-3`` is a float (YAML 1.2 and Python read it so; YAML 1.1 a
    string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_option(name: str, value: Any, where: str) -> None:
    """A config file's value of option ``name`` (``None`` always allowed: the default)."""
    if value is None:
        return
    if name in _STRINGS and not (isinstance(value, str) and value):
        raise ValueError(f"{where}: {name} must be a non-empty string, got {value!r}")
    if name in _INTEGERS and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
    if name in _FRACTIONS and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{where}: {name} must be a number in (0, 1), got {value!r}")
    if name == "onnx" and not isinstance(value, bool):
        raise ValueError(f"{where}: onnx must be true or false, got {value!r}")


def read_config(path: str | Path) -> dict[str, Any]:
    """The options of a ``--config`` YAML file (keys as in :data:`CONFIG_KEYS`; ``train-size`` may be
    spelled ``train_size``), checked: an unknown key is an error listing the valid ones."""
    path = Path(path)
    where = f"--config {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    try:
        loaded = yaml.load(path.read_text(), Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as error:
        raise ValueError(f"{where} is not valid YAML: {error}") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{where} must be a mapping of option: value, got a {type(loaded).__name__}")
    config: dict[str, Any] = {}
    for key, value in loaded.items():
        name = str(key).replace("-", "_")
        if name not in CONFIG_KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; the valid keys are {list(CONFIG_KEYS)}")
        if name in config:
            raise ValueError(f"{where}: {name} is given twice")
        _check_option(name, value, where)
        config[name] = value
    knobs = config.get("knobs") or {}
    if not isinstance(knobs, dict) or not all(isinstance(k, str) and k.isidentifier() for k in knobs):
        raise ValueError(f"{where}: knobs must be a mapping of knob names to values (as -p NAME=VALUE), "
                         f"got {knobs!r}")
    config["knobs"] = dict(knobs)
    environment = config.get("environment") or {}
    if not isinstance(environment, dict):
        raise ValueError(f"{where}: environment must be a mapping (kdlab writes it), got {environment!r}")
    _note_versions(environment, where)
    return config


def environment(where: torch.device) -> dict[str, str]:
    """What a run records of where it ran: the kdlab, torch and Python versions and the device."""
    device = str(where)
    if where.type == "cuda":
        device += f" ({torch.cuda.get_device_name(where)})"
    return {"kdlab": str(__version__), "torch": str(torch.__version__), "python": platform.python_version(),
            "device": device}


def _note_versions(recorded: Mapping[str, Any], where: str) -> None:
    here = {"kdlab": str(__version__), "torch": str(torch.__version__)}
    differ = [f"{name} {recorded[name]} (here {version})" for name, version in here.items()
              if name in recorded and str(recorded[name]) != version]
    if differ:
        print(f"kdlab: note: {where} was written with {', '.join(differ)}; the run may not repeat exactly",
              file=sys.stderr)


def _device_of(knobs: dict[str, Any], option: Any) -> Any:
    """The device option, or else a ``device`` knob (taken out of ``knobs``): one place for it."""
    knob = knobs.pop("device", None)
    return option if option is not None else knob


def resolve(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options and knobs of a run: the command line's flags over the ``--config`` file's values over
    the defaults (:data:`OPTIONS`; knobs: the method's registry entry, :func:`kdlab.api.knobs_of`). The
    ``device`` option is still a name here (``None``: automatic); knobs hold no ``device``."""
    config = read_config(args.config) if args.config else {}
    file_knobs = dict(config.get("knobs") or {})
    flag_knobs = parse_parameters(args.parameter or [])
    config["device"] = _device_of(file_knobs, config.get("device"))
    flag_device = _device_of(flag_knobs, args.device)
    options = {}
    for name, default in OPTIONS.items():
        given = flag_device if name == "device" else getattr(args, name)
        options[name] = given if given is not None else (
            config[name] if config.get(name) is not None else default)
    missing = [name for name in REQUIRED if options[name] is None]
    if missing:
        raise ValueError(
            f"{', '.join(_flag(n) for n in missing)} {'is' if len(missing) == 1 else 'are'} required: give "
            f"{'it' if len(missing) == 1 else 'them'} on the command line or in a --config file "
            f"({', '.join(n + ': ...' for n in missing)})"
        )
    _checks.choice("method", options["method"], api.METHODS)
    for name in _FRACTIONS:
        if options[name] is not None and not 0 < options[name] < 1:
            raise ValueError(f"{_flag(name)} must be a number in (0, 1), got {options[name]!r}")
    knobs = {**file_knobs, **flag_knobs}
    knobs.setdefault("progress", False)
    if knobs.pop("val", None) is not None:  # val: null, as config.yaml files of older kdlab versions hold
        raise ValueError(
            "knob val takes a validation split (tensors), which a command line or config.yaml cannot hold: "
            "give --val-fraction F (val_fraction: F in a --config file) to hold out a class-stratified "
            "share F of the training set as the val split on which the best epoch is selected"
        )
    if "callbacks" in knobs:
        raise ValueError(
            "knob callbacks takes Python functions, which a command line or config.yaml cannot hold: call "
            "kdlab.distill(..., callbacks=[...]) from Python, or give -p log=<a CSV path> or "
            "-p tensorboard=<a folder>"
        )
    defaults = {k: v for k, v in api.knobs_of(options["method"]).items()
                if k not in ("device", "callbacks", "val")}
    unknown = sorted(set(knobs) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown knob(s) {unknown} for method {options['method']!r} (-p or knobs:); its knobs are "
            f"{sorted(defaults)}"
        )
    knobs = {**defaults, **knobs}
    for name in PATH_KNOBS:
        if isinstance(knobs.get(name), str) and knobs[name]:
            knobs[name] = str(Path(knobs[name]).expanduser().resolve())
    for name, value in knobs.items():
        _check_writable(f"knob {name}", value)
    if isinstance(knobs["seed"], bool) or not isinstance(knobs["seed"], int):
        raise ValueError(f"knob seed must be an integer, got {knobs['seed']!r}")
    return options, knobs


def _check_writable(name: str, value: Any) -> None:
    """Refuse a value that config.yaml could not hold (and so could not repeat)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_writable(name, item)
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for item in value.values():
            _check_writable(name, item)
        return
    raise ValueError(
        f"{name} = {value!r} (a {type(value).__name__}) cannot be written to config.yaml; give a number, "
        "string, bool, None, or a list or mapping of those"
    )


@dataclass(frozen=True)
class _Data:
    """What ``--data`` gave: the ``split`` (its train part less the val split), the ``val`` split held
    out of the training set (``None`` without ``--val-fraction``), the class names of an image folder
    (else ``None``), the test fraction held out (``None`` when the data had a test part) and the data as
    config.yaml records them (a kdlab name or an absolute path)."""

    split: data.Split
    val: data.Tensors | None
    classes: tuple[str, ...] | None
    test_fraction: float | None
    source: str


def _load_data(options: dict[str, Any]) -> _Data:
    """The data of ``--data``, sliced by ``--train-size``/``--test-size``, with the class-stratified
    ``--val-fraction`` of the (sliced) training set held out as the val split, drawn with ``--seed``."""
    source = options["data"]
    if source in data.NAMES:
        for name in ("test_fraction", "image_size"):
            if options[name] is not None:
                raise ValueError(
                    f"{_flag(name)} applies to your own data (an image folder, .npz or .pt file), not to "
                    f"kdlab's data set {source!r}"
                )
        split = data.load(source, train_size=options["train_size"], test_size=options["test_size"],
                          seed=options["seed"])
        classes, test_fraction, recorded = None, None, source
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"--data {source!r} is neither one of kdlab's data sets {list(data.NAMES)} nor an existing "
                f"file or folder; a path must be {userdata.FORMATS}"
            )
        loaded = userdata.load(path, test_fraction=options["test_fraction"], seed=options["seed"],
                               image_size=options["image_size"], argument="--data")
        split = loaded.split
        parts = {"train": split.train, "test": split.test}
        slices = (("train", options["train_size"], options["seed"]), ("test", options["test_size"], 0))
        for part, size, seed in slices:
            if size is not None:
                try:
                    parts[part] = parts[part].subset(size, seed)
                except ValueError as error:
                    raise ValueError(f"{_flag(part + '_size')} {size}: {error}") from None
        split = data.Split(split.name, parts["train"], parts["test"], split.num_classes)
        classes, test_fraction, recorded = loaded.classes, loaded.test_fraction, str(path.resolve())
    val = None
    if options["val_fraction"] is not None:
        train, val = userdata.stratified_split(
            split.train, options["val_fraction"], options["seed"], f"the training set of --data {source!r}",
            flag="--val-fraction",
        )
        split = data.Split(split.name, train, split.test, split.num_classes)
    return _Data(split, val, classes, test_fraction, recorded)


def _as_recorded(spec: str) -> str:
    """A file's absolute path (so that a saved config runs from anywhere), else the spec itself."""
    return str(Path(spec).resolve()) if Path(spec).exists() else spec


def _check_out(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that is a file or cannot be created or written."""
    where = f"--out {str(out)!r}"
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"{where} is a file; give a folder (created if missing) for student.pt, results.json and "
            "config.yaml"
        )
    existing = out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{where} cannot be created: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{where} cannot be written: the folder {str(existing)!r} is not writable")


def _check_runs(model: nn.Module, role: str, spec: str, loaded: _Data, x: torch.Tensor) -> None:
    """Run ``model`` (the ``--teacher`` or ``--student``) on two examples of the data, in eval mode and
    without gradients, so that inputs it cannot take (another number of channels, features or another
    size) are named before any training; a student with lazy (not yet shaped) layers is left to
    :func:`kdlab.distill`, which shapes them."""
    if any(nn.parameter.is_lazy(p) for p in model.parameters()):
        return
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            model.eval()
            model(x[:2])
    except Exception as error:
        shape = tuple(x.shape[1:])
        images = loaded.classes is not None
        layout = {3: "channels, height, width", 1: "features"}.get(len(shape), "")
        if images and len(shape) == 3 and shape[0] == 1:
            layout += "; the images are all grayscale, so one channel"
        resize = " (or --image-size N to resize the images)" if images else ""
        layout = f" ({layout})" if layout else ""
        raise ValueError(
            f"--{role} {spec!r} fails on the examples of --data {loaded.source!r}, each of shape {shape}"
            f"{layout}: {type(error).__name__}: {first_line(error)}; give a {role} built for such "
            f"inputs{resize}"
        ) from None
    finally:
        model.train(was_training)


def run(args: argparse.Namespace) -> int:
    """The ``distill`` subcommand's handler: resolve the options, check the output folder, load the
    teacher, build the student, load the data, check that both models run on it, distil, write, print a
    summary; returns the exit code. Every check runs before any training."""
    options, knobs = resolve(args)
    try:
        where = runtime.device(options["device"])
    except RuntimeError as error:
        raise ValueError(f"--device {options['device']}: {error}") from None
    out = Path(options["out"])
    _check_out(out)
    teacher = load_module(options["teacher"], "teacher")
    # The student's initial weights are drawn with the seed knob: a run repeats from its config.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(knobs["seed"])
        student = build_student(options["student"])
    loaded = _load_data(options)
    split = loaded.split.to(where)
    val = loaded.val.to(where) if loaded.val is not None else None
    teacher, student = teacher.to(where), student.to(where)
    _check_runs(teacher, "teacher", options["teacher"], loaded, split.train.x)
    _check_runs(student, "student", options["student"], loaded, split.train.x)
    try:
        student, history = api.distill(
            teacher, student, split.train, split.test, method=options["method"], **knobs, val=val,
            device=where,
        )
    except (KeyError, TypeError) as error:  # the command prints ValueErrors cleanly; these read the same
        raise ValueError(error.args[0] if error.args else str(error)) from None
    out.mkdir(parents=True, exist_ok=True)
    env = environment(where)
    config = {
        **options, "teacher": _as_recorded(options["teacher"]), "student": _as_recorded(options["student"]),
        "data": loaded.source, "out": str(out.resolve()), "test_fraction": loaded.test_fraction,
        "device": str(where), "knobs": knobs, "environment": env,
    }
    torch.save(student.cpu(), out / "student.pt")
    student_logits = metrics.predict(student, split.test.x.cpu())
    teacher_logits = metrics.predict(teacher, split.test.x)
    student_record: dict[str, Any] = {
        "test_accuracy": metrics.accuracy(student_logits, split.test.y.cpu()),
        "parameters": metrics.parameter_count(student), "bytes": export.size_bytes(student),
    }
    if history.best_epoch is not None:  # selected on the val split: student.pt holds that epoch's weights
        student_record["weights"] = f"epoch {history.best_epoch} (best_epoch, selected on the val split)"
        for label, epoch, read in (("best_epoch", history.best_epoch, history.best),
                                   ("last_epoch", len(history), history.last)):
            student_record[label] = {"epoch": epoch, "val_accuracy": read("val_accuracy"),
                                     "test_accuracy": read("test_accuracy")}
    record = {
        "method": options["method"], "knobs": {**knobs, "device": str(where)},
        "data": loaded.source, "train_size": len(split.train), "test_size": len(split.test),
        "val_size": len(val) if val is not None else None, "test_fraction": loaded.test_fraction,
        "val_fraction": options["val_fraction"], "seed": options["seed"],
        **({"classes": list(loaded.classes)} if loaded.classes is not None else {}),
        "teacher": {"test_accuracy": metrics.accuracy(teacher_logits, split.test.y),
                    "parameters": metrics.parameter_count(teacher), "bytes": export.size_bytes(teacher)},
        "student": student_record,
        "best_epoch": history.best_epoch,
        "environment": env,
        "history": history.to_dict()["epochs"],
    }
    if options["onnx"]:
        path = export.to_onnx(student, split.test.x[:1].cpu(), out / "student.onnx")
        record["onnx"] = {"path": str(path), "max_abs_difference": export.max_abs_difference(
            student_logits, export.onnx_predict(path, split.test.x))}
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str))
    (out / "config.yaml").write_text(
        "# kdlab distill: this run's resolved configuration; repeat it with\n"
        f"#   kdlab distill --config {out.resolve() / 'config.yaml'}\n"
        "# (flags given with it override its values; environment records where it ran, and is not read)\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    accuracy = f"student {record['student']['test_accuracy']:.4f} test accuracy"
    if history.best_epoch is not None:
        accuracy += (f" at its best epoch {history.best_epoch} of {len(history)}, selected on the val split "
                     f"({record['student']['last_epoch']['test_accuracy']:.4f} at the last)")
    print(f"kdlab: {options['method']}: teacher {record['teacher']['test_accuracy']:.4f}, {accuracy}; wrote "
          f"{out / 'student.pt'}, {out / 'results.json'} and {out / 'config.yaml'}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``distill`` subcommand to ``kdlab``'s subparsers (its handler is :func:`run`)."""
    parser = subparsers.add_parser(
        "distill", help="distil a saved teacher into a student on a data set or your own data",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", metavar="FILE",
        help="a YAML file of these options (teacher: ..., data: ..., knobs: {...}), e.g. a run's "
        "OUT/config.yaml; flags given too override its values",
    )
    parser.add_argument("--teacher", help="torch.save'd module or torch.export .pt2 file (required)")
    parser.add_argument(
        "--student",
        help="a saved module, or a call with literal arguments of a kdlab.models factory (like "
        "'mlp((64, 32, 10))') or of a callable under torchvision.models or timm; nothing else is run "
        "(required)",
    )
    parser.add_argument(
        "--data", metavar="NAME_OR_PATH",
        help=f"a kdlab data set ({', '.join(data.NAMES)}) or your own: {userdata.FORMATS} (required)",
    )
    parser.add_argument(
        "--image-size", type=int, metavar="N",
        help="resize every image of an image folder to N x N (default: none; the images must then have "
        "one size)",
    )
    parser.add_argument(
        "--test-fraction", type=float, metavar="F",
        help="share of each class held out as the test part when your data have none (x_test/y_test, a "
        f"test folder) (default {userdata.DEFAULT_TEST_FRACTION})",
    )
    parser.add_argument(
        "--val-fraction", type=float, metavar="F",
        help="hold out a class-stratified share F of the training set (after --train-size; drawn with "
        "--seed; never from the test set) as a validation split: the student of the epoch with the fewest "
        "val errors is kept, and results.json records best_epoch with the best and last epochs' test "
        "accuracies (default: none; the last epoch's student)",
    )
    parser.add_argument("--method", choices=api.METHODS, help="the distillation method (default hinton)")
    parser.add_argument(
        "-p", "--parameter", action="append", metavar="NAME=VALUE",
        help="a method or training knob (repeatable), e.g. temperature=4, epochs=20, seed=1",
    )
    parser.add_argument("--train-size", type=int, help="a class-stratified slice of the training set")
    parser.add_argument("--test-size", type=int, help="a class-stratified slice of the test set")
    parser.add_argument(
        "--seed", type=int,
        help="which held-out test part (--test-fraction), training slice (--train-size) and val split "
        "(--val-fraction) (default 0); the training seed is the knob -p seed=S",
    )
    parser.add_argument("--device", help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--out", help="output folder (default: ./distilled)")
    parser.add_argument(
        "--onnx", action=argparse.BooleanOptionalAction, help="also export the student to ONNX and check it",
    )
    parser.set_defaults(handler=run)
    return parser
