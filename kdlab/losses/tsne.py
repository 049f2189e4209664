"""tsneNet's t-SNE regularizer: the teacher's similarities P, the student's Q, and KL(P || Q).

Source: the tsneNet README (Qiao, "Transferring neural network knowledge with t-SNE
regularizer"), section "Implementation", equations for the similarity matrix P, the similarity
matrix Q and the tsne-loss, which follow van der Maaten and Hinton (2008), "Visualizing data
using t-SNE". The seed computes P from the teacher's 512-dimensional features of a batch of 100
after PCA to 50 dimensions, with perplexity 20, and uses alpha = +inf for Q in its best runs.

Every matrix here is (n, n) over the n points of one batch, with a zero diagonal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kdlab._checks import at_least, finite, float_tensor, positive, same_shape


def _check_features(name: str, features: Tensor) -> int:
    float_tensor(name, features, "(n, dim)", 2, 2)
    if features.shape[0] < 2 or features.shape[1] < 1:
        raise ValueError(
            f"{name} must hold at least 2 points (rows) of at least 1 dimension, got shape "
            f"{tuple(features.shape)}"
        )
    # One min/max pass finds any NaN or infinity (both propagate to it), several times faster than
    # the element-wise check that then writes the message.
    low, high = torch.aminmax(features.detach())
    if not bool(torch.isfinite(low) & torch.isfinite(high)):
        finite(name, features)
    return features.shape[0]


def _squared_distances(features: Tensor) -> Tensor:
    # Distances do not change under translation; centring first keeps the norms small, so the
    # matrix-product form below loses fewer digits to cancellation (it matters in float32).
    # The in-place chain allocates one (n, n) matrix instead of four; autograd accepts it.
    x = features - features.mean(0, keepdim=True)
    sq = (x * x).sum(1)
    return (x @ x.T).mul_(-2.0).add_(sq[:, None]).add_(sq[None, :]).clamp_min_(0.0)


def _pca(x: Tensor, dim: int) -> Tensor:
    # An exact SVD rather than torch.pca_lowrank: the randomized one draws from the global RNG,
    # so P would depend on the seed state. Projecting onto min(n, d) components only rotates
    # the centred points, which leaves every distance unchanged: skip it then.
    if dim >= min(x.shape):
        return x
    centred = x - x.mean(0, keepdim=True)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    return u[:, :dim] * s[:dim]


def _search_dtype(features: Tensor) -> torch.dtype:
    return torch.float64 if features.dtype == torch.float64 else torch.float32


def conditional_p(
    features: Tensor,
    perplexity: float,
    *,
    pca_dim: int | None = None,
    tol: float = 1e-5,
    max_iter: int = 100,
) -> Tensor:
    """The conditionals p_{j|i} of t-SNE (van der Maaten and Hinton, 2008; tsneNet, "Similarity matrix P").

    p_{j|i} = exp(-||x_i - x_j||^2 beta_i) / sum_{k != i} exp(-||x_i - x_k||^2 beta_i), p_{i|i} = 0,
    with each precision beta_i = 1 / (2 sigma_i^2) chosen so that the row's perplexity 2^H(P_i)
    (H in bits) equals ``perplexity``. Each row sums to 1. Shapes: (n, dim) -> (n, n).

    All rows are searched at once. The search works on u = log beta in nats, where
    H(u) = log Z + beta E_p[d] and dH/du = -beta^2 Var_p(d): Newton steps, kept inside a
    per-row bracket and replaced by bisection when they leave it or fail to reduce the error.
    It starts from the beta that hits the target exactly when a row's distances are Gaussian
    with that row's spread, H = log(n - 1) - (beta s)^2 / 2; on network features this takes 4
    to 6 passes. It stops when every row's entropy is within ``tol`` nats of log(perplexity)
    (so 2^H is within about ``tol`` relative of the target) or can no longer move, or after
    ``max_iter`` passes. ``pca_dim`` first projects the features onto their leading principal
    components (the seed uses 50). The search runs without gradient, in float64 for float64
    features and in float32 otherwise, and returns that dtype.
    """
    n = _check_features("features", features)
    if (
        isinstance(perplexity, bool)
        or not isinstance(perplexity, (int, float))
        or not (1 < perplexity < n - 1)
    ):
        raise ValueError(
            f"perplexity must be in (1, {n - 1}) for a batch of {n} points (a row has {n - 1} "
            f"neighbours, so its perplexity 2^H stays below {n - 1}), got {perplexity!r}"
        )
    positive("tol", tol)
    at_least("max_iter", max_iter, 1)
    if pca_dim is not None:
        at_least("pca_dim", pca_dim, 1)

    with torch.no_grad():
        x = features.detach().to(_search_dtype(features))
        if pca_dim is not None:
            x = _pca(x, pca_dim)
        return _search(_shifted_distances(x), math.log(perplexity), tol, max_iter)


def _shifted_distances(x: Tensor) -> Tensor:
    """||x_i - x_j||^2 - min_{k != i} ||x_i - x_k||^2 for j != i, and 0 on the diagonal: (n, dim) -> (n, n).

    Shifting each row by its nearest distance leaves p_{j|i} unchanged and keeps the largest
    weight at exp(0) = 1, so the normaliser never underflows however far apart the points are.
    The shift also cancels ||x_i||^2, so one matrix product of augmented features,
    [x_i, 1] . [-2 x_j, ||x_j||^2], gives every row up to that shift, with no (n, n) passes.
    """
    x = x - x.mean(0, keepdim=True)
    left = torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)
    right = torch.cat([-2.0 * x, (x * x).sum(1, keepdim=True)], dim=1)
    d = left @ right.T
    d.fill_diagonal_(math.inf)
    return d.sub_(d.min(1, keepdim=True).values).fill_diagonal_(0.0)


def _search(d: Tensor, target: float, tol: float, max_iter: int) -> Tensor:
    """Newton/bisection on u = log beta for every row of the shifted squared distances d (n, n) at once.

    With exponents a_j = beta d_j over j != i and weights w_j = exp(-a_j): H = log sum_j w_j +
    E_p[a] and dH/du = -Var_p(a). Returns the conditionals (n, n), written over a buffer of the
    search. Every large tensor lives in one of four (n, n) buffers allocated up front (d, -a,
    w, scratch): fresh allocations cost page faults that, at n in the thousands, outweigh the
    arithmetic.
    """
    n = d.shape[0]
    finfo = torch.finfo(d.dtype)
    mean_d = d.sum(1, keepdim=True) / (n - 1)
    spread = torch.linalg.vector_norm(d, dim=1, keepdim=True).square_() / (n - 1) - mean_d.square()
    spread = spread.clamp_min_(finfo.tiny).sqrt_()
    # The diagonal becomes a point so far away that its exponent is capped (0 * inf would be NaN).
    d.fill_diagonal_(finfo.max)
    # Exponents are capped at a_max, where a weight is far below the dtype's resolution next to
    # the nearest neighbour's weight of 1: exp() of larger ones, whose results are denormal or
    # 0, runs 10 to 100 times slower on x86. The entropy is then that of the capped weights,
    # exactly, and stays finite however large beta grows.
    a_max = -0.5 * math.log(finfo.tiny)
    # beta = inf would give a_j = inf * 0 = NaN; a row whose target is out of reach (ties at the
    # nearest distance) stops at this bound instead.
    u_max = math.log(finfo.max) - 1.0
    # The exact beta when a row's distances are Gaussian with that row's spread s: then
    # H = log(n - 1) - (beta s)^2 / 2. On network features this leaves 3 or 4 Newton steps.
    u = (math.log(math.sqrt(2.0 * (math.log(n - 1) - target))) - spread.log()).clamp_(-u_max, u_max)
    lo = torch.full_like(u, -math.inf)
    hi = torch.full_like(u, math.inf)
    step = torch.ones_like(u)
    last_err = torch.full_like(u, math.inf)
    neg_a, w, scratch = torch.empty_like(d), torch.empty_like(d), torch.empty_like(d)
    z_all = torch.empty_like(u)
    # While more than half the rows still search, all rows are recomputed (a converged row
    # reproduces its weights); after that only the searching rows, whose distances are gathered
    # into the first half of the scratch buffer and their products into the second.
    rows = w_rows = None
    for _ in range(max_iter):
        if rows is None:
            d_k, a_k, w_k, s_k = d, neg_a, w, scratch
        else:
            k = rows.numel()
            d_k = torch.index_select(d, 0, rows, out=scratch[:k])
            a_k, w_k, s_k = neg_a[:k], w_rows[:k], scratch[k : 2 * k]
        torch.mul(d_k, u.exp().neg_(), out=a_k).clamp_min_(-a_max)
        z = torch.exp(a_k, out=w_k).sum(1, keepdim=True)
        neg_mean = torch.mul(w_k, a_k, out=s_k).sum(1, keepdim=True).div_(z)
        second = s_k.mul_(a_k).sum(1, keepdim=True).div_(z)
        if rows is None:
            z_all = z
        else:
            w.index_copy_(0, rows, w_k)
            z_all.index_copy_(0, rows, z)
        err = z.log().sub_(neg_mean).sub_(target)
        abs_err = err.abs()
        # Too much entropy means beta is too small: u becomes the lower end of the bracket.
        high = err > 0
        lo = torch.where(high, u, lo)
        hi = torch.where(high, hi, u)
        newton = torch.addcdiv(u, err, torch.addcmul(second, neg_mean, neg_mean, value=-1.0).clamp_min_(0.0))
        ends = lo + hi
        bracketed = ends.isfinite()
        # Unbracketed rows expand by a doubling step; bracketed ones halve the bracket.
        fallback = torch.where(bracketed, ends.mul_(0.5), u.addcmul(err.sign(), step))
        step = torch.where(bracketed, step, step * 2.0)
        use_newton = (newton > lo) & (newton < hi) & (abs_err < last_err)
        new_u = torch.where(use_newton, newton, fallback).clamp_(-u_max, u_max)
        # A row is done once its entropy is within tol, or when its step no longer moves u.
        keep = (abs_err > tol) & (new_u != u)
        searching = int(keep.sum())
        if searching == 0:
            break
        if rows is None and 2 * searching > n:
            u = torch.where(keep, new_u, u)
            last_err = abs_err
            continue
        index = keep.squeeze(1).nonzero().squeeze(1)
        if rows is None:
            rows, w_rows = index, d.new_empty(searching, n)
        else:
            rows = rows[index]
        u, lo, hi, step, last_err = (t[index] for t in (new_u, lo, hi, step, abs_err))
    return w.fill_diagonal_(0.0).div_(z_all)


def tsne_p(
    features: Tensor,
    perplexity: float,
    *,
    pca_dim: int | None = None,
    tol: float = 1e-5,
    max_iter: int = 100,
) -> Tensor:
    """tsneNet's teacher similarities, "Similarity matrix P": p_ij = (p_{j|i} + p_{i|j}) / (2n).

    The conditionals come from ``conditional_p`` (same arguments), so P is symmetric with a zero
    diagonal and sums to 1 over all pairs. It is a target: computed without gradient, and the
    seed caches it per batch (features of 512 dims, ``pca_dim=50``, ``perplexity=20``). Shapes:
    (n, dim) -> (n, n), float64 for float64 features and float32 otherwise.
    """
    cond = conditional_p(features, perplexity, pca_dim=pca_dim, tol=tol, max_iter=max_iter)
    # A contiguous copy of the transpose uses torch's blocked transpose kernel; adding a strided
    # transpose directly runs about three times slower at n = 2000.
    return cond.T.contiguous().add_(cond).div_(2.0 * cond.shape[0])


def tsne_q(features: Tensor, alpha: float = 1.0) -> Tensor:
    """tsneNet's student similarities, "Similarity matrix Q": a Student-t kernel, alpha degrees of freedom.

    q_ij = (1 + ||y_i - y_j||^2 / alpha)^(-(alpha + 1) / 2) / sum_{k != l} (same for k, l), q_ii = 0,
    normalised over all pairs as in symmetric t-SNE, so Q sums to 1. ``alpha = math.inf`` is the
    Gaussian limit exp(-||y_i - y_j||^2 / 2), the seed's best setting. The kernel is formed in log
    space and normalised with a log-sum-exp, so far-apart points do not underflow every entry to
    0. Differentiable. Shapes: (n, dim) -> (n, n), in the dtype of ``features``.
    """
    n = _check_features("features", features)
    positive("alpha", alpha)
    d = _squared_distances(features)
    if math.isinf(alpha):
        log_kernel = -0.5 * d
    else:
        log_kernel = -0.5 * (alpha + 1.0) * torch.log1p(d / alpha)
    diagonal = torch.eye(n, dtype=torch.bool, device=features.device)
    log_kernel = log_kernel.masked_fill(diagonal, -math.inf)
    return torch.exp(log_kernel - torch.logsumexp(log_kernel.reshape(-1), dim=0))


def tsne_loss(p: Tensor, q: Tensor) -> Tensor:
    """tsneNet's "tsne-loss": KL(P || Q) = sum_ij p_ij log(p_ij / q_ij), a sum over all pairs.

    A sum and not a batch mean because P and Q are each one distribution over the n^2 pairs
    (both sum to 1), as in t-SNE; the seed adds beta times this to the cross-entropy. Terms with
    p_ij = 0 (the diagonal) contribute 0, and q is clamped at the dtype's smallest normal number
    so an underflowed q_ij gives a large finite term, not inf. Computed in float32 at least, as
    half precision cannot hold the typical q_ij ~ 1 / n^2. Shapes: (n, n), (n, n) -> scalar.
    """
    same_shape("p", p, "q", q)
    if p.dim() != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"p and q must be square (n, n) matrices, got shape {tuple(p.shape)}")
    dtype = torch.promote_types(torch.promote_types(p.dtype, q.dtype), torch.float32)
    p, q = p.to(dtype), q.to(dtype)
    return (torch.xlogy(p, p) - p * torch.log(q.clamp_min(torch.finfo(dtype).tiny))).sum()
