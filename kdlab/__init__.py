"""kdlab: knowledge distillation, executable.

The package behind the book: data as tensors (:mod:`kdlab.data`), the papers' models
(:mod:`kdlab.models`), pure losses (:mod:`kdlab.losses`), one training loop
(:mod:`kdlab.train`), one recipe per method (:mod:`kdlab.methods`), a cache of trained models
(:mod:`kdlab.cache`), metrics, plots and the ``kdlab`` command.
"""

__version__ = "0.1.0"

from kdlab import cache, data, features, losses, metrics, models, runtime, train  # noqa: E402
from kdlab.data import TensorLoader, load  # noqa: E402
from kdlab.train import History, fit  # noqa: E402

__all__ = [
    "__version__",
    "cache",
    "data",
    "features",
    "losses",
    "metrics",
    "models",
    "runtime",
    "train",
    "TensorLoader",
    "load",
    "History",
    "fit",
    "distill",
    "mutual",
]


# Modules that import every recipe (or optional packages), loaded on first use: kdlab.api, kdlab.export...
LAZY_MODULES = ("adapters", "api", "augment", "export", "inputs", "loggers", "methods", "published", "text",
                "userdata")


def __getattr__(name: str):
    # kdlab.distill and kdlab.mutual (the practitioner's API) import every recipe: load them on first use.
    if name in ("distill", "mutual"):
        from kdlab import api

        return getattr(api, name)
    if name in LAZY_MODULES:
        import importlib

        return importlib.import_module(f"kdlab.{name}")
    raise AttributeError(f"module 'kdlab' has no attribute {name!r}")
