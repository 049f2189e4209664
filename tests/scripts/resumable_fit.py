"""Train with a checkpoint, resuming if asked: the subject of test_faults.py's kill -9 test.

usage: resumable_fit.py CHECKPOINT OUT [--resume] [--pause SECONDS]
"""

import sys
import time

import torch

from kdlab import data, models, runtime, train

checkpoint, out = sys.argv[1], sys.argv[2]
pause = float(sys.argv[sys.argv.index("--pause") + 1]) if "--pause" in sys.argv else 0.0
runtime.deterministic(threads=1)
split = data.load("digits")
runtime.seed_everything(0)
model = models.mlp((64, 64, 10), dropout=0.2)
loader = data.TensorLoader(*split.train.tensors, batch_size=32, seed=0)


def slow_cross_entropy(net, batch):
    time.sleep(pause)  # stretches each step so that a kill lands in the middle of an epoch
    return train.cross_entropy(net, batch)


train.fit(
    model,
    loader,
    slow_cross_entropy,
    epochs=4,
    lr=0.01,
    schedule="cosine",
    device="cpu",
    checkpoint=checkpoint,
    resume="--resume" in sys.argv,
    progress=False,
)
torch.save(model.state_dict(), out)
