import math

import pytest
import torch

from kdlab.losses.mutual import mutual_loss, mutual_terms


def _naive(student, peers, labels, temperature=1.0, ensemble=False):
    """Per-example loops over classes, in float64: CE + (mean of KLs | KL from the mean)."""
    total = 0.0
    n, classes = student.shape
    for i in range(n):
        p_k = torch.softmax(student[i].double(), 0)
        ce = -math.log(float(p_k[labels[i]]))
        q_k = torch.softmax(student[i].double() / temperature, 0)
        targets = [torch.softmax(peer[i].double() / temperature, 0) for peer in peers]
        if ensemble:
            targets = [sum(targets) / len(targets)]
        kl = 0.0
        for p_l in targets:
            kl += sum(float(p_l[c]) * math.log(float(p_l[c]) / float(q_k[c])) for c in range(classes))
        total += ce + temperature**2 * kl / len(targets)
    return total / n


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(6, 5, generator=g) * 2
    peers = [torch.randn(6, 5, generator=g) * 2 for _ in range(3)]
    labels = torch.randint(0, 5, (6,), generator=g)
    return student, peers, labels


@pytest.mark.parametrize("k_peers", [1, 2, 3])
@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_matches_naive_loops(batch, k_peers, ensemble, temperature):
    student, peers, labels = batch
    got = mutual_loss(student, peers[:k_peers], labels, temperature=temperature, ensemble=ensemble)
    expected = _naive(student, peers[:k_peers], labels, temperature, ensemble)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_ensemble_and_mean_of_kls_agree_for_two_students_only(batch):
    student, peers, labels = batch
    one_peer = [mutual_loss(student, peers[:1], labels, ensemble=e) for e in (False, True)]
    torch.testing.assert_close(one_peer[0], one_peer[1])
    two_peers = [float(mutual_loss(student, peers[:2], labels, ensemble=e)) for e in (False, True)]
    # Jensen: the KL from a mixture is at most the mean of the KLs from its parts.
    assert two_peers[1] < two_peers[0]


def test_terms_sum_and_kl_vanishes_for_identical_predictions(batch):
    student, _, labels = batch
    terms = mutual_terms(student, [student.clone(), student.clone()], labels)
    assert float(terms["kl"]) == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(terms["loss"], terms["ce"] + terms["kl"])
    torch.testing.assert_close(terms["ce"], torch.nn.functional.cross_entropy(student, labels))


def test_gradient_reaches_the_student_only(batch):
    student, peers, labels = batch
    student = student.clone().requires_grad_(True)
    peers = [p.clone().requires_grad_(True) for p in peers]
    mutual_loss(student, peers, labels).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    assert all(p.grad is None for p in peers)


def test_gradient_of_one_peer_is_softmax_difference(batch):
    # d/dz_k [CE + KL(p_l || p_k)] = (p_k - onehot) + (p_k - p_l), divided by the batch size.
    student, peers, labels = batch
    z = student.clone().requires_grad_(True)
    mutual_loss(z, peers[:1], labels).backward()
    p_k, p_l = torch.softmax(student, 1), torch.softmax(peers[0], 1)
    onehot = torch.nn.functional.one_hot(labels, 5).float()
    torch.testing.assert_close(z.grad, (2 * p_k - onehot - p_l) / student.shape[0])


def test_bad_inputs(batch):
    student, peers, labels = batch
    with pytest.raises(ValueError, match="at least one peer"):
        mutual_loss(student, [], labels)
    with pytest.raises(TypeError, match="sequence"):
        mutual_loss(student, peers[0], labels)
    with pytest.raises(ValueError, match=r"peer_logits\[1\] has 4 classes, student_logits has 5"):
        mutual_loss(student, [peers[0], peers[1][:, :4]], labels)
    with pytest.raises(ValueError, match="same shape"):
        mutual_loss(student, [peers[0][:3]], labels)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        mutual_loss(student, peers, labels, temperature=0.0)
    with pytest.raises(ValueError, match="labels"):
        mutual_loss(student, peers, labels[:3])
    with pytest.raises(ValueError, match="batch, classes"):
        mutual_loss(student[0], peers, labels)
