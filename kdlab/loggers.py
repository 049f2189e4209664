"""Where :func:`kdlab.train.fit` writes each finished epoch's row besides its History: a CSV file
(``log=``) and, when the ``tensorboard`` package is installed, TensorBoard event files
(``tensorboard=``, a folder; ``pip install 'kdlab[tensorboard]'``).

Both are callbacks, as a user's own are (``fit(callbacks=[...])``): called as ``callback(row,
model)`` after each epoch, with the epoch's row of the History (``epoch``, the loss terms,
``test_error``...) and the model; one with a ``close()`` method is closed when training ends."""

from __future__ import annotations

import csv
import importlib.util
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

# A callback: called with each finished epoch's row and the model, after fit has logged, evaluated and
# checkpointed the epoch.
Callback = Callable[[Mapping[str, float], nn.Module], None]


def write_csv(path: Path, rows: list[dict[str, float]], append: bool = False) -> None:
    """Write ``rows`` to the CSV at ``path`` (anew, or appended), the header from the first row; the
    epoch (a float in the History) as the whole number it is."""
    rows = [{**row, "epoch": int(row["epoch"])} if "epoch" in row else row for row in rows]
    if not append or not path.exists():
        path.write_text("")
    with path.open(newline="") as file:
        header = file.readline()
    fields = next(csv.reader([header])) if header else list(rows[0]) if rows else []
    with path.open("a", newline="") as file:
        writer = csv.DictWriter(file, fields, restval="", extrasaction="ignore")
        if not header and rows:
            writer.writeheader()
        writer.writerows(rows)


class CSV:
    """Each epoch's row appended to the CSV at ``path`` as it finishes; made with the rows a resumed run
    restored (written anew: a fresh run starts the file anew)."""

    def __init__(self, path: str | os.PathLike, restored: list[dict[str, float]]) -> None:
        self.path = Path(path)
        write_csv(self.path, restored)

    def __call__(self, row: Mapping[str, float], model: nn.Module) -> None:
        write_csv(self.path, [dict(row)], append=True)


class TensorBoard:
    """Each row's scalars as TensorBoard events in ``folder``, one step per epoch (from 1), under the
    row's own names (``loss``, ``soft``, ``test_error``...). Checked when made: without the
    ``tensorboard`` package it is an ``ImportError`` saying how to install it, before any training."""

    def __init__(self, folder: str | os.PathLike) -> None:
        if importlib.util.find_spec("tensorboard") is None:
            raise ImportError(
                f"tensorboard={str(folder)!r} needs the tensorboard package, which is not installed: "
                "pip install 'kdlab[tensorboard]' (or pip install tensorboard), or leave tensorboard=None "
                "(log= writes a CSV without it)"
            )
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add each row's numbers at the step of its ``epoch`` and flush, so a crash loses nothing."""
        for row in rows:
            for name, value in row.items():
                if name != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(name, value, global_step=int(row["epoch"]))
        self.writer.flush()

    def __call__(self, row: Mapping[str, float], model: nn.Module) -> None:
        self.write([row])

    def close(self) -> None:
        self.writer.close()
