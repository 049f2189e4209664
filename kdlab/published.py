"""Published training settings, as the knobs kdlab's recipes take, and the numbers they reported.

Each setting is a dict of knobs of :func:`kdlab.methods.train_model` (and of every method recipe,
which take the same training knobs): pass it with ``**``, e.g.
``train_model(make_student, split.train, test=split.test, **CIFAR100_BENCHMARK)``. A chapter's
``full`` profile uses the setting of its paper, or of the benchmark row nearest it, and prints the
published number beside its own.

- :data:`CIFAR100_BENCHMARK`: the CIFAR-100 distillation benchmark of Tian et al. (2020, CRD; the
  code that mdistiller's tables repeat): SGD with plain momentum 0.9, lr 0.05, weight decay 5e-4,
  batch 64, 240 epochs, lr x 0.1 at epochs 150, 180 and 210; random crop (padding 4) and
  horizontal flip (:data:`kdlab.augment.CIFAR`); per-channel standardisation with the training
  set's mean and standard deviation, which :func:`kdlab.data.load` applies (for CIFAR-100 about
  (0.5071, 0.4867, 0.4408) and (0.2675, 0.2565, 0.2761)). Its KD: :data:`CIFAR100_BENCHMARK_KD`
  (T = 4, weight 0.9 on the soft term, 0.1 on the labels); FitNets' hint weight 100
  (:data:`CIFAR100_BENCHMARK_HINT_WEIGHT`; FitNets' own stage 2 is :data:`FITNETS_STAGE2`); FSP's
  first stage 30 epochs
  (:data:`CIFAR100_BENCHMARK_FSP_STAGE_EPOCHS`). Its top-1 accuracies: :data:`CIFAR100_TOP1`.
- :data:`DML_CIFAR100`: Deep Mutual Learning's CIFAR-100 setting (Zhang et al. 2018, section 4.1):
  SGD with Nesterov momentum 0.9, lr 0.1 divided by 10 every 60 epochs, 200 epochs, batch 64, the
  same crop and flip (weight decay 5e-4, the usual value for these ResNets; the paper does not give
  one). ResNet-32 pairs: 68.99 % alone, 71.19 % with DML (:data:`DML_TOP1`).
- The logit losses since Hinton, on the same benchmark: DKD's knobs (:data:`DKD_CIFAR100`, its NCKD
  weight per pair :data:`DKD_NCKD_WEIGHT`), logit standardisation's KD (:data:`LS_KD`), their top-1
  accuracies (:data:`LOGIT_LOSSES_TOP1`), and DIST's ImageNet numbers (:data:`DIST_IMAGENET_TOP1`).
"""

from __future__ import annotations

from typing import Any

from kdlab.augment import CIFAR
from kdlab.train import Steps

__all__ = [
    "CIFAR100_BENCHMARK",
    "CIFAR100_BENCHMARK_FSP_STAGE_EPOCHS",
    "CIFAR100_BENCHMARK_HINT_WEIGHT",
    "CIFAR100_BENCHMARK_KD",
    "CIFAR100_TOP1",
    "DIST_IMAGENET_TOP1",
    "FITNETS_STAGE2",
    "DKD_NCKD_WEIGHT",
    "DKD_CIFAR100",
    "DML_CIFAR100",
    "DML_TOP1",
    "LS_KD",
    "LOGIT_LOSSES_TOP1",
]

CIFAR100_BENCHMARK: dict[str, Any] = dict(
    optimizer="sgd_momentum", lr=0.05, weight_decay=5e-4, batch_size=64, epochs=240,
    schedule=Steps((150, 180, 210), 0.1), augment=CIFAR,
)
CIFAR100_BENCHMARK_KD: dict[str, float] = dict(temperature=4.0, alpha=0.9)
CIFAR100_BENCHMARK_HINT_WEIGHT = 100.0
# FitNets' own stage 2 (Romero et al. 2015, sec. 3 and their code): CE + lambda H(P_T^tau, P_S^tau),
# lambda decayed linearly from 4, tau = 3, no tau^2 (kdlab.methods.fitnets.distill's form="paper").
FITNETS_STAGE2: dict[str, Any] = dict(form="paper", alpha=4.0, temperature=3.0)
CIFAR100_BENCHMARK_FSP_STAGE_EPOCHS = 30

# Top-1 test accuracy (%) on CIFAR-100, (teacher, student) -> {model: accuracy}: Tian et al. 2020,
# Table 1 (teacher, student, KD, FitNet, FSP).
CIFAR100_TOP1: dict[tuple[str, str], dict[str, float]] = {
    ("resnet56", "resnet20"): dict(teacher=72.34, student=69.06, kd=70.66, fitnet=69.21, fsp=69.95),
    ("resnet110", "resnet32"): dict(teacher=74.31, student=71.14, kd=73.08, fitnet=71.06, fsp=71.89),
    ("resnet32x4", "resnet8x4"): dict(teacher=79.42, student=72.50, kd=73.33, fitnet=73.50, fsp=72.62),
    ("wrn_40_2", "wrn_16_2"): dict(teacher=75.61, student=73.26, kd=74.92, fitnet=73.58, fsp=72.91),
    ("vgg13", "vgg8"): dict(teacher=74.64, student=70.36, kd=72.98, fitnet=71.02, fsp=70.23),
}

DML_CIFAR100: dict[str, Any] = dict(
    optimizer="sgd", lr=0.1, weight_decay=5e-4, batch_size=64, epochs=200,
    schedule=Steps((60, 120, 180), 0.1), augment=CIFAR,
)
# Zhang et al. 2018, Table 1, ResNet-32 with ResNet-32 on CIFAR-100.
DML_TOP1: dict[str, float] = dict(alone=68.99, mutual=71.19)

# Zhao et al. 2022 (DKD), the authors' mdistiller configs: T = 4, alpha = 1 on TCKD, beta = 8 on NCKD (6
# for the WRN pair), the label term's weight 1, the teacher term warmed up over the first 20 epochs.
DKD_CIFAR100: dict[str, Any] = dict(temperature=4.0, tckd_weight=1.0, nckd_weight=8.0, warmup_epochs=20)
DKD_NCKD_WEIGHT: dict[tuple[str, str], float] = {
    ("resnet32x4", "resnet8x4"): 8.0, ("wrn_40_2", "wrn_16_2"): 6.0,
}
# Sun et al. 2024 (logit standardisation), the authors' KD command: base temperature 2, weight 9 on the
# soft term and 0.1 on the labels, here as one weighted average (alpha = 9 / 9.1; Adam and SGD steps
# differ from theirs only by the overall scale, which SGD's learning rate absorbs).
LS_KD: dict[str, Any] = dict(temperature=2.0, alpha=9 / 9.1, standardize=True)
# Top-1 (%) on CIFAR-100 (Sun et al. 2024, Table 1, which repeats Zhao et al. 2022 for KD and DKD).
LOGIT_LOSSES_TOP1: dict[tuple[str, str], dict[str, float]] = {
    ("resnet32x4", "resnet8x4"): dict(kd=73.33, dkd=76.32, kd_ls=76.62, dkd_ls=77.01),
    ("wrn_40_2", "wrn_16_2"): dict(kd=74.92, dkd=76.24, kd_ls=76.11, dkd_ls=76.39),
}
# Huang et al. 2022 (DIST), the official release's ImageNet table (ResNet-34 teacher 73.31 %).
DIST_IMAGENET_TOP1: dict[tuple[str, str], dict[str, float]] = {
    ("resnet34", "resnet18"): dict(student=69.76, kd=71.21, dist=72.07),
}
