"""Born-Again Trees (Breiman & Shang 1996) and MUNGE (Bucila et al. 2006)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import BaggingClassifier, RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from kdlab import metrics, models
from kdlab.data import Tensors
from kdlab.methods.common import train_model
from kdlab.methods.compression import (
    BREIMAN_SHANG_TABLE2,
    born_again_tree,
    compare_trees,
    cv_pruned_cart,
    smear,
)
from kdlab.methods.munge import (
    MIXED_MEMBERS,
    compare_munge,
    ensemble_selection,
    mixed_ensemble,
    munge,
    munge_student,
    munge_transfer_set,
    standardise,
    table_split,
)


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    rows = np.random.default_rng(0).permutation(len(y))[:240]
    return x[rows], y[rows]


@pytest.fixture(scope="module")
def bagged(cancer):
    x, y = cancer
    return BaggingClassifier(DecisionTreeClassifier(), n_estimators=10, random_state=0).fit(x, y)


def brute_force_neighbours(x: np.ndarray, nominal: tuple[int, ...] = ()) -> np.ndarray:
    """Nearest other row: squared distance on [0, 1]-scaled continuous columns + 1 per nominal mismatch."""
    cont = [c for c in range(x.shape[1]) if c not in nominal]
    lo, hi = x[:, cont].min(axis=0), x[:, cont].max(axis=0)
    scaled = (x[:, cont] - lo) / np.where(hi > lo, hi - lo, 1.0)
    out = np.empty(len(x), dtype=int)
    for i in range(len(x)):
        best, best_d = -1, np.inf
        for j in range(len(x)):
            if j == i:
                continue
            d = sum((scaled[i, a] - scaled[j, a]) ** 2 for a in range(len(cont)))
            d += sum(float(x[i, c] != x[j, c]) for c in nominal)
            if d < best_d:
                best, best_d = j, d
        out[i] = best
    return out


# ------------------------------------------------------------------------------------ smear


def test_smear_shape_and_determinism():
    x = np.random.default_rng(1).normal(size=(30, 4))
    a = smear(x, 100, p=0.3, rng=7)
    assert a.shape == (100, 4) and a.dtype == np.float64
    np.testing.assert_array_equal(a, smear(x, 100, p=0.3, rng=7))
    assert not np.array_equal(a, smear(x, 100, p=0.3, rng=8))


def test_smear_p0_is_a_bootstrap_and_p1_draws_from_marginals():
    x = np.random.default_rng(2).normal(size=(25, 3))
    boot = smear(x, 200, p=0.0, rng=0)
    assert all(any(np.array_equal(row, r) for r in x) for row in boot)
    marginal = smear(x, 200, p=1.0, rng=0)
    for m in range(3):
        assert np.isin(marginal[:, m], x[:, m]).all()
    assert not np.isin(smear(x, 200, p=1.0, scale=0.1, rng=0), x).any()


def test_smear_alters_each_feature_with_probability_p():
    # Both columns hold the row index: a point's two coordinates agree when neither was altered,
    # up to donors that coincide, whose chance (about 1/rows) is counted too.
    rows, p = 1000, 0.3
    x = np.repeat(np.arange(rows, dtype=float)[:, None], 2, axis=1)
    out = smear(x, 40_000, p=p, rng=3)
    expected = (1 - p) ** 2 + (p**2 + 2 * p * (1 - p)) / rows
    assert abs(np.mean(out[:, 0] == out[:, 1]) - expected) < 0.01


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": -0.1}, "p must be in"),
        ({"p": 1.5}, "p must be in"),
        ({"scale": -1.0}, "scale must be in"),
    ],
)
def test_smear_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        smear(np.ones((3, 2)), 5, **kwargs)


def test_smear_rejects_nan_and_bad_n():
    x = np.ones((3, 2))
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match="x must be finite"):
        smear(x, 5)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        smear(np.ones((3, 2)), 0)


# ----------------------------------------------------------------------------- Born-Again Trees


def test_born_again_tree_picks_least_training_error_smallest_on_ties(cancer, bagged):
    x, y = cancer
    ba = born_again_tree(bagged, x, y, n_synthetic=600, p=0.3, random_state=4)

    # Independently: every subtree that scikit-learn's own path selects, refit and scored.
    x_born = np.vstack([ba.x_synthetic, x])
    y_born = np.concatenate([ba.y_synthetic, bagged.predict(x)])
    np.testing.assert_array_equal(ba.y_synthetic, bagged.predict(ba.x_synthetic))
    path = DecisionTreeClassifier(random_state=4).cost_complexity_pruning_path(x_born, y_born)
    scored = []
    for alpha in np.unique(path.ccp_alphas):
        tree = DecisionTreeClassifier(random_state=4, ccp_alpha=alpha).fit(x_born, y_born)
        scored.append((np.mean(tree.predict(x) != y), tree.get_n_leaves()))
    best_error = min(e for e, _ in scored)
    fewest_leaves = min(n for e, n in scored if e == best_error)

    assert ba.train_error == pytest.approx(best_error)
    assert np.mean(ba.tree.predict(x) != y) == pytest.approx(best_error)
    assert ba.n_leaves == fewest_leaves == ba.tree.get_n_leaves()
    assert sorted(ba.path_n_leaves.tolist()) == sorted(n for _, n in scored)
    assert min(ba.path_train_errors) == pytest.approx(best_error)
    np.testing.assert_allclose(ba.path_alphas, np.unique(path.ccp_alphas), rtol=1e-9, atol=1e-15)
    assert ba.n_synthetic == len(ba.x_synthetic) == 600
    # The reported alpha selects the same subtree in scikit-learn's own pruning.
    refit = DecisionTreeClassifier(random_state=4, ccp_alpha=ba.ccp_alpha).fit(x_born, y_born)
    assert refit.get_n_leaves() == ba.n_leaves
    np.testing.assert_array_equal(refit.predict(x), ba.tree.predict(x))


def test_born_again_tree_rejects_unfitted_ensemble_and_bad_labels(cancer):
    x, y = cancer
    with pytest.raises(ValueError, match="ensemble must be a fitted classifier"):
        born_again_tree(BaggingClassifier(), x, y, n_synthetic=10)
    fitted = BaggingClassifier(n_estimators=2, random_state=0).fit(x, y)
    with pytest.raises(ValueError, match="y_train must have shape"):
        born_again_tree(fitted, x, y[:-1], n_synthetic=10)
    x_nan = x.copy()
    x_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="x_train must be finite"):
        born_again_tree(fitted, x_nan, y, n_synthetic=10)


def test_cv_pruned_cart_matches_refitting_every_alpha(cancer):
    x, y = cancer
    chosen = cv_pruned_cart(x, y, folds=5, random_state=5)

    alphas = DecisionTreeClassifier(random_state=5).cost_complexity_pruning_path(x, y).ccp_alphas
    alphas = np.unique(np.maximum.accumulate(alphas))
    candidates = list(np.sqrt(alphas[:-1] * alphas[1:])) + [alphas[-1]]
    folds = list(StratifiedKFold(5, shuffle=True, random_state=5).split(x, y))
    wrong = []
    for alpha in candidates:
        trees = [DecisionTreeClassifier(random_state=5, ccp_alpha=alpha).fit(x[tr], y[tr]) for tr, _ in folds]
        pairs = zip(trees, folds, strict=True)
        wrong.append(sum(int((t.predict(x[te]) != y[te]).sum()) for t, (_, te) in pairs))
    best = max(i for i, w in enumerate(wrong) if w == min(wrong))
    assert 0 < best < len(candidates) - 1  # neither the full tree nor the root: a real choice
    assert chosen.ccp_alpha == pytest.approx(candidates[best])
    assert chosen.get_n_leaves() == DecisionTreeClassifier(random_state=5, ccp_alpha=candidates[best]).fit(
        x, y
    ).get_n_leaves()


def test_compare_trees_rows(cancer):
    x, y = cancer
    rows = compare_trees(x, y, seeds=(0, 1), test_size=0.25, n_synthetic=300, folds=3)
    assert [r["seed"] for r in rows] == [0, 1]
    for r in rows:
        for key in ("cart_error", "ba_cart_error", "ensemble_error", "ba_fidelity"):
            assert 0.0 <= r[key] <= 1.0
        # The test set has 60 points: every rate is a whole number of them.
        assert r["cart_error"] * 60 == pytest.approx(round(r["cart_error"] * 60))
    with pytest.raises(ValueError, match="ensemble must be one of"):
        compare_trees(x, y, seeds=(0,), ensemble="boosting")
    with pytest.raises(ValueError, match="test_size must be a fraction"):
        compare_trees(x, y, seeds=(0,), test_size=1.0)


def test_seed_table_has_the_five_data_sets():
    assert BREIMAN_SHANG_TABLE2["breast cancer"] == {"ba_cart": 3.9, "cart": 5.9, "arced_cart": 3.0}
    for row in BREIMAN_SHANG_TABLE2.values():  # the seed's claim: BA-CART beats CART everywhere
        assert row["arced_cart"] <= row["ba_cart"] < row["cart"]


# ------------------------------------------------------------------------------------ MUNGE


def test_munge_shape_dtype_and_determinism():
    x = np.random.default_rng(5).normal(size=(40, 3))
    out = munge(x, size_multiplier=3, p=0.5, s=2.0, rng=1)
    assert out.shape == (120, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, munge(x, size_multiplier=3, p=0.5, s=2.0, rng=1))
    assert not np.array_equal(out, munge(x, size_multiplier=3, p=0.5, s=2.0, rng=2))
    np.testing.assert_array_equal(out, munge(torch.from_numpy(x), size_multiplier=3, p=0.5, s=2.0, rng=1))


def test_munge_p0_returns_exact_copies():
    x = np.random.default_rng(6).normal(size=(20, 4)).astype(np.float32)
    np.testing.assert_array_equal(munge(x, size_multiplier=4, p=0.0, s=1.0, rng=0), np.tile(x, (4, 1)))


def test_munge_p1_huge_s_lands_on_the_brute_force_neighbour():
    x = np.random.default_rng(7).normal(size=(35, 3)) * np.array([1.0, 100.0, 0.01])
    out = munge(x, size_multiplier=2, p=1.0, s=1e9, rng=0)
    target = np.tile(x[brute_force_neighbours(x)], (2, 1)).astype(np.float32)
    np.testing.assert_allclose(out, target, rtol=1e-6, atol=1e-6)


def test_munge_smear_has_sd_distance_over_s():
    x = np.random.default_rng(8).normal(size=(50, 2))
    s = 2.5
    partner = x[brute_force_neighbours(x)]
    out = munge(x, size_multiplier=400, p=1.0, s=s, rng=3).astype(np.float64).reshape(400, 50, 2)
    z = (out - partner) / (np.abs(x - partner) / s)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03


def test_munge_swaps_each_attribute_with_probability_p():
    x = np.random.default_rng(9).normal(size=(60, 5))
    out = munge(x, size_multiplier=200, p=0.3, s=1.0, rng=4).reshape(200, 60, 5)
    assert abs(np.mean(out != x.astype(np.float32)) - 0.3) < 0.01


def test_munge_nominal_columns_are_copied_from_the_hamming_aware_neighbour():
    rng = np.random.default_rng(10)
    x = np.column_stack([rng.normal(size=30), rng.integers(0, 3, size=30), rng.normal(size=30)])
    out = munge(x, size_multiplier=1, p=1.0, s=1e9, nominal=(1,), rng=0)
    partner = x[brute_force_neighbours(x, nominal=(1,))]
    np.testing.assert_array_equal(out[:, 1], partner[:, 1].astype(np.float32))
    np.testing.assert_allclose(out, partner.astype(np.float32), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": -0.5}, r"p must be in \[0.0, 1.0\], got -0.5"),
        ({"p": 1.01}, r"p must be in \[0.0, 1.0\], got 1.01"),
        ({"s": 0.0}, "s must be > 0, got 0.0"),
        ({"s": -2.0}, "s must be > 0, got -2.0"),
        ({"size_multiplier": 0}, "size_multiplier must be an integer >= 1, got 0"),
        ({"nominal": (5,)}, "nominal must hold column indices"),
    ],
)
def test_munge_rejects_bad_arguments(kwargs, message):
    arguments = {"size_multiplier": 1, "p": 0.5, "s": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        munge(np.random.default_rng(0).normal(size=(5, 2)), **arguments)


def test_munge_rejects_nan_and_bad_shapes():
    x = np.random.default_rng(0).normal(size=(5, 2))
    x[2, 0] = np.nan
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN"):
        munge(x, size_multiplier=1, p=0.5, s=1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(examples, features\)"):
        munge(np.ones(4), size_multiplier=1, p=0.5, s=1.0)
    with pytest.raises(ValueError, match="x must have at least 2 row"):
        munge(np.ones((1, 3)), size_multiplier=1, p=0.5, s=1.0)


# ------------------------------------------------------------------ MUNGE transfer set and student


def linear_rule(x: torch.Tensor) -> torch.Tensor:
    """A fixed 'ensemble': three classes by the sign pattern of two pixel sums, as scores."""
    flat = x.flatten(1)
    a, b = flat[:, :8].sum(1), flat[:, 8:].sum(1)
    return torch.stack([a - b, b - a, 0.5 * (a + b)], dim=1)


def test_munge_transfer_set_keeps_the_originals_first_and_labels_everything_by_the_ensemble():
    x = torch.from_numpy(np.random.default_rng(11).normal(size=(30, 1, 4, 4)).astype(np.float32))
    transfer = munge_transfer_set(linear_rule, x, size_multiplier=3, p=0.4, s=2.0, rng=5)
    assert transfer.x.shape == (120, 1, 4, 4) and transfer.x.dtype == torch.float32
    assert transfer.y.dtype == torch.int64
    torch.testing.assert_close(transfer.x[:30], x)
    synthetic = munge(x.flatten(1).numpy(), size_multiplier=3, p=0.4, s=2.0, rng=5)
    np.testing.assert_array_equal(transfer.x[30:].flatten(1).numpy(), synthetic)
    expected = [int(np.argmax(linear_rule(row[None])[0].numpy())) for row in transfer.x]
    assert transfer.y.tolist() == expected


def test_munge_transfer_set_checks_the_ensemble_and_its_knobs():
    x = torch.randn(10, 16)
    with pytest.raises(ValueError, match="ensemble must return one row per input"):
        munge_transfer_set(lambda v: linear_rule(v)[:5], x, size_multiplier=1, p=0.5, s=1.0)
    with pytest.raises(ValueError, match=r"ensemble\(x\) must have shape \(batch, classes\)"):
        munge_transfer_set(lambda v: v.sum(1), x, size_multiplier=1, p=0.5, s=1.0)
    with pytest.raises(ValueError, match=r"p must be in \[0.0, 1.0\], got 2.0"):
        munge_transfer_set(linear_rule, x, size_multiplier=1, p=2.0, s=1.0)
    x[3, 3] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        munge_transfer_set(linear_rule, x, size_multiplier=1, p=0.5, s=1.0)


def test_munge_student_is_a_128_unit_net_trained_on_the_votes():
    knobs = dict(epochs=3, batch_size=64, lr=1e-2, seed=2, device="cpu", progress=False)
    x = torch.from_numpy(np.random.default_rng(12).normal(size=(200, 16)).astype(np.float32))
    transfer = munge_transfer_set(linear_rule, x, size_multiplier=2, p=0.5, s=2.0, rng=0)
    student, history = munge_student(transfer, classes=3, **knobs)
    assert [m.out_features for m in student.modules() if isinstance(m, torch.nn.Linear)] == [128, 3]
    assert len(history) == 3
    # The same net and knobs through train_model directly: the same weights.
    reference, _ = train_model(lambda: models.mlp((16, 128, 3)), transfer, **knobs)
    for a, b in zip(student.state_dict().values(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    # It learnt the ensemble's rule: agreement on fresh points well above the 1/3 of guessing.
    fresh = torch.randn(500, 16, generator=torch.Generator().manual_seed(1))
    assert metrics.agreement(metrics.predict(student, fresh), linear_rule(fresh)) > 0.9


def test_munge_student_rejects_bad_labels_and_nan():
    x = torch.randn(12, 5)
    with pytest.raises(ValueError, match=r"transfer.y must lie in \[0, 1\]"):
        munge_student(Tensors(x, torch.arange(12) % 3), classes=2, epochs=1)
    with pytest.raises(ValueError, match="hidden must be an integer >= 1, got 0"):
        munge_student(Tensors(x, torch.arange(12) % 2), classes=2, hidden=0, epochs=1)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="transfer.x must be finite"):
        munge_student(Tensors(x, torch.arange(12) % 2), classes=2, epochs=1)


def test_munge_swaps_only_to_the_neighbours_value_and_keeps_the_rest():
    # With a huge s the smear vanishes: every attribute is either e's own value or exactly e''s.
    x = np.random.default_rng(13).normal(size=(40, 6))
    partner = x[brute_force_neighbours(x)].astype(np.float32)
    out = munge(x, size_multiplier=50, p=0.5, s=1e12, rng=6).reshape(50, 40, 6)
    own = np.isclose(out, x.astype(np.float32), rtol=0, atol=1e-6)
    theirs = np.isclose(out, partner, rtol=0, atol=1e-6)
    assert (own | theirs).all()
    assert abs(np.mean(theirs & ~own) - 0.5) < 0.02


# ------------------------------------------------------------ MUNGE on a table, as the paper ran it


def test_standardise_uses_the_training_statistics_only():
    rng = np.random.default_rng(14)
    x_train = rng.normal(3.0, 2.0, size=(50, 4))
    x_train[:, 2] = 7.0  # constant on the training part: centred only
    x_test = rng.normal(size=(20, 4))
    train, test = standardise(x_train, x_test)
    scaler = StandardScaler().fit(x_train)  # scikit-learn's own reading of the same rule
    np.testing.assert_allclose(train, scaler.transform(x_train), atol=1e-5)
    np.testing.assert_allclose(test, scaler.transform(x_test), atol=1e-5)
    assert train.dtype == test.dtype == np.float32
    np.testing.assert_allclose(test[:, 2], x_test[:, 2] - 7.0, atol=1e-5)
    with pytest.raises(ValueError, match="others\\[0\\] must have 4 columns, got 3"):
        standardise(x_train, x_test[:, :3])


def test_table_split_is_stratified_disjoint_and_standardised_on_train(cancer):
    x, y = cancer
    train, val, test = table_split(x, y, train_size=60, val_size=40, seed=3)
    assert (len(train), len(val), len(test)) == (60, 40, len(y) - 100)
    assert train.y.dtype == torch.int64 and train.x.dtype == torch.float32
    # The same rows as scikit-learn's stratified split, scaled by the training part's statistics.
    x_tr, x_rest, y_tr, y_rest = train_test_split(x, y, train_size=60, stratify=y, random_state=3)
    x_va, x_te, _, y_te = train_test_split(x_rest, y_rest, train_size=40, stratify=y_rest, random_state=3)
    mean, sd = x_tr.mean(axis=0), x_tr.std(axis=0)
    np.testing.assert_allclose(train.x.numpy(), (x_tr - mean) / sd, atol=1e-4)
    np.testing.assert_allclose(test.x.numpy(), (x_te - mean) / sd, atol=1e-4)
    np.testing.assert_array_equal(test.y.numpy(), y_te)
    assert abs(float(train.y.float().mean()) - float(np.mean(y))) < 0.02
    with pytest.raises(ValueError, match="must leave rows for the test"):
        table_split(x, y, train_size=200, val_size=40)


def test_mixed_ensemble_averages_its_members_probabilities(cancer):
    x, y = cancer
    members = ("logistic_regression", "random_forest", "naive_bayes", "boosted_stumps")
    ensemble = mixed_ensemble(members, random_state=2).fit(x[:150], y[:150])
    kinds = [type(model).__name__ for _, model in ensemble.estimators]
    assert kinds == ["LogisticRegression", "RandomForestClassifier", "GaussianNB", "AdaBoostClassifier"]
    # Each member fitted on its own, then averaged by hand: the ensemble's probabilities.
    alone = [clone(model).fit(x[:150], y[:150]).predict_proba(x[150:]) for _, model in ensemble.estimators]
    np.testing.assert_allclose(ensemble.predict_proba(x[150:]), np.mean(alone, axis=0), atol=1e-12)
    assert set(MIXED_MEMBERS) >= set(members) and len(MIXED_MEMBERS) == 10
    with pytest.raises(ValueError, match="members must be one of"):
        mixed_ensemble(("svm", "deep_net"))
    with pytest.raises(ValueError, match="members must not repeat a model"):
        mixed_ensemble(("svm", "svm"))


class FixedModel:
    """A fitted 'model' whose probabilities on the held-out part are given."""

    classes_ = np.array([0, 1])

    def __init__(self, probabilities):
        self.probabilities = np.array(probabilities, dtype=float)

    def predict_proba(self, x):
        return self.probabilities


def test_ensemble_selection_picks_greedily_with_replacement_and_keeps_the_best_prefix():
    # Labels (0, 1). a is right on row 0 and unsure on row 1, b the mirror image, c wrong on both.
    # RMSE against the one-hot labels, worked by hand:
    #   round 1: a and b score sqrt(0.125) = 0.354 each, a is first;   c scores 1.
    #   round 2: (a + b) / 2 = [[.75, .25], [.25, .75]] scores 0.25;  (a + a) / 2 = a scores 0.354.
    #   round 3: (a + b + a) / 3 and (a + b + b) / 3 score sqrt(0.0694) = 0.264 (worse), a first.
    library = {"a": FixedModel([[1, 0], [0.5, 0.5]]), "b": FixedModel([[0.5, 0.5], [0, 1]]),
               "c": FixedModel([[0, 1], [1, 0]])}
    chosen = ensemble_selection(library, np.zeros((2, 1)), np.array([0, 1]), rounds=3)
    np.testing.assert_allclose(chosen.val_rmse, [np.sqrt(0.125), 0.25, np.sqrt(0.25 / 3.6)], rtol=1e-3)
    assert chosen.size == 2 and chosen.counts == {"a": 1, "b": 1}
    assert chosen.weights == {"a": 0.5, "b": 0.5}
    np.testing.assert_allclose(chosen.predict_proba(np.zeros((2, 1))), [[0.75, 0.25], [0.25, 0.75]])
    np.testing.assert_array_equal(chosen.predict(np.zeros((2, 1))), [0, 1])
    with pytest.raises(ValueError, match="rounds must be an integer >= 1, got 0"):
        ensemble_selection(library, np.zeros((2, 1)), np.array([0, 1]), rounds=0)


def test_ensemble_selection_on_a_fitted_library_weights_its_members(cancer):
    x, y = cancer
    library = mixed_ensemble(("logistic_regression", "decision_tree", "knn"), random_state=0)
    library.fit(x[:120], y[:120])
    chosen = ensemble_selection(library, x[120:180], y[120:180], rounds=10)
    assert sum(chosen.counts.values()) == chosen.size <= 10 and len(chosen.val_rmse) == 10
    assert chosen.size == int(np.argmin(chosen.val_rmse)) + 1
    members = library.named_estimators_
    by_hand = sum(w * members[name].predict_proba(x[180:]) for name, w in chosen.weights.items())
    np.testing.assert_allclose(chosen.predict_proba(x[180:]), by_hand)
    assert pytest.approx(sum(chosen.weights.values())) == 1.0


def test_munge_transfer_set_labels_with_a_scikit_learn_ensemble(cancer):
    x, y = cancer
    labels = np.where(y == 1, 2, 0)  # classes 0 and 2: the probabilities keep their columns
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(x, labels)
    votes = munge_transfer_set(forest, x, size_multiplier=2, p=0.3, s=2.0, rng=1)
    soft = munge_transfer_set(forest, x, size_multiplier=2, p=0.3, s=2.0, targets="probabilities", rng=1)
    x32 = x.astype(np.float32)  # a numpy table becomes float32 inputs first, then is munged
    inputs = np.vstack([x32, munge(x32, size_multiplier=2, p=0.3, s=2.0, rng=1)])
    np.testing.assert_array_equal(votes.x.numpy(), inputs)
    torch.testing.assert_close(soft.x, votes.x)
    np.testing.assert_array_equal(votes.y.numpy(), forest.predict(inputs))
    expected = np.zeros((len(inputs), 3), dtype=np.float32)
    expected[:, [0, 2]] = forest.predict_proba(inputs)
    np.testing.assert_allclose(soft.y.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="targets must be one of"):
        munge_transfer_set(forest, x, size_multiplier=1, p=0.3, s=2.0, targets="logits")
    with pytest.raises(ValueError, match="ensemble must be a fitted classifier"):
        munge_transfer_set(RandomForestClassifier(), x, size_multiplier=1, p=0.3, s=2.0)


def test_munge_student_on_one_hot_probabilities_equals_training_on_labels():
    # The plain cross-entropy with a one-hot target is the cross-entropy with the class index.
    knobs = dict(epochs=2, batch_size=32, lr=1e-2, seed=3, device="cpu", progress=False)
    x = torch.from_numpy(np.random.default_rng(15).normal(size=(96, 5)).astype(np.float32))
    y = torch.from_numpy(np.random.default_rng(16).integers(0, 3, size=96))
    on_labels, _ = munge_student(Tensors(x, y), classes=3, hidden=8, **knobs)
    on_probabilities, _ = munge_student(
        Tensors(x, torch.nn.functional.one_hot(y, 3).float()), classes=3, hidden=8, **knobs
    )
    for a, b in zip(on_labels.state_dict().values(), on_probabilities.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="transfer.y must hold probabilities"):
        munge_student(Tensors(x, torch.full((96, 3), 0.5)), classes=3, epochs=1)
    with pytest.raises(ValueError, match=r"transfer.y must have shape \(96, 3\)"):
        munge_student(Tensors(x, torch.full((96, 2), 0.5)), classes=3, epochs=1)


def test_compare_munge_rows_match_the_pieces_run_by_hand(cancer):
    x, y = cancer
    members = ("logistic_regression", "naive_bayes")
    knobs = dict(train_size=40, val_size=40, multipliers=(2, 1), p=0.5, s=1.0, members=members, steps=12,
                 batch_size=32, lr=3e-3, hidden=16, device="cpu")
    rows = compare_munge(x, y, seeds=(4,), **knobs)
    (row,) = rows
    assert row["seed"] == 4
    assert (row["train_size"], row["val_size"], row["test_size"]) == (40, 40, len(y) - 80)
    assert list(row["munge_error"]) == [1, 2] and set(row["member_errors"]) == set(members)
    # By hand: the same split, ensemble, transfer set and nets.
    train, val, test = table_split(x, y, train_size=40, val_size=40, seed=4)
    ensemble = mixed_ensemble(members, random_state=4).fit(train.x.numpy(), train.y.numpy())
    assert row["ensemble_weights"] == {}  # equal weights by default: no selection
    ensemble_pred = ensemble.predict(test.x.numpy())
    assert row["ensemble_error"] == pytest.approx(np.mean(ensemble_pred != test.y.numpy()))
    transfer = munge_transfer_set(ensemble, train.x, size_multiplier=2, p=0.5, s=1.0,
                                  targets="probabilities", rng=4)
    fit = dict(hidden=16, batch_size=32, lr=3e-3, schedule="cosine", seed=4, val=val, device="cpu",
               progress=False)
    net, _ = munge_student(train, classes=2, epochs=6, **fit)  # 40 rows: 2 steps an epoch, 6 epochs
    predicted = metrics.predict(net, test.x).argmax(1).numpy()
    assert row["original_error"] == pytest.approx(np.mean(predicted != test.y.numpy()))
    assert row["original_fidelity"] == pytest.approx(np.mean(predicted == ensemble_pred))
    net, _ = munge_student(Tensors(transfer.x[:80], transfer.y[:80]), classes=2, epochs=4, **fit)
    predicted = metrics.predict(net, test.x).argmax(1).numpy()
    assert row["munge_error"][1] == pytest.approx(np.mean(predicted != test.y.numpy()))
    # With ensemble selection on the validation part, the teacher is the selected ensemble.
    (selected,) = compare_munge(x, y, seeds=(4,), **(knobs | {"selection_rounds": 5, "multipliers": (1,)}))
    chosen = ensemble_selection(ensemble, val.x, val.y, rounds=5)
    assert selected["ensemble_weights"] == chosen.weights
    chosen_errors = np.mean(chosen.predict(test.x.numpy()) != test.y.numpy())
    assert selected["ensemble_error"] == pytest.approx(chosen_errors)
    with pytest.raises(ValueError, match="multipliers must be integers >= 1"):
        compare_munge(x, y, seeds=(0,), train_size=40, val_size=40, multipliers=(0,))
