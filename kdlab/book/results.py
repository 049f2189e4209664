"""Each chapter's results as a small JSON file, so runs can be compared and the results chapter
need not retrain: the profile, every knob, the kdlab and torch versions, the device, the results.

Only the files: the claims a chapter checked (``results["claims"]``) and their verdicts come from
:mod:`kdlab.book.claims`."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from kdlab import _io


def results_dir() -> Path:
    """``$KDLAB_RESULTS`` or ``_results/`` in the working directory (the chapter's folder)."""
    return Path(os.environ.get("KDLAB_RESULTS", Path.cwd() / "_results"))


def save(chapter: str, config: Mapping[str, Any], results: Mapping[str, Any], device: Any = None) -> Path:
    """Write ``<results_dir>/<chapter>-<profile>.json`` atomically and return its path."""
    from kdlab import __version__

    profile = config.get("profile", "custom")
    record = {
        "chapter": chapter,
        "profile": profile,
        "knobs": dict(config),
        "kdlab": __version__,
        "torch": torch.__version__,
        "device": str(device) if device is not None else "unknown",
        "machine": platform.machine(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": results,
    }
    path = results_dir() / f"{chapter}-{profile}.json"
    _io.atomic_write_bytes(path, json.dumps(record, indent=2, default=float).encode())
    return path


def load(chapter: str, profile: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read what :func:`save` wrote for ``chapter`` at ``profile``."""
    path = Path(folder or results_dir()) / f"{chapter}-{profile}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no results for chapter {chapter!r} at profile {profile!r}: {path} is missing; "
            f"run `kdlab run {chapter} --profile {profile}` first"
        )
    return json.loads(path.read_text())
