"""tsneNet's t-SNE regularizer: P by a vectorised perplexity search, Q by a Student-t kernel, KL(P || Q)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch.testing import assert_close

from kdlab.losses.tsne import conditional_p, tsne_loss, tsne_p, tsne_q


def gaussian_features(n: int, dim: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64).to(dtype)


def clustered_features(n_clusters: int, per_cluster: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Tight clusters far apart: a distance distribution far from the Gaussian the search starts from."""
    g = torch.Generator().manual_seed(seed)
    centres = 10.0 * torch.randn(n_clusters, dim, generator=g)
    noise = 0.3 * torch.randn(n_clusters * per_cluster, dim, generator=g)
    return centres.repeat_interleave(per_cluster, 0) + noise


def relu_features(n: int, seed: int = 0) -> torch.Tensor:
    """512-dimensional features of a random ReLU layer, the size of tsneNet's teacher layer."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 64, generator=g)
    return torch.relu(x @ (torch.randn(64, 512, generator=g) / 8.0))


def row_perplexity(cond: torch.Tensor) -> torch.Tensor:
    """2^H(P_i) with H in bits, from the definition."""
    cond = cond.double()
    entropy_bits = -(torch.xlogy(cond, cond) / math.log(2.0)).sum(1)
    return 2.0**entropy_bits


def reference_conditional(features: np.ndarray, perplexity: float, tol: float = 1e-12) -> np.ndarray:
    """Per-row bisection on beta in float64, one row at a time."""
    n = features.shape[0]
    target = math.log(perplexity)
    cond = np.zeros((n, n))
    for i in range(n):
        others = np.arange(n) != i
        # Squared distances from differences, not from a Gram matrix as the package does.
        row = ((features[others] - features[i]) ** 2).sum(1)
        row = row - row.min()
        beta, lo, hi = 1.0, 0.0, math.inf
        for _ in range(500):
            p = np.exp(-beta * row)
            p /= p.sum()
            entropy = -float(np.sum(p[p > 0] * np.log(p[p > 0])))
            if abs(entropy - target) < tol:
                break
            if entropy > target:
                lo = beta
                beta = 2.0 * beta if hi == math.inf else 0.5 * (lo + hi)
            else:
                hi = beta
                beta = 0.5 * (lo + hi)
        cond[i, others] = p
    return cond


# --- P: the perplexity search -------------------------------------------------------------------


@pytest.mark.parametrize("perplexity", [2.5, 5.0, 20.0, 30.0, 60.0])
@pytest.mark.parametrize(
    "features",
    [gaussian_features(100, 512), relu_features(150), clustered_features(8, 25, 2)],
    ids=["gaussian", "relu", "clustered"],
)
def test_every_row_reaches_the_perplexity(features: torch.Tensor, perplexity: float) -> None:
    achieved = row_perplexity(conditional_p(features, perplexity))
    relative = (achieved / perplexity - 1.0).abs()
    assert float(relative.max()) < 1e-3


def test_perplexity_of_a_larger_batch_and_pca() -> None:
    achieved = row_perplexity(conditional_p(relu_features(300, seed=3), 20.0, pca_dim=50))
    assert float((achieved / 20.0 - 1.0).abs().max()) < 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_p_is_a_symmetric_joint_distribution(dtype: torch.dtype) -> None:
    p = tsne_p(gaussian_features(80, 30, dtype=dtype), 10.0)
    assert p.dtype == dtype and p.shape == (80, 80)
    assert_close(p.sum(), torch.tensor(1.0, dtype=dtype))
    assert_close(p, p.T, rtol=0.0, atol=0.0)
    assert bool((p.diagonal() == 0).all())
    assert bool((p >= 0).all())


def test_conditional_rows_sum_to_one() -> None:
    cond = conditional_p(clustered_features(5, 20, 3), 7.0)
    assert_close(cond.sum(1), torch.ones(100))
    assert bool((cond.diagonal() == 0).all())


def test_p_matches_a_per_row_numpy_search_in_float64() -> None:
    features = gaussian_features(60, 20, seed=1, dtype=torch.float64)
    reference = reference_conditional(features.numpy(), 12.0)
    cond = conditional_p(features, 12.0, tol=1e-12)
    # Both searches stop within 1e-12 nats of the target entropy; what is left is rounding.
    assert_close(cond, torch.from_numpy(reference), rtol=1e-9, atol=1e-15)
    p = tsne_p(features, 12.0, tol=1e-12)
    assert_close(p, torch.from_numpy((reference + reference.T) / 120.0), rtol=1e-9, atol=1e-15)


def test_float32_p_matches_the_float64_reference() -> None:
    # Network-like features: float32 and the 1e-5 nat stopping rule leave about 5e-5 relative.
    features = relu_features(150)
    reference = torch.from_numpy(reference_conditional(features.double().numpy(), 20.0)).float()
    assert_close(conditional_p(features, 20.0), reference, rtol=2e-4, atol=1e-7)
    # Tight clusters far from the mean: float32 squared distances from a Gram matrix lose about
    # 1e-4 of their size to cancellation, which moves p by up to about 2e-3 relative.
    features = clustered_features(4, 30, 10, seed=2)
    reference = torch.from_numpy(reference_conditional(features.double().numpy(), 15.0)).float()
    assert_close(conditional_p(features, 15.0), reference, rtol=5e-3, atol=1e-6)


def test_pca_dim_projects_onto_principal_components() -> None:
    features = gaussian_features(120, 40, seed=4, dtype=torch.float64)
    projected = PCA(n_components=10, svd_solver="full").fit_transform(features.numpy())
    expected = tsne_p(torch.from_numpy(projected), 15.0, tol=1e-10)
    assert_close(tsne_p(features, 15.0, pca_dim=10, tol=1e-10), expected, rtol=1e-6, atol=1e-12)
    # Keeping every component only rotates the points: the same P as without PCA.
    assert_close(tsne_p(features, 15.0, pca_dim=40), tsne_p(features, 15.0), rtol=1e-6, atol=1e-12)


def test_p_is_a_target_without_gradient() -> None:
    features = gaussian_features(30, 5).requires_grad_()
    assert not tsne_p(features, 5.0).requires_grad


def test_identical_points_give_uniform_conditionals() -> None:
    # Every distance ties, so no beta reaches the target: the search must stop, not produce NaN.
    cond = conditional_p(torch.ones(10, 4), 3.0)
    expected = (torch.ones(10, 10) - torch.eye(10)) / 9.0
    assert_close(cond, expected)


def test_far_apart_points_do_not_underflow() -> None:
    features = 1e4 * gaussian_features(50, 8, seed=5)
    achieved = row_perplexity(conditional_p(features, 10.0))
    assert float((achieved / 10.0 - 1.0).abs().max()) < 1e-3


# --- Q: the Student-t kernel --------------------------------------------------------------------


def naive_q(features: torch.Tensor, alpha: float) -> torch.Tensor:
    n = features.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            if i != j:
                d2 = float(((features[i] - features[j]) ** 2).sum())
                kernel[i, j] = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
    return kernel / kernel.sum()


@pytest.mark.parametrize("alpha", [1.0, 2.5, 32.0])
def test_q_matches_a_double_loop(alpha: float) -> None:
    features = gaussian_features(12, 4, seed=6, dtype=torch.float64)
    assert_close(tsne_q(features, alpha), naive_q(features, alpha), rtol=1e-10, atol=1e-14)


def test_q_at_infinite_alpha_is_the_gaussian_limit() -> None:
    features = 0.5 * gaussian_features(15, 3, seed=7, dtype=torch.float64)
    limit = tsne_q(features, math.inf)
    d2 = torch.cdist(features, features) ** 2
    kernel = torch.exp(-d2 / 2.0) * (1.0 - torch.eye(15, dtype=torch.float64))
    assert_close(limit, kernel / kernel.sum(), rtol=1e-10, atol=1e-14)
    # The finite-alpha kernel approaches it: its relative error is O(d^4 / alpha).
    assert_close(tsne_q(features, 1e6), limit, rtol=1e-4, atol=0.0)


@pytest.mark.parametrize("alpha", [1.0, math.inf])
def test_q_stays_finite_for_huge_distances(alpha: float) -> None:
    # Squared distances near 1e6: exp(-d^2 / 2) is 0 for every pair, so a direct form gives 0 / 0.
    features = 1e3 * gaussian_features(20, 3, seed=8, dtype=torch.float64)
    q = tsne_q(features, alpha)
    assert_close(q.sum(), torch.tensor(1.0, dtype=torch.float64))
    # The closest pair keeps the largest similarity instead of every entry underflowing.
    d2 = torch.cdist(features, features) ** 2 + torch.eye(20, dtype=torch.float64) * 1e30
    closest = divmod(int(d2.argmin()), 20)
    assert float(q[closest]) == float(q.max()) > 0
    # float32 keeps about 0.1 of absolute precision in exponents of that size: finite, roughly normalised.
    q32 = tsne_q(features.float(), alpha)
    assert bool(torch.isfinite(q32).all())
    assert abs(float(q32.sum()) - 1.0) < 0.05


def test_q_is_a_symmetric_joint_distribution() -> None:
    q = tsne_q(gaussian_features(25, 6, seed=9), 2.0)
    assert_close(q.sum(), torch.tensor(1.0))
    assert_close(q, q.T)
    assert bool((q.diagonal() == 0).all())


@pytest.mark.parametrize("alpha", [1.0, math.inf])
def test_gradients_flow_through_q(alpha: float) -> None:
    features = gaussian_features(8, 3, seed=10, dtype=torch.float64).requires_grad_()
    p = tsne_p(gaussian_features(8, 20, seed=11, dtype=torch.float64), 3.0)
    assert torch.autograd.gradcheck(lambda y: tsne_loss(p, tsne_q(y, alpha)), (features,))
    tsne_loss(p, tsne_q(features, alpha)).backward()
    assert features.grad is not None and float(features.grad.abs().sum()) > 0


# --- the loss -----------------------------------------------------------------------------------


def test_loss_is_zero_when_p_equals_q() -> None:
    q = tsne_q(gaussian_features(20, 4, seed=12), 1.0)
    assert_close(tsne_loss(q, q), torch.tensor(0.0), atol=1e-6, rtol=0.0)


def test_loss_is_positive_when_p_differs_from_q() -> None:
    p = tsne_p(gaussian_features(30, 16, seed=13), 8.0)
    assert float(tsne_loss(p, tsne_q(gaussian_features(30, 2, seed=14), 1.0))) > 0


def test_loss_equals_a_hand_computed_kl() -> None:
    p = torch.tensor([[0.0, 0.1, 0.2], [0.1, 0.0, 0.2], [0.2, 0.2, 0.0]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.3, 0.1], [0.3, 0.0, 0.1], [0.1, 0.1, 0.0]], dtype=torch.float64)
    expected = 2 * (0.1 * math.log(0.1 / 0.3) + 0.2 * math.log(0.2 / 0.1) + 0.2 * math.log(0.2 / 0.1))
    assert_close(tsne_loss(p, q), torch.tensor(expected, dtype=torch.float64))


def test_loss_terms_with_zero_p_vanish_and_zero_q_stays_finite() -> None:
    p = torch.tensor([[0.0, 0.5], [0.5, 0.0]])
    q = torch.tensor([[0.0, 0.5], [0.5, 0.0]])
    assert float(tsne_loss(p, q)) == 0.0
    assert math.isfinite(float(tsne_loss(p, torch.zeros(2, 2))))


def test_loss_of_half_precision_inputs_is_computed_in_float32() -> None:
    p = tsne_p(gaussian_features(40, 16, seed=15), 8.0)
    q = tsne_q(gaussian_features(40, 2, seed=16), 1.0).bfloat16()
    loss = tsne_loss(p, q)
    assert loss.dtype == torch.float32
    assert_close(loss, tsne_loss(p, q.float()), rtol=0.0, atol=0.0)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("perplexity", [10.0, 9.0, 9.5, 1.0, 0.5, -3.0, math.nan])
def test_perplexity_outside_the_batch_range_is_rejected(perplexity: float) -> None:
    with pytest.raises(ValueError, match=r"perplexity must be in \(1, 9\) for a batch of 10 points.*got"):
        tsne_p(gaussian_features(10, 3), perplexity)


def test_bad_features_are_rejected() -> None:
    with pytest.raises(ValueError, match="features must be finite"):
        tsne_p(torch.tensor([[0.0, 1.0], [math.nan, 2.0], [3.0, 4.0]]), 1.5)
    with pytest.raises(ValueError, match="at least 2 points"):
        tsne_p(torch.ones(1, 4), 1.5)
    with pytest.raises(ValueError, match=r"shape \(n, dim\)"):
        tsne_p(torch.ones(10), 2.0)
    with pytest.raises(ValueError, match="features must be finite"):
        tsne_q(torch.tensor([[0.0, math.inf], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 2 points"):
        tsne_q(torch.ones(1, 3))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        tsne_q(torch.ones(4, 0))
    with pytest.raises(TypeError, match="floating"):
        tsne_p(torch.ones(10, 3, dtype=torch.int64), 2.0)


@pytest.mark.parametrize("alpha", [0.0, -1.0, math.nan])
def test_alpha_must_be_positive(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha must be > 0"):
        tsne_q(gaussian_features(5, 2), alpha)


def test_search_settings_are_checked() -> None:
    features = gaussian_features(10, 3)
    with pytest.raises(ValueError, match="tol must be > 0"):
        tsne_p(features, 3.0, tol=0.0)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1"):
        tsne_p(features, 3.0, max_iter=0)
    with pytest.raises(ValueError, match="pca_dim must be an integer >= 1"):
        tsne_p(features, 3.0, pca_dim=0)


def test_loss_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="p and q must have the same shape"):
        tsne_loss(torch.zeros(3, 3), torch.zeros(4, 4))
    with pytest.raises(ValueError, match="square"):
        tsne_loss(torch.zeros(3, 4), torch.zeros(3, 4))
