"""kdlab.augment and the TensorLoader's augmentation: per-example shifts with zero padding and flips,
applied to the whole batch, checked against a per-image loop and against offsets read back from
the augmented images themselves."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdlab import augment, data, models, train
from kdlab.augment import CIFAR, JITTER, Augment, Draws
from kdlab.train import fit


def naive(x, draws):
    """The same augmentation one image at a time: zero pad, crop at (pad + dy, pad + dx), flip."""
    p, (_, _, h, w) = draws.pad, x.shape
    out = []
    for i in range(x.shape[0]):
        padded = F.pad(x[i], (p, p, p, p))
        top, left = p + int(draws.dy[i]), p + int(draws.dx[i])
        crop = padded[:, top : top + h, left : left + w]
        out.append(crop.flip(-1) if bool(draws.flip[i]) else crop)
    return torch.stack(out)


def numbered(n, channels=3, height=16, width=16):
    """Images whose every pixel holds a distinct positive number: its position (example, channel,
    row, column) is read back from the value; 0 is left for the padding."""
    size = n * channels * height * width
    return torch.arange(1, size + 1, dtype=torch.float32).view(n, channels, height, width)


def read_back(x, out):
    """Per example of the augmented batch ``out`` of :func:`numbered` images ``x``: the example it
    came from, (dy, dx) and whether it was flipped, from two pixels in the middle of channel 0."""
    n, c, h, w = x.shape
    r, k = h // 2, w // 2
    a, b = out[:, 0, r, k].long() - 1, out[:, 0, r, k + 1].long() - 1
    assert bool((a >= 0).all() and (b >= 0).all()), "a middle pixel came from the padding"
    example, row, col = a // (c * h * w), (a % (h * w)) // w, a % w
    flipped = (b % w) < col  # a flip mirrors the columns: the pixel to the right came from the left
    k_source = torch.where(flipped, torch.full_like(col, w - 1 - k), torch.full_like(col, k))
    return example, row - r, col - k_source, flipped


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
@pytest.mark.parametrize(
    "pad, flip, shape", [(4, 0.5, (9, 3, 32, 32)), (2, 0.0, (7, 1, 5, 11)), (3, 1.0, (4, 2, 6, 4))]
)
def test_batched_augmentation_equals_a_per_image_loop(dtype, pad, flip, shape):
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 200 + 1).to(dtype)
    draws = augment.sample(shape[0], Augment(pad, flip), torch.Generator().manual_seed(2))
    out = augment.shift_flip(x, draws)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, naive(x, draws))
    # apply draws just these from a generator in the same state
    assert torch.equal(augment.apply(x, Augment(pad, flip), torch.Generator().manual_seed(2)), out)


@pytest.mark.parametrize("preset", [CIFAR, JITTER], ids=["cifar", "jitter"])
def test_every_offset_in_the_pad_occurs_and_no_other_read_back_from_the_loader_batches(preset):
    n = 4000
    x = numbered(n)
    loader = data.TensorLoader(x, torch.arange(n), batch_size=128, seed=7, augment=preset)
    assert loader.augments and loader.augment == preset
    dys, dxs, flips = [], [], []
    for xb, yb in loader:
        example, dy, dx, flipped = read_back(x, xb)
        assert torch.equal(example, yb), "the labels (second tensor) left their images"
        dys.append(dy), dxs.append(dx), flips.append(flipped)
    dy, dx, flipped = torch.cat(dys), torch.cat(dxs), torch.cat(flips)
    values = 2 * preset.pad + 1
    for offsets in (dy, dx):
        assert sorted(offsets.unique().tolist()) == list(range(-preset.pad, preset.pad + 1))
        counts = torch.bincount(offsets + preset.pad, minlength=values).double()
        sd = math.sqrt(n * (1 / values) * (1 - 1 / values))
        assert bool(((counts - n / values).abs() < 5 * sd).all()), counts  # uniform within 5 sd
    # dy and dx are drawn independently: every one of the 81 (or 25) pairs occurs
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) == values**2
    expected = n * preset.flip
    assert abs(int(flipped.sum()) - expected) <= 5 * math.sqrt(n * 0.25)
    if preset.flip == 0:
        assert not bool(flipped.any())


def test_about_a_fraction_flip_of_the_images_are_mirrored():
    n, generator = 20_000, torch.Generator().manual_seed(0)
    for p in (0.5, 0.2):
        x = numbered(n, channels=1, height=4, width=4)
        out = augment.apply(x, Augment(pad=0, flip=p), generator)
        mirrored = (out == x.flip(-1)).flatten(1).all(1)
        assert bool((mirrored | (out == x).flatten(1).all(1)).all())  # each is itself or its mirror
        sd = math.sqrt(n * p * (1 - p))
        assert abs(int(mirrored.sum()) - n * p) < 5 * sd, (p, int(mirrored.sum()))


def test_pad_zero_and_no_flip_is_the_identity_and_draws_nothing():
    x = torch.randn(8, 3, 6, 6)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert augment.apply(x, Augment(), generator) is x
    assert torch.equal(generator.get_state(), state)
    # the gather path with every offset 0 and no flip copies the images exactly, zeros included
    zero = torch.zeros(8, dtype=torch.int64)
    assert torch.equal(augment.shift_flip(x, Draws(zero, zero, zero.bool(), pad=4)), x)
    # a loader with the identity yields what a loader without augmentation yields
    y = torch.arange(8)
    plain = data.TensorLoader(x, y, batch_size=3, seed=5)
    identity = data.TensorLoader(x, y, batch_size=3, seed=5, augment=Augment(pad=0, flip=0.0))
    assert not identity.augments and not plain.augments and plain.augment is None
    for _ in range(2):
        for a, b in zip(plain, identity, strict=True):
            assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))
    assert torch.equal(plain.generator.get_state(), identity.generator.get_state())


def test_shift_fills_with_zeros_and_moves_by_the_drawn_offset():
    x = torch.ones(1, 1, 5, 5)
    one = torch.ones(1, dtype=torch.int64)
    out = augment.shift_flip(x, Draws(one * 2, -one, one.bool() & False, pad=2))
    # out[r, k] = x[r + 2, k - 1]: rows 3, 4 and column 0 come from outside the image
    expected = torch.zeros(5, 5)
    expected[:3, 1:] = 1
    assert torch.equal(out[0, 0], expected)


def test_without_augment_the_loader_batches_as_before():
    x, y = torch.randn(50, 3, 4, 4), torch.arange(50)
    loader = data.TensorLoader(x, y, batch_size=16, seed=11)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(11))
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([b[0] for b in batches]), x[order])
    assert torch.equal(torch.cat([b[1] for b in batches]), order)


def epochs_of(loader, epochs):
    return [tuple(t.clone() for t in batch) for _ in range(epochs) for batch in loader]


@pytest.mark.parametrize("shuffle", [True, False])
def test_one_seed_gives_one_sequence_of_augmented_batches(shuffle):
    x, y = torch.randn(100, 3, 8, 8), torch.arange(100)

    def make(seed):
        return data.TensorLoader(x, y, batch_size=32, shuffle=shuffle, seed=seed, augment=CIFAR)

    first, again, other = epochs_of(make(3), 3), epochs_of(make(3), 3), epochs_of(make(4), 3)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    # each epoch draws anew: the same example is augmented differently in epochs 1 and 2
    per_epoch = len(make(3))
    epoch1, epoch2 = first[:per_epoch], first[per_epoch : 2 * per_epoch]
    assert all(not torch.equal(a[0], b[0]) for a, b in zip(epoch1, epoch2, strict=True))
    # only the first tensor is augmented
    assert all(torch.equal(b[1], y[b[1]]) for b in first)


@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_together_are_the_global_augmented_batch(shuffle):
    x, y = torch.randn(70, 2, 6, 6), torch.arange(70)
    whole = data.TensorLoader(x, y, batch_size=16, shuffle=shuffle, seed=2, augment=CIFAR)
    shards = []
    for rank in range(2):
        loader = data.TensorLoader(x, y, batch_size=16, shuffle=shuffle, seed=2, augment=CIFAR)
        loader.shard(rank, 2)
        shards.append(list(loader))
    for k, (xb, yb) in enumerate(whole):
        assert torch.equal(shards[0][k][0], xb[0::2]) and torch.equal(shards[1][k][0], xb[1::2])
        assert torch.equal(shards[0][k][1], yb[0::2]) and torch.equal(shards[1][k][1], yb[1::2])


def test_loader_state_dict_resumes_the_augmented_batches():
    x, y = torch.randn(60, 3, 8, 8), torch.arange(60)
    loader = data.TensorLoader(x, y, batch_size=16, seed=9, augment=CIFAR)
    list(loader)
    state = loader.state_dict()
    expected = epochs_of(loader, 2)
    resumed = data.TensorLoader(x, y, batch_size=16, seed=0, augment=CIFAR)
    resumed.load_state_dict(state)
    for a, b in zip(expected, epochs_of(resumed, 2), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


SHIFT_FLIP = Augment(pad=1, flip=0.5)


class Interrupt(Exception):
    pass


def test_fit_resumes_an_augmented_run_bitwise(tmp_path):
    split = data.load("digits")

    def loader(augmentation=SHIFT_FLIP):
        return data.TensorLoader(*split.train.tensors, batch_size=64, seed=0, augment=augmentation)

    def net():
        torch.manual_seed(0)
        return models.mlp((64, 32, 10), dropout=0.3)

    knobs = dict(epochs=3, lr=0.05, optimizer="sgd", weight_decay=5e-4, device="cpu")
    reference = net()
    fit(reference, loader(), checkpoint=tmp_path / "a.pt", **knobs)
    per_epoch, calls = len(loader()), {"n": 0}

    def interrupting(model, batch):
        calls["n"] += 1
        if calls["n"] > 2 * per_epoch + 3:  # dies in the middle of the third epoch
            raise Interrupt
        return train.cross_entropy(model, batch)

    with pytest.raises(Interrupt):
        fit(net(), loader(), interrupting, checkpoint=tmp_path / "b.pt", **knobs)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epochs_done"] == 2
    resumed = net()
    assert len(fit(resumed, loader(), checkpoint=tmp_path / "b.pt", resume=True, **knobs)) == 3
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # the augmentation did reach the training: without it the weights differ
    plain = net()
    fit(plain, loader(None), **knobs)
    pairs = zip(plain.state_dict().values(), reference.state_dict().values(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="pad must be an integer >= 0, got -1"):
        Augment(pad=-1)
    with pytest.raises(ValueError, match="pad must be an integer >= 0, got 1.5"):
        Augment(pad=1.5)
    with pytest.raises(ValueError, match=r"flip must be in \[0.0, 1.0\], got 1.5"):
        Augment(flip=1.5)
    generator = torch.Generator()
    shape = r"x must have shape \(batch, channels, height, width\), got shape \(2, 3, 4\)"
    with pytest.raises(ValueError, match=shape):
        augment.apply(torch.zeros(2, 3, 4), CIFAR, generator)
    with pytest.raises(TypeError, match="generator must be a torch.Generator, got int"):
        augment.apply(torch.zeros(2, 3, 4, 4), CIFAR, 0)
    with pytest.raises(TypeError, match="augment must be a kdlab.augment.Augment, got tuple"):
        augment.apply(torch.zeros(2, 3, 4, 4), (4, 0.5), generator)
    with pytest.raises(ValueError, match="draws must hold one draw per example: x has 3, draws has 2"):
        augment.shift_flip(torch.zeros(3, 1, 4, 4), augment.sample(2, CIFAR, generator))
    with pytest.raises(ValueError, match=r"augment needs images.*got shape \(10, 30\)"):
        data.TensorLoader(torch.zeros(10, 30), torch.zeros(10), augment=CIFAR)
    with pytest.raises(TypeError, match="augment must be a kdlab.augment.Augment or None, got str"):
        data.TensorLoader(torch.zeros(10, 1, 4, 4), augment="cifar")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cpu_generator_gives_the_same_batches_on_the_gpu():
    x, y = torch.randn(300, 3, 32, 32), torch.arange(300)
    cpu = epochs_of(data.TensorLoader(x, y, batch_size=64, seed=1, augment=CIFAR), 2)
    gpu = epochs_of(data.TensorLoader(x, y, batch_size=64, seed=1, augment=CIFAR, device="cuda"), 2)
    for a, b in zip(cpu, gpu, strict=True):
        assert b[0].device.type == "cuda"
        assert torch.equal(a[0], b[0].cpu()) and torch.equal(a[1], b[1].cpu())
