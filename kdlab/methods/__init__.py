"""One module per method of the source papers, each a short recipe over kdlab's modules."""

from kdlab.methods import common, hinton, teachers
from kdlab.methods.common import train_model

__all__ = ["common", "hinton", "teachers", "train_model"]
