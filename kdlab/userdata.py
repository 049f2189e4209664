"""A practitioner's own data as kdlab tensors: an image folder, a ``.npz`` file or a ``.pt`` file.

:func:`load` reads any of them into a :class:`~kdlab.data.Split` (the ``kdlab distill --data PATH``
command calls it):

- **an image folder** in torchvision's ImageFolder layout, one sub-folder per class
  (``root/cat/001.png``, ``root/dog/xyz.jpg``; classes are numbered in the sorted order of their
  folder names). It is listed with ``torchvision.datasets.ImageFolder`` when torchvision is
  installed (else the same layout is read directly) and every image is read with Pillow into a
  float tensor in [0, 1], (channels, height, width): one channel when every image is grayscale,
  else three (RGB; an alpha channel is dropped). Images are resized (to ``image_size`` x
  ``image_size``, bilinear) only when ``image_size`` is given; otherwise all must have one size.
  A folder whose only sub-folders are ``train`` and ``test``, each in that layout, gives both parts.
- **a ``.npz`` file** (``numpy.savez``) with arrays ``x`` (inputs, one row per example: a table
  (n, features) or images (n, channels, height, width)) and ``y`` (n integer class labels 0..C-1),
  and optionally ``x_test`` and ``y_test``. Read without pickle.
- **a ``.pt`` file** (``torch.save``) holding a dict of tensors with the same keys; loaded with
  ``weights_only=True``, so no code in the file runs.

Inputs become float32: ``uint8`` arrays are read as 8-bit images (divided by 255), other numbers
are converted as they are. Without a test part in the file, a held-out test part is drawn from the
examples: a class-stratified ``test_fraction`` (default 0.2), fixed by ``seed`` (the command's
``--val-fraction`` holds out its validation split from the training part in the same way,
:func:`stratified_split`). Everything is
read into memory, as kdlab's own data sets are (fine for thousands of small images; a larger set
is better given to :func:`kdlab.distill` as a ``DataLoader``).

Every error names the argument (``argument``, ``--data`` for the command line), the value and
what is valid: a path that is not one of these, missing keys, inputs and labels of different
lengths, labels that are not integers, an empty folder or class, images of different sizes (two
such files are named).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kdlab.data import Split, Tensors

DEFAULT_TEST_FRACTION = 0.2

# What torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS), for the reader
# used without torchvision.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# Pillow modes read as one grayscale channel; every other mode is read as RGB.
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

FORMATS = (
    "an image folder (one sub-folder of images per class, as torchvision's ImageFolder), a .npz file "
    "with arrays x and y (optionally x_test, y_test), or a .pt file holding a dict of tensors x and y "
    "(optionally x_test, y_test)"
)


@dataclass(frozen=True)
class UserData:
    """What :func:`load` read: the ``split`` (train and test parts), the class names of an image folder
    (``classes``, in label order; ``None`` for a file), and the ``test_fraction`` held out of the
    examples (``None`` when the data brought their own test part)."""

    split: Split
    classes: tuple[str, ...] | None
    test_fraction: float | None


def load(
    source: str | os.PathLike,
    *,
    test_fraction: float | None = None,
    seed: int = 0,
    image_size: int | None = None,
    argument: str = "source",
) -> UserData:
    """Read ``source`` (an image folder, a ``.npz`` or a ``.pt`` file; see the module) into tensors.

    ``test_fraction`` (in (0, 1); ``None``: :data:`DEFAULT_TEST_FRACTION`) is the class-stratified share
    held out as the test part, drawn with ``seed``, when the data have no test part of their own (giving
    it for data that have one is an error). ``image_size`` resizes every image of a folder to that square
    size (an error for a file). ``argument`` is the name errors give the source (``--data``).
    """
    path = Path(source)
    where = f"{argument} {str(source)!r}"
    if test_fraction is not None:
        _check_fraction(test_fraction)
    if path.is_dir():
        parts, classes = _read_folder(path, image_size, where)
    elif path.is_file():
        if image_size is not None:
            raise ValueError(f"--image-size {image_size} resizes the images of a folder; {where} is a file")
        parts, classes = _read_file(path, where), None
    else:
        raise FileNotFoundError(f"{where} does not exist; it must be {FORMATS}")
    train, test = parts
    if test is not None:
        if test_fraction is not None:
            raise ValueError(
                f"--test-fraction {test_fraction} draws a test part, but {where} has its own test part "
                "(x_test and y_test, or a test folder); leave --test-fraction out"
            )
        fraction = None
    else:
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        train, test = stratified_split(train, fraction, seed, where)
    num_classes = int(max(train.y.max(), test.y.max())) + 1 if classes is None else len(classes)
    return UserData(Split(str(source), train, test, num_classes), classes, fraction)


def _check_fraction(fraction: float, flag: str = "--test-fraction") -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"{flag} must be a number in (0, 1), got {fraction!r}")


def stratified_split(
    tensors: Tensors, fraction: float, seed: int, where: str = "the data", flag: str = "--test-fraction"
) -> tuple[Tensors, Tensors]:
    """``tensors`` split into (kept, held out): about ``fraction`` of every class (rounded; at least one
    example of each class with two or more, never all of them) is held out, drawn with ``seed``: the
    test part for ``--test-fraction``, the validation split for ``--val-fraction`` (``flag``, the option
    that errors name)."""
    _check_fraction(fraction, flag)
    generator = torch.Generator().manual_seed(seed)
    labels = tensors.y.cpu()
    held = []
    for c in labels.unique(sorted=True):
        rows = (labels == c).nonzero().squeeze(1)
        rows = rows[torch.randperm(len(rows), generator=generator)]
        count = int(len(rows) * fraction + 0.5)
        count = min(max(count, 1), len(rows) - 1) if len(rows) >= 2 else 0
        held.append(rows[:count])
    test_rows = torch.cat(held).sort().values
    if len(test_rows) == 0:
        raise ValueError(
            f"{flag} {fraction} holds out no example of {where}: each of its classes has a single "
            f"example ({len(tensors)} in all); give more examples"
            + (", or a test part of its own" if flag == "--test-fraction" else "")
        )
    keep = torch.ones(len(tensors), dtype=torch.bool)
    keep[test_rows] = False
    train_rows = keep.nonzero().squeeze(1)
    train_rows, test_rows = train_rows.to(tensors.x.device), test_rows.to(tensors.x.device)
    return (Tensors(tensors.x[train_rows], tensors.y[train_rows]),
            Tensors(tensors.x[test_rows], tensors.y[test_rows]))


# Files: .npz and .pt.

KEYS = ("x", "y", "x_test", "y_test")


def _read_file(path: Path, where: str) -> tuple[Tensors, Tensors | None]:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = _read_npz(path, where)
    elif suffix == ".pt":
        arrays = _read_pt(path, where)
    else:
        raise ValueError(f"{where} is a {suffix or 'suffix-less'} file; it must be {FORMATS}")
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise ValueError(
            f"{where} has no {' or '.join(missing)}: it holds {sorted(arrays)}; it needs x (the inputs) and "
            "y (integer class labels), and optionally x_test and y_test"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        have, lack = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        raise ValueError(f"{where} holds {have} but no {lack}: a test part needs both (or neither)")
    train = _tensors(arrays["x"], arrays["y"], "x", "y", where)
    test = None
    if "x_test" in arrays:
        test = _tensors(arrays["x_test"], arrays["y_test"], "x_test", "y_test", where)
    if test is not None and test.x.shape[1:] != train.x.shape[1:]:
        raise ValueError(
            f"{where}: x_test's examples have shape {tuple(test.x.shape[1:])}, x's "
            f"{tuple(train.x.shape[1:])}; they must be the same"
        )
    return train, test


def _read_npz(path: Path, where: str) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as error:  # object arrays, which need pickle
        raise ValueError(f"{where}: {error}; save numeric arrays (numpy.savez(path, x=..., y=...))") from None
    except (OSError, EOFError) as error:
        raise ValueError(f"{where} cannot be read as a .npz file (numpy.savez): {error}") from None


def _read_pt(path: Path, where: str) -> dict[str, Any]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle.UnpicklingError for objects other than tensors, RuntimeError...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{where} cannot be read as a dict of tensors (torch.load with weights_only=True): {first}; save "
            "it with torch.save({'x': x, 'y': y}, path)"
        ) from None
    if not isinstance(loaded, Mapping):
        raise ValueError(
            f"{where} holds a {type(loaded).__name__}, not a dict; save it with "
            "torch.save({'x': x, 'y': y}, path) (optionally with 'x_test' and 'y_test')"
        )
    for key in KEYS:
        if key in loaded and not isinstance(loaded[key], Tensor):
            raise ValueError(f"{where}: {key} is a {type(loaded[key]).__name__}, not a tensor")
    return dict(loaded)


def _as_tensor(array: Any) -> Tensor:
    return array if isinstance(array, Tensor) else torch.from_numpy(np.ascontiguousarray(array))


def _tensors(x: Any, y: Any, x_name: str, y_name: str, where: str) -> Tensors:
    """``x`` as float32 inputs and ``y`` as int64 labels, checked; names in messages as in the file."""
    if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
        raise ValueError(f"{where}: {x_name} must hold numbers, got dtype {x.dtype}")
    if isinstance(y, np.ndarray) and y.dtype.kind not in "biuf":
        raise ValueError(
            f"{where}: {y_name} must hold integer class labels 0..C-1, got dtype {y.dtype}; map the class "
            "names to integers first"
        )
    x, y = _as_tensor(x), _as_tensor(y)
    if x.dim() < 2:
        raise ValueError(
            f"{where}: {x_name} must have one row per example, (n, features) or (n, channels, height, "
            f"width), got shape {tuple(x.shape)}"
        )
    if y.dim() != 1:
        hint = " (one-hot labels? store y.argmax(1))" if y.dim() == 2 else ""
        raise ValueError(f"{where}: {y_name} must be one class label per example, shape (n,), got shape "
                         f"{tuple(y.shape)}{hint}")
    if len(x) != len(y):
        raise ValueError(
            f"{where}: {x_name} has {len(x)} examples but {y_name} has {len(y)}; they must match"
        )
    if len(x) == 0:
        raise ValueError(f"{where}: {x_name} and {y_name} hold no examples")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        hint = " (y.astype('int64') if they are whole numbers)" if y.is_floating_point() else ""
        raise ValueError(
            f"{where}: {y_name} must hold integer class labels 0..C-1, got dtype "
            f"{str(y.dtype).split('.')[-1]}{hint}"
        )
    if (y < 0).any():
        row = int((y < 0).nonzero()[0, 0])
        raise ValueError(f"{where}: {y_name} holds a negative label ({int(y[row])} at row {row}); labels are "
                         "class indices 0..C-1")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{where}: {x_name} must hold real numbers, got dtype {str(x.dtype).split('.')[-1]}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)
    return Tensors(x.contiguous(), y.to(torch.int64))


# Image folders.

@dataclass
class _Folder:
    """One image folder: its classes, its (path, label) samples, and the torchvision ImageFolder that
    listed them (``None`` without torchvision), which then reads them."""

    classes: list[str]
    samples: list[tuple[str, int]]
    dataset: Any = None


def _listing(root: Path, where: str) -> _Folder:
    """The classes (sorted folder names) and the (path, label) of every image under ``root``, listed by
    torchvision's ImageFolder when it is installed, else in the same way without it."""
    try:
        from torchvision.datasets import ImageFolder
    except ImportError:
        return _listing_without_torchvision(root, where)
    try:
        dataset = ImageFolder(str(root))
    except FileNotFoundError as error:
        raise ValueError(_empty(where, str(error))) from None
    return _Folder(list(dataset.classes), list(dataset.samples), dataset)


def _listing_without_torchvision(root: Path, where: str) -> _Folder:
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        raise ValueError(_empty(where, f"Couldn't find any class folder in {root}."))
    samples, empty = [], []
    for label, name in enumerate(classes):
        found = []
        for folder, _, files in sorted(os.walk(root / name, followlinks=True)):
            found += [(os.path.join(folder, f), label) for f in sorted(files)
                      if f.lower().endswith(IMAGE_EXTENSIONS)]
        empty += [name] if not found else []
        samples += found
    if empty:
        raise ValueError(_empty(where, f"Found no valid file for the classes {', '.join(empty)}."))
    return _Folder(classes, samples)


def _empty(where: str, detail: str) -> str:
    return (
        f"{where} is not an image folder with images: {detail} It needs one sub-folder per class, each "
        f"holding images ({', '.join(IMAGE_EXTENSIONS)})"
    )


def _read_folder(root: Path, image_size: int | None, where: str) -> tuple[tuple[Tensors, Tensors | None],
                                                                          tuple[str, ...]]:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ValueError(f"--image-size must be an integer >= 1, got {image_size!r}")
    try:
        from PIL import Image
    except ImportError as error:  # Pillow comes with matplotlib, a kdlab dependency
        raise RuntimeError("reading an image folder needs Pillow: pip install pillow") from error
    subfolders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if subfolders == ["test", "train"]:
        train = _listing(root / "train", f"{where} (its train folder)")
        test = _listing(root / "test", f"{where} (its test folder)")
        unknown = sorted(set(test.classes) - set(train.classes))
        if unknown:
            raise ValueError(f"{where}: the test folder has classes {unknown} that the train folder lacks "
                             f"(its classes are {train.classes})")
        index = {name: k for k, name in enumerate(train.classes)}
        remap = {label: index[name] for label, name in enumerate(test.classes)}
        parts = [train, test]
    else:
        parts, remap = [_listing(root, where)], None
    mode = _mode(Image, [s for part in parts for s in part.samples], image_size, root, where)
    read = _reader(Image, mode, image_size, root, where)
    tensors = [_images(part, read, remap if k == 1 else None) for k, part in enumerate(parts)]
    return (tensors[0], tensors[1] if len(tensors) > 1 else None), tuple(parts[0].classes)


def _mode(image: Any, samples: list[tuple[str, int]], image_size: int | None, root: Path, where: str) -> str:
    """``"L"`` when every image is grayscale, else ``"RGB"``; checks (reading headers only) that the
    images have one size unless they are to be resized, naming two files that differ."""
    colour, first = False, None
    for path, _ in samples:
        try:
            with image.open(path) as img:
                mode, size = img.mode, img.size
        except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
            raise ValueError(_unreadable(where, path, root, error)) from None
        colour = colour or mode not in GRAYSCALE_MODES
        if image_size is None:
            if first is None:
                first = (path, size)
            elif size != first[1]:
                raise ValueError(
                    f"{where}: the images differ in size: {_relative(first[0], root)} is "
                    f"{first[1][0]}x{first[1][1]} and {_relative(path, root)} is {size[0]}x{size[1]} "
                    "(width x height); pass --image-size N to resize every image to N x N"
                )
    return "RGB" if colour else "L"


def _unreadable(where: str, path: str, root: Path, error: Exception) -> str:
    return f"{where}: {_relative(path, root)} cannot be read as an image ({error})"


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _reader(image: Any, mode: str, image_size: int | None, root: Path, where: str) -> Any:
    """The loader of one image file: a float tensor in [0, 1], (1 or 3, height, width)."""

    def read(path: str) -> Tensor:
        try:
            with image.open(path) as img:
                if mode == "L" and img.mode.startswith("I;16"):  # 16-bit grayscale: its own range
                    array = np.asarray(img, dtype=np.float32) / 65535.0
                    if image_size is not None:
                        resized = image.fromarray(array, mode="F").resize((image_size, image_size),
                                                                           image.Resampling.BILINEAR)
                        array = np.asarray(resized, dtype=np.float32)
                    return torch.from_numpy(array.copy()).unsqueeze(0)
                img = img.convert(mode)
                if image_size is not None:
                    img = img.resize((image_size, image_size), image.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError) as error:
            raise ValueError(_unreadable(where, path, root, error)) from None
        pixels = torch.from_numpy(array.copy()).float() / 255.0
        return pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)

    return read


def _images(folder: _Folder, read: Any, remap: dict[int, int] | None) -> Tensors:
    """Every image of ``folder`` read by ``read`` (through its ImageFolder when there is one), stacked;
    labels mapped by ``remap`` (a test folder's classes to the train folder's numbers)."""
    if folder.dataset is not None:
        folder.dataset.loader = read
        pairs = [folder.dataset[i] for i in range(len(folder.dataset))]
    else:
        pairs = [(read(path), label) for path, label in folder.samples]
    x = torch.stack([p for p, _ in pairs]).contiguous()
    y = torch.tensor([remap[label] if remap else label for _, label in pairs], dtype=torch.int64)
    return Tensors(x, y)


__all__ = ["load", "stratified_split", "UserData", "FORMATS", "DEFAULT_TEST_FRACTION"]
