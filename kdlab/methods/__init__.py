"""One module per method of the source papers, each a short recipe over kdlab's modules, and
:mod:`kdlab.methods.registry`, the one table of methods that the API, the command line and the
book's comparison read."""

from kdlab.methods import (
    born_again,
    common,
    compression,
    fitnets,
    fsp,
    hint_mutual,
    hinton,
    language,
    modern,
    mutual,
    registry,
    teachers,
    tsne,
)
from kdlab.methods.common import train_model

__all__ = [
    "born_again",
    "common",
    "compression",
    "fitnets",
    "fsp",
    "hint_mutual",
    "hinton",
    "language",
    "modern",
    "mutual",
    "registry",
    "teachers",
    "tsne",
    "train_model",
]
