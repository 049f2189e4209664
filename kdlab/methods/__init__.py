"""One module per method of the source papers, each a short recipe over kdlab's modules."""

from kdlab.methods import (
    born_again,
    common,
    compression,
    fitnets,
    fsp,
    hint_mutual,
    hinton,
    mutual,
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
    "mutual",
    "teachers",
    "tsne",
    "train_model",
]
