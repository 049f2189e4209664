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


def __getattr__(name: str):
    # kdlab.distill and kdlab.mutual (the practitioner's API) import every recipe: load them on first use.
    if name in ("distill", "mutual"):
        from kdlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'kdlab' has no attribute {name!r}")
