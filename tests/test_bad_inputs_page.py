"""The reference page's table of bad inputs ("Bad inputs and what kdlab says" in book/reference.md): each
row's case is triggered here, on tiny data and models on the CPU, and must fail with the row's message, so
the page shows what kdlab really says and cannot drift from it (no row without a case, no case without a
row)."""

from __future__ import annotations

import contextlib
import functools
import io
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import kdlab
from kdlab import cli, data, models, train
from kdlab.book import runner
from kdlab.data import Tensors

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "reference.md"
HEADING = "## Bad inputs and what kdlab says"
FIT: dict[str, Any] = dict(epochs=1, batch_size=16, progress=False, device="cpu")
MARK = "…"  # in a message cell: a part that varies (a path, a list that grows)


class Printed(Exception):
    """What ``kdlab ...`` printed on stderr when it exited with status 2 (the row's type: ``stderr``)."""


@functools.cache
def digits() -> data.Split:
    return data.load("digits", train_size=40, test_size=20)


def mlp(classes: int = 10) -> nn.Module:
    return models.mlp((64, 16, classes))


def plain() -> nn.Module:
    """A classifier that is not kdlab's: no layer names kdlab's defaults expect."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def small_resnet() -> nn.Module:
    return models.resnet(8, (4, 8, 16), in_channels=1, num_classes=10)


def distill(
    train: Any = None,
    test: Any = None,
    teacher: nn.Module | None = None,
    student: Callable[[], nn.Module] = mlp,
    **knobs: Any,
) -> None:
    """``kdlab.distill`` of an mlp into an mlp on 40 digits for 1 epoch, with the given changes."""
    train = digits().train if train is None else train
    kdlab.distill(teacher if teacher is not None else mlp(), student, train, test, **{**FIT, **knobs})


def poisoned(part: Tensors, row: int, value: float) -> Tensors:
    x = part.x.clone()
    x[row, 0, 0, 0] = value
    return Tensors(x, part.y)


def loader(part: Tensors) -> DataLoader:
    return DataLoader(TensorDataset(*part.tensors), batch_size=16)


def with_label(label: int) -> Tensors:
    y = digits().train.y.clone()
    y[0] = label
    return Tensors(digits().train.x, y)


def tokens(n: int, length: int) -> dict[str, torch.Tensor]:
    """A padded text batch: token ids, an attention mask (the last 2 positions padded), labels."""
    mask = torch.ones(n, length, dtype=torch.long)
    mask[:, -2:] = 0
    ids = torch.randint(1, 20, (n, length), generator=torch.Generator().manual_seed(0)) * mask
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.arange(n) % 10}


def resume_garbage() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.pt"
        path.write_bytes(b"not a checkpoint")
        distill(checkpoint=path, resume=True)


def resume_another_run() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.pt"
        teacher = mlp()
        distill(teacher=teacher, checkpoint=path)
        distill(teacher=teacher, checkpoint=path, resume=True, method="dkd")


def command(*argv: str) -> None:
    """``kdlab ARGV`` in this process; what it printed on stderr, raised as :class:`Printed`."""
    printed = io.StringIO()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(printed):
        code = cli.main([a.replace("TMP", folder) for a in argv])
    assert code == 2, f"kdlab {' '.join(argv)} exited with status {code}"
    raise Printed(printed.getvalue())


def distill_command(student: str, *flags: str) -> None:
    """``kdlab distill`` of a saved mlp into ``student`` on 40 digits, with ``flags``."""
    with tempfile.TemporaryDirectory() as folder:
        torch.save(mlp(), Path(folder) / "t.pt")
        spec = ["--teacher", f"{folder}/t.pt", "--student", student, *flags]
        command("distill", *spec, *"--data digits --train-size 40 --test-size 20 --out TMP/out".split())


def run_on_cuda_without_it() -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the chapter ran")

    with (
        mock.patch.object(torch.cuda, "is_available", lambda: False),
        mock.patch.object(runner, "run_chapter", never),
    ):
        command("--root", str(ROOT), "run", "soft_targets", "--device", "cuda", "--out", "TMP")


CASES: dict[str, Callable[[], object]] = {
    "uint8-images": lambda: distill((digits().train.x.mul(255).to(torch.uint8), digits().train.y)),
    "float64-data": lambda: distill((digits().train.x.double(), digits().train.y)),
    "bf16-models": lambda: distill(
        teacher=mlp().to(torch.bfloat16), student=lambda: mlp().to(torch.bfloat16)
    ),
    "empty-train": lambda: distill(Tensors(digits().train.x[:0], digits().train.y[:0])),
    "empty-test": lambda: distill(test=Tensors(digits().test.x[:0], digits().test.y[:0])),
    "nan-in-train": lambda: distill(poisoned(digits().train, 3, float("nan"))),
    "inf-in-test": lambda: distill(test=poisoned(digits().test, 5, float("inf"))),
    "nan-in-a-loader-batch": lambda: distill(loader(poisoned(digits().train, 20, float("nan")))),
    "label-out-of-range": lambda: distill(with_label(10)),
    "temperature-string": lambda: distill(temperature="4"),
    "temperature-inf": lambda: distill(temperature=float("inf")),
    "temperature-zero": lambda: distill(temperature=0),
    "alpha-above-one": lambda: distill(alpha=1.5),
    "unknown-method": lambda: distill(method="hintn"),
    "unknown-knob": lambda: distill(tempreature=4),
    "stage-epochs-zero-fitnets": lambda: distill(
        method="fitnets", hint="hidden1", guided="hidden1", stage_epochs=0
    ),
    "stage-epochs-zero-fsp": lambda: distill(
        teacher=small_resnet(), student=small_resnet, method="fsp", stage_epochs=0
    ),
    "stage-epochs-negative": lambda: distill(
        method="fitnets", hint="hidden1", guided="hidden1", stage_epochs=-1
    ),
    "class-counts-differ": lambda: distill(student=lambda: mlp(5)),
    "unknown-layer": lambda: distill(method="fitnets", hint="nosuchlayer", guided="hidden1"),
    "fsp-without-pairs": lambda: distill(teacher=plain(), student=plain, method="fsp"),
    "cache-with-a-loader": lambda: distill(loader(digits().train), cache=True),
    "val-is-test": lambda: distill(test=digits().test, val=digits().test),
    "three-item-tuple": lambda: distill((digits().train.x, digits().train.y, digits().train.y)),
    "string-as-train": lambda: distill("digits"),
    "dict-batch-without-label": lambda: distill(
        DataLoader([{"pixel_values": x} for x in digits().train.x], batch_size=16)
    ),
    "dict-batch-extra-key": lambda: distill(
        DataLoader(
            [
                {"pixel_values": x, "labels": y, "idx": 0}
                for x, y in zip(*digits().train.tensors, strict=True)
            ],
            batch_size=16,
        )
    ),
    "model-without-keyword-inputs": lambda: distill(tokens(40, 12)),
    "test-of-several-lengths": lambda: distill(
        tokens(40, 12), DataLoader([tokens(10, 12), tokens(10, 14)], batch_size=None)
    ),
    "tsne-without-layer": lambda: distill(teacher=plain(), student=plain, method="tsne"),
    "inputs-of-the-wrong-shape": lambda: distill(
        teacher=small_resnet(), student=small_resnet, train=(digits().train.x.flatten(1), digits().train.y)
    ),
    "resume-without-checkpoint": lambda: distill(resume=True),
    "checkpoint-of-another-run": resume_another_run,
    "cli-student-spec": lambda: distill_command("os.system('echo hi')"),
    "cli-callbacks": lambda: distill_command("mlp((64, 16, 10))", "-p", "callbacks=['print']"),
    "cli-unknown-chapter": lambda: command("--root", str(ROOT), "run", "nosuchchapter", "--out", "TMP"),
    "cli-cuda-without-cuda": run_on_cuda_without_it,
    "mutual-one-student": lambda: kdlab.mutual([mlp], digits().train, **FIT),
    "fit-zero-epochs": lambda: train.fit(
        mlp(), data.TensorLoader(*digits().train.tensors, batch_size=16), epochs=0, device="cpu"
    ),
    "checkpoint-not-resumable": resume_garbage,
}


def cells(line: str) -> list[str]:
    """A table row's cells, ``\\|`` read as a pipe within a cell."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def table() -> dict[str, tuple[str, str]]:
    """case id -> (type, message) of every row of the page's table of bad inputs."""
    page = PAGE.read_text()
    assert HEADING in page, f"{PAGE} has no section {HEADING!r}"
    section = page.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        case, _, message = cells(line)
        kind, _, text = message.strip("`").partition(": ")
        assert case.strip("`") not in rows, f"case {case} has two rows"
        rows[case.strip("`")] = (kind, text)
    return rows


def starts_as(text: str, written: str) -> bool:
    """Whether ``text`` starts as ``written`` does, each ``…`` in it standing for a part that varies."""
    pattern = ".*?".join(re.escape(piece) for piece in written.split(MARK))
    return re.match(pattern, text, re.DOTALL) is not None


def test_the_table_has_one_row_per_case():
    assert set(table()) == set(CASES), (
        f"rows without a case: {sorted(set(table()) - set(CASES))}; "
        f"cases without a row: {sorted(set(CASES) - set(table()))}"
    )


@pytest.mark.parametrize("case", sorted(table()))
def test_each_bad_input_fails_with_the_message_the_table_shows(case: str):
    kind, written = table()[case]
    trigger = CASES[case]
    with pytest.raises(Exception) as caught:
        trigger()
    error = caught.value
    raised = "stderr" if isinstance(error, Printed) else type(error).__name__
    assert (raised, starts_as(str(error), written)) == (kind, True), (
        f"{case}: the table shows {kind}: {written}\nkdlab said {raised}: {error}"
    )
