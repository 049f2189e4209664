"""Train a small net on digits with kdlab.train.fit; data parallel under torchrun (test_distributed.py)."""

import sys

import torch

from kdlab import data, models, runtime, train

runtime.deterministic(threads=1)
split = data.load("digits")
subset = split.train.subset(1024, seed=0)  # 8 global batches of 128, split evenly over 2 processes
runtime.seed_everything(0)
model = models.mlp((64, 32, 10))
loader = data.TensorLoader(*subset.tensors, batch_size=128, seed=0)
seen = {"examples": 0}


def counting_cross_entropy(net, batch):
    seen["examples"] += batch[0].shape[0]
    return train.cross_entropy(net, batch)


history = train.fit(
    model,
    loader,
    counting_cross_entropy,
    epochs=2,
    lr=0.05,
    optimizer="sgd",
    test=split.test,
    device="cpu",
    progress=False,
)
if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
    torch.save(
        {"state": model.state_dict(), "history": history.to_dict(), "seen": seen["examples"]}, sys.argv[1]
    )
