"""The architectures of the source papers, each with named feature points (module names).

Note: the functions ``vgg`` and ``resnet`` shadow their submodules' names here; their
configuration constants are re-exported with a prefix (``VGG_TEACHER_CFG``...). ``create(name)``
builds the CIFAR-100 benchmark's networks (``NAMES``), whose feature points and FSP pairs are
``CIFAR_FEATURE_POINTS`` and ``CIFAR_FSP_PAIRS`` (``kdlab.models.cifar``). Beyond the sources,
``CharTransformer`` and ``generate`` are the language_models chapter's character-level model
(``kdlab.models.charlm``).
"""

from kdlab.models.charlm import CharTransformer, generate
from kdlab.models.cifar import FEATURE_POINTS as CIFAR_FEATURE_POINTS
from kdlab.models.cifar import FSP_PAIRS as CIFAR_FSP_PAIRS
from kdlab.models.cifar import NAMES, create
from kdlab.models.lenet import STUDENT_WIDTHS, TEACHER_WIDTHS, lenet
from kdlab.models.mlp import MaxNormLinear, constrain_, mlp
from kdlab.models.regressor import regressor
from kdlab.models.resnet import FSP_PAIRS
from kdlab.models.resnet import resnet as resnet
from kdlab.models.vgg import MARKERS as VGG_MARKERS
from kdlab.models.vgg import STUDENT_CFG as VGG_STUDENT_CFG
from kdlab.models.vgg import TEACHER_CFG as VGG_TEACHER_CFG
from kdlab.models.vgg import vgg as vgg

__all__ = [
    "mlp", "lenet", "vgg", "resnet", "regressor", "MaxNormLinear", "constrain_", "TEACHER_WIDTHS",
    "STUDENT_WIDTHS", "VGG_TEACHER_CFG", "VGG_STUDENT_CFG", "VGG_MARKERS", "FSP_PAIRS",
    "create", "NAMES", "CIFAR_FEATURE_POINTS", "CIFAR_FSP_PAIRS", "CharTransformer", "generate",
]
