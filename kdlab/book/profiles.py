"""One notebook, three sizes: a chapter's knobs per profile, and the set-up each run shares.

A chapter's ``parameters`` cell sets ``profile`` and declares every other knob ``None`` (the names
papermill and ``kdlab run -p`` accept); its set-up cell holds the one table of the knobs' values
per profile and calls ``cfg = profiles.resolve(profile, {...}, globals())``, so a knob given on the
command line (``kdlab run CHAPTER -p epochs=30``) wins over the profile's value. The table is the
one place that says a knob's values: :func:`check_notebook` makes it an error for the table to
have a knob that the parameters cell does not declare ``None``, or the other way round (``kdlab
run`` checks it before it runs a chapter, and a test checks every chapter).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import torch

from kdlab import _checks, runtime

PROFILES = ("smoke", "default", "full")
# Parameters a chapter may declare None that are not knobs of its table: ``setup`` takes the device.
NOT_KNOBS = ("device",)


class Config(dict):
    """A chapter's resolved knobs: a dict whose keys also read as attributes (``cfg.epochs``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no knob {name!r}; it has {sorted(self)}") from None


def knobs(table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The knob names of a profile table, in the order of its first profile; every profile of
    :data:`PROFILES` must be there, with the same knobs (the error names the odd ones)."""
    missing = [p for p in PROFILES if p not in table]
    if missing:
        raise ValueError(f"the profile table must define {list(PROFILES)}, it lacks {missing}")
    extra = [p for p in table if p not in PROFILES]
    if extra:
        raise ValueError(f"the profile table has unknown profile(s) {extra}; the profiles are {PROFILES}")
    names = list(table[PROFILES[0]])
    for profile in PROFILES[1:]:
        lacks = [k for k in names if k not in table[profile]]
        more = [k for k in table[profile] if k not in names]
        if lacks or more:
            raise ValueError(
                f"every profile of the table must set the same knobs: profile {profile!r} lacks {lacks} "
                f"and adds {more}, against profile {PROFILES[0]!r}"
            )
    return names


def resolve(
    profile: str,
    table: Mapping[str, Mapping[str, Any]],
    parameters: Mapping[str, Any] | None = None,
    /,
    **overrides: Any,
) -> Config:
    """The knobs of ``profile`` from ``table``, with every non-``None`` override applied.

    ``parameters`` is where the chapter's parameters cell put its names, usually ``globals()``:
    for each knob of the table its value there, when not ``None``, wins over the profile's; a knob
    of the table that ``parameters`` lacks is an error naming it (the parameters cell must declare
    it). ``overrides`` name knobs one by one (an unknown name is an error).

    >>> table = {"smoke": {"epochs": 1}, "default": {"epochs": 5}, "full": {"epochs": 60}}
    >>> resolve("smoke", table, {"epochs": None})
    {'profile': 'smoke', 'epochs': 1}
    >>> resolve("smoke", table, {"epochs": 3})
    {'profile': 'smoke', 'epochs': 3}
    """
    _checks.choice("profile", profile, PROFILES)
    names = knobs(table)
    given: dict[str, Any] = {}
    if parameters is not None:
        undeclared = [k for k in names if k not in parameters]
        if undeclared:
            raise ValueError(
                f"knob {undeclared[0]!r} of the profile table is not declared in the parameters cell "
                f"(add `{undeclared[0]} = None` there); undeclared: {undeclared}"
            )
        given.update((k, parameters[k]) for k in names)
    for name, value in overrides.items():
        if name not in names:
            raise ValueError(f"unknown knob {name!r} for profile {profile!r}; the knobs are {sorted(names)}")
        given[name] = value
    config = Config(profile=profile, **table[profile])
    config.update((k, v) for k, v in given.items() if v is not None)
    return config


# --- the parameters cell against the table, read from a notebook's source -----------------------


def _parse(source: str | list[str]) -> ast.Module:
    text = "".join(source) if isinstance(source, list) else source
    # IPython magics and shell lines are not Python and declare nothing: each becomes a `pass`.
    lines = [line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
             for line in text.splitlines()]
    return ast.parse("\n".join(lines))


def declared(notebook: Mapping[str, Any]) -> dict[str, Any]:
    """The names the ``parameters`` cell assigns, with their default where it is a literal (else
    ``...``); a notebook without a cell tagged ``parameters`` is an error."""
    for cell in notebook.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            names: dict[str, Any] = {}
            for node in _parse(cell["source"]).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                for target in targets:
                    if isinstance(target, ast.Name):
                        try:
                            names[target.id] = ast.literal_eval(node.value) if node.value else None
                        except (ValueError, TypeError, SyntaxError):  # not a literal: a value all the same
                            names[target.id] = ...
            return names
    raise ValueError("the notebook has no cell tagged 'parameters'")


def _table_of(call: ast.Call, tree: ast.Module) -> dict[str, list[str]]:
    if len(call.args) < 2:
        raise ValueError("profiles.resolve(...) needs the profile table as its second argument")
    node = call.args[1]
    if isinstance(node, ast.Name):
        assigned = [n.value for n in tree.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)]
        if not assigned:
            raise ValueError(f"the profile table {node.id!r} is not assigned in the set-up cell")
        node = assigned[-1]
    if not isinstance(node, ast.Dict):
        raise ValueError("the profile table must be a literal dict {profile: dict(knob=value, ...)}")
    table: dict[str, list[str]] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if not isinstance(key, ast.Constant):
            raise ValueError("the profile table's keys must be the profiles' names, as strings")
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "dict" and not value.args:
            table[key.value] = [k.arg for k in value.keywords if k.arg]
        elif isinstance(value, ast.Dict) and all(isinstance(k, ast.Constant) for k in value.keys):
            table[key.value] = [k.value for k in value.keys]
        else:
            raise ValueError(f"profile {key.value!r} of the table must be dict(knob=value, ...)")
    return table


def table_knobs(notebook: Mapping[str, Any]) -> list[str]:
    """The knobs of the profile table that the notebook's set-up cell passes to :func:`resolve`,
    read from the source (nothing runs); a notebook that never calls it has none."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code" or "resolve(" not in "".join(cell["source"]):
            continue
        tree = _parse(cell["source"])
        for node in ast.walk(tree):
            name = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(name, "attr", getattr(name, "id", "")) == "resolve":
                table = _table_of(node, tree)
                return knobs({p: dict.fromkeys(k) for p, k in table.items()})
    return []


def check_notebook(notebook: Mapping[str, Any], name: str = "the chapter") -> None:
    """The table is the one place for a knob's values: every knob of the chapter's profile table is
    declared ``None`` in its parameters cell, and every parameter declared ``None`` (but ``device``)
    is a knob of the table. A mismatch is a ``ValueError`` naming the knob."""
    table = table_knobs(notebook)
    if not table:
        return
    params = declared(notebook)
    undeclared = [k for k in table if k not in params]
    if undeclared:
        raise ValueError(
            f"{name}: knob {undeclared[0]!r} of the profile table is not declared in the parameters cell "
            f"(add `{undeclared[0]} = None` there); undeclared: {undeclared}"
        )
    valued = [k for k in table if params[k] is not None]
    if valued:
        raise ValueError(
            f"{name}: knob {valued[0]!r} has a value ({params[valued[0]]!r}) in the parameters cell; the "
            f"profile table is the one place for its values, so declare `{valued[0]} = None` there"
        )
    stray = [k for k, v in params.items() if v is None and k not in table and k not in NOT_KNOBS]
    if stray:
        raise ValueError(
            f"{name}: parameter {stray[0]!r} is declared None in the parameters cell but the profile table "
            f"has no knob {stray[0]!r} (add it to every profile of the table, or give it a value); "
            f"not in the table: {stray}"
        )


def setup(profile: str, seed: int = 0, device: str | None = None) -> torch.device:
    """Seed everything, make kernels deterministic (one CPU thread in ``smoke``, so nbval can compare
    printed numbers bit for bit) and return the device: the CPU for ``smoke`` unless one is named,
    else cuda, then mps, then cpu."""
    _checks.choice("profile", profile, PROFILES)
    runtime.deterministic(threads=1 if profile == "smoke" else None)
    runtime.seed_everything(seed)
    if profile == "smoke" and device is None:
        device = "cpu"
    return runtime.device(device)
