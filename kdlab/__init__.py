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
]
