"""Each chapter's results as a small JSON file, so runs can be compared and the results chapter
need not retrain: the profile, every knob, the kdlab and torch versions, the device, the results."""

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


def verdict(ours: list[float], baseline: list[float], lower_is_better: bool = True) -> str:
    """Whether ``ours`` beat ``baseline`` over seeds, honestly worded.

    ``"held"`` when the mean is better by more than the seeds' spread (the root of the two
    variances), ``"held, within the seed spread"`` when better by less, ``"did not hold"`` otherwise;
    a better result where both sides are single values is ``"held on one seed ..."``.
    """
    from kdlab.metrics import mean_std

    (mean_a, std_a), (mean_b, std_b) = mean_std(ours), mean_std(baseline)
    gain = (mean_b - mean_a) if lower_is_better else (mean_a - mean_b)
    if gain <= 0:
        return "did not hold"
    if max(len(ours), len(baseline)) < 2:
        return "held on one seed (no spread to weigh it against)"
    return "held" if gain > (std_a**2 + std_b**2) ** 0.5 else "held, within the seed spread"


def claim(claim: str, source: str, paper: str, ours: str, verdict: str) -> dict[str, str]:
    """One checked claim of a source document, as every chapter records it in ``results["claims"]``.

    ``paper`` is the paper's number, ``ours`` ours with its spread, ``verdict`` what
    :func:`verdict` said (or ``"not run at this profile: ..."``). The results chapter gathers them.
    """
    return {"claim": claim, "source": source, "paper": paper, "ours": ours, "verdict": verdict}
