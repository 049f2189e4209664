"""One notebook, three sizes: a chapter's knobs per profile, and the set-up each run shares.

A chapter's ``parameters`` cell sets ``profile`` and leaves the other knobs ``None``; its set-up
cell then calls :func:`resolve` with its own table of per-profile values, so any knob given on
the command line (``kdlab run CHAPTER -p epochs=30``) wins over the profile's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from kdlab import _checks, runtime

PROFILES = ("smoke", "default", "full")


class Config(dict):
    """A chapter's resolved knobs: a dict whose keys also read as attributes (``cfg.epochs``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no knob {name!r}; it has {sorted(self)}") from None


def resolve(profile: str, table: Mapping[str, Mapping[str, Any]], **overrides: Any) -> Config:
    """The knobs of ``profile`` from ``table``, with every non-``None`` override applied.

    >>> table = {"smoke": {"epochs": 1}, "default": {"epochs": 5}, "full": {"epochs": 60}}
    >>> resolve("smoke", table, epochs=None)
    {'profile': 'smoke', 'epochs': 1}
    """
    _checks.choice("profile", profile, PROFILES)
    missing = [p for p in PROFILES if p not in table]
    if missing:
        raise ValueError(f"the profile table must define {list(PROFILES)}, it lacks {missing}")
    config = Config(profile=profile, **table[profile])
    for name, value in overrides.items():
        if name not in config:
            raise ValueError(f"unknown knob {name!r} for profile {profile!r}; the knobs are {sorted(config)}")
        if value is not None:
            config[name] = value
    return config


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
