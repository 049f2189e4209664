"""The reference page's table of what kdlab rejects names real functions with their real parameters, and
lists every public loss: the table cannot drift from the API without a test failing."""

import importlib
import inspect
import re
from pathlib import Path

import pytest

import kdlab
from kdlab import losses

PAGE = Path(__file__).resolve().parents[1] / "book" / "reference.md"


def rows() -> list[str]:
    """The first cells of the 'what kdlab rejects' table (up to the next heading)."""
    table = PAGE.read_text().split("## ")[0]
    return [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]


def resolve(dotted: str, module: object) -> object:
    """``dotted`` under ``kdlab`` (``losses.dkd_loss``, ``kdlab.distill``), or a bare name under
    ``module``."""
    if "." not in dotted:
        return getattr(module, dotted)
    parts = dotted.removeprefix("kdlab.").split(".")
    found = importlib.import_module("kdlab")
    for k, part in enumerate(parts):
        found = getattr(found, part, None) or importlib.import_module("kdlab." + ".".join(parts[: k + 1]))
    return found


def named_functions() -> list[tuple[str, object, list[str]]]:
    """(name, function, the parameters the row writes in its parentheses) for every function a row names."""
    found = []
    for cell in rows():
        module = kdlab
        for span in re.findall(r"`([^`]+)`", cell):
            match = re.fullmatch(r"([A-Za-z_][\w.]*)(?:\((.*)\))?", span)
            if match is None or span.startswith("kdlab ") or "=" in match.group(1):
                continue  # a command line, or a knob written as name=value
            name, arguments = match.groups()
            function = resolve(name, module)
            if "." in name:
                module = importlib.import_module(function.__module__)
            written = [a.strip().split("=")[0].lstrip("*") for a in (arguments or "").split(",")]
            found.append((name, function, [a for a in written if a and a != "..."]))
    return found


@pytest.mark.parametrize("name, function, written", named_functions(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_function_the_table_names_exists_with_the_parameters_it_writes(name, function, written):
    target = function.__init__ if inspect.isclass(function) else function
    parameters = inspect.signature(target).parameters
    missing = [p for p in written if p not in parameters]
    assert not missing, f"reference.md writes {name}({', '.join(written)}), which has no {missing}"


def test_every_public_loss_has_a_row():
    named = {function for _, function, _ in named_functions()}
    absent = [name for name in losses.__all__ if getattr(losses, name) not in named]
    assert not absent, f"losses without a row in reference.md's table: {absent}"
