"""Device choice, seeding and determinism: the set-up every chapter and recipe shares."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

DEVICES = ("cuda", "mps", "cpu")


def device(name: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``None`` picks cuda, then mps, then cpu; a name is checked.

    Asking for ``"cuda"`` (or ``"mps"``) on a machine without it is a clear error here, not a
    crash deep in the stack.
    """
    if name is None:
        name = os.environ.get("KDLAB_DEVICE") or None
    if name is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(name)
    except (RuntimeError, TypeError):
        chosen = None
    if chosen is None or chosen.type not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)} (or None for automatic), got {str(name)!r}")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(name)!r} was asked for, but torch sees no CUDA GPU here; use 'cpu'")
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {str(name)!r} was asked for, but MPS is not available here; use 'cpu'")
    return chosen


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def deterministic(threads: int | None = None) -> None:
    """Make runs repeatable: deterministic kernels and, if given, a fixed number of CPU threads.

    One intra-op thread makes CPU reductions repeat bit for bit (the ``smoke`` profile, whose
    printed outputs nbval compares).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
    if threads is not None:
        torch.set_num_threads(threads)
