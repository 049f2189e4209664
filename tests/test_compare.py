"""The common-setting comparison (kdlab.book.compare): the gap fraction, the Pareto front, the chapters'
saved claims and points, and one tiny end-to-end run on scikit-learn's digits. The claim catalogue and
its verdict rule are tested in test_claims.py."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from kdlab import augment, data, metrics, models
from kdlab.book import claims, compare, results
from kdlab.methods.common import train_model
from kdlab.train import History
from tests.toys import same_weights

# --- gap_closed -------------------------------------------------------------------------------


def test_gap_closed_matches_tsnenets_worked_example():
    # Seed 000: the student-teacher gap falls from 1.4 % to 0.7 %, "a 50 % reduce". With a teacher at
    # 1.0 % the student alone is at 2.4 % and the regularised one at 1.7 %.
    assert compare.gap_closed(2.4, 1.7, 1.0) == pytest.approx(0.5)


@pytest.mark.parametrize("alone, method, teacher", [(146, 74, 67), (10.0, 12.0, 4.0), (5, 5, 1)])
def test_gap_closed_is_one_minus_the_remaining_fraction_of_the_gap(alone, method, teacher):
    remaining = (method - teacher) / (alone - teacher)
    assert compare.gap_closed(alone, method, teacher) == pytest.approx(1 - remaining)


def test_gap_closed_is_nan_when_the_teacher_is_not_better():
    assert math.isnan(compare.gap_closed(50, 40, 50))
    assert math.isnan(compare.gap_closed(50, 40, 60))


# --- pareto_front ----------------------------------------------------------------------------


def _front_by_sorting(costs, errors):
    # Another way: sweep the points by cost (then error); a point is on the front when its error
    # is below every error seen at a strictly smaller cost, and it is the best at its own cost.
    front = []
    for i in range(len(costs)):
        better_or_equal = [j for j in range(len(costs)) if costs[j] <= costs[i] and errors[j] <= errors[i]]
        if all((costs[j], errors[j]) == (costs[i], errors[i]) for j in better_or_equal):
            front.append(i)
    return front


def test_pareto_front_on_a_hand_made_set():
    costs = [1, 2, 3, 4, 2]
    errors = [10, 5, 6, 1, 5]
    # (3, 6) is dominated by (2, 5); the two identical (2, 5) points both stay.
    assert compare.pareto_front(costs, errors) == [0, 1, 3, 4]


def test_pareto_front_agrees_with_a_brute_force_check_on_random_points():
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(1, 12)
        costs = [rng.randint(0, 5) for _ in range(n)]
        errors = [rng.randint(0, 5) for _ in range(n)]
        front = compare.pareto_front(costs, errors)
        assert front == _front_by_sorting(costs, errors)
        # No point of the front dominates another point of it.
        for i, j in itertools.permutations(front, 2):
            assert not (
                costs[i] <= costs[j]
                and errors[i] <= errors[j]
                and (costs[i], errors[i]) != (costs[j], errors[j])
            )


def test_pareto_front_rejects_lists_of_two_lengths():
    with pytest.raises(ValueError, match="costs and errors must have one length, got 2 and 1"):
        compare.pareto_front([1, 2], [3])


# --- summary -----------------------------------------------------------------------------------


def _run(method, seed, errors, seconds):
    history = History([{"epoch": float(k + 1), "seconds": s} for k, s in enumerate(seconds)])
    return compare.Run(method, seed, torch.nn.Linear(1, 1), list(errors), [history])


def test_summary_rows_from_hand_computed_means_spreads_gaps_and_costs():
    runs = {
        "student alone": [
            _run("student alone", 0, [100], [1.0, 1.0]),
            _run("student alone", 1, [110], [1.0, 1.0]),
        ],
        "DML": [_run("DML", 0, [90, 94], [3.0, 3.0]), _run("DML", 1, [80, 84], [2.0, 4.0])],
    }
    rows = {row["method"]: row for row in compare.summary(runs, teacher_errors=55)}
    alone, dml = rows["student alone"], rows["DML"]
    assert alone["errors"] == [100, 110] and alone["mean"] == 105
    assert alone["sd"] == pytest.approx(math.sqrt(50))  # sample sd of 100 and 110
    assert alone["gap_closed"] == 0
    assert dml["errors"] == [92, 82]  # each cohort's mean over its two students
    assert dml["gap_closed"] == pytest.approx((105 - 87) / (105 - 55))
    assert dml["seconds_per_epoch"] == pytest.approx(3.0)
    assert dml["cost"] == pytest.approx(6.0 / 2.0)
    own = {row["method"]: row for row in compare.summary(runs, teacher_errors=55, own_teachers={"DML": 75})}
    assert own["DML"]["gap_closed"] == pytest.approx((105 - 87) / (105 - 75))  # to its own teacher
    assert own["student alone"]["gap_closed"] == 0


def test_summary_needs_the_student_alone():
    with pytest.raises(KeyError, match="student alone"):
        compare.summary({"DML": [_run("DML", 0, [1], [1.0])]}, teacher_errors=0)


# --- claims ------------------------------------------------------------------------------------


def test_load_records_reads_each_chapters_saved_claims_and_none_where_it_has_not_run(capsys):
    checked = []
    claims.check("hinton.mnist_table", [120, 125], [150, 152], into=checked)
    results.save("soft_targets", {"profile": "smoke"}, {"claims": checked})
    records = claims.load_records(["soft_targets", "fsp"], "smoke")
    assert records["fsp"] is None
    assert records["soft_targets"]["results"]["claims"] == checked
    rows = claims.join(records)
    (row,) = [r for r in rows if r["id"] == "hinton.mnist_table"]
    assert (row["chapter"], row["verdict"]) == ("soft_targets", checked[0]["verdict"])


def test_load_records_names_an_unreadable_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLAB_RESULTS", str(tmp_path))
    (tmp_path / "fsp-smoke.json").write_text("{not json")
    with pytest.raises(ValueError, match="chapter 'fsp' at profile 'smoke' are not JSON"):
        claims.load_records(["fsp"], "smoke")


def test_chapter_points_from_error_counts_and_from_accuracies():
    by_counts = {
        "chapter": "fitnets",
        "knobs": {"test_size": 2000},
        "results": {
            "teacher_errors": 20,
            "errors": {"KD": [40, 60], "FitNet": [50]},
            "teacher_parameters": 1000,
            "student_parameters": 100,
        },
    }
    assert claims.chapter_points(by_counts) == [
        {"chapter": "fitnets", "model": "teacher", "parameters": 1000, "error_percent": 1.0},
        {"chapter": "fitnets", "model": "KD", "parameters": 100, "error_percent": 2.5},
        {"chapter": "fitnets", "model": "FitNet", "parameters": 100, "error_percent": 2.5},
    ]
    by_accuracy = {
        "chapter": "fsp",
        "results": {
            "teacher_accuracy": 0.9,
            "accuracy": {"FSP": [80.0, 90.0]},
            "teacher_parameters": 7,
            "student_parameters": 3,
        },
    }
    points = claims.chapter_points(by_accuracy)
    assert [(p["model"], p["parameters"]) for p in points] == [("teacher", 7), ("FSP", 3)]
    assert [p["error_percent"] for p in points] == pytest.approx([10.0, 15.0])
    assert claims.chapter_points({"results": {"verdicts": ["held"]}}) == []


# --- the common setting, end to end on digits ------------------------------------------------


@pytest.fixture(scope="module")
def digits_teacher():
    # One teacher for the module, trained without the cache (each test has its own cache folder).
    digits = data.load("digits")
    train, test = digits.train.subset(200, seed=0), digits.test.subset(100, seed=0)
    torch.manual_seed(0)
    teacher, _ = train_model(
        lambda: models.lenet((16, 16, 32), image_size=8),
        train,
        epochs=3,
        lr=1e-2,
        batch_size=50,
        progress=False,
        device="cpu",
    )
    return train, test, teacher


@pytest.fixture
def setting(digits_teacher):
    train, test, teacher = digits_teacher
    return compare.Setting(
        train=train,
        test=test,
        teacher=teacher,
        make_student=lambda: models.lenet((4, 8, 8), image_size=8),
        epochs=1,
        batch_size=50,
        lr=1e-2,
        stage_epochs=1,
        device="cpu",
    )


def _with(setting, **knobs):
    return compare.Setting(**{**setting.__dict__, **knobs})


def test_fsp_mismatch_names_the_two_matrix_shapes(setting):
    reason = compare.fsp_mismatch(setting)
    assert "[(16, 16)] and [(4, 8)]" in reason
    same_widths = _with(setting, make_student=lambda: models.lenet((16, 16, 8), image_size=8))
    assert compare.fsp_mismatch(same_widths) is None
    bad = _with(setting, fsp_pairs=[("conv1", "fc")])
    assert "do not fit" in compare.fsp_mismatch(bad)


def test_run_all_trains_every_method_once_and_loads_them_on_a_second_call(setting):
    runs = compare.run_all(setting, seeds=1)
    assert list(runs) == [m for m in compare.METHODS if m != "FSP"]  # FSP cannot pair 4-8 with 16-16
    for method, (run,) in runs.items():
        x, y = setting.test.tensors
        students = run.student if method != "DML" else None
        if students is not None:
            assert run.error == metrics.error_count(metrics.predict(students, x), y)
        assert run.seconds > 0
    dml = runs["DML"][0]
    assert len(dml.errors) == 2 and dml.error == sum(dml.errors) / 2
    assert dml.errors[0] == metrics.error_count(metrics.predict(dml.student, setting.test.x), setting.test.y)
    assert len(runs["Born-Again"][0].histories) == 2 and len(runs["Born-Again"][0].histories) == 2
    assert len(runs["FitNets"][0].histories) == 2
    again = compare.run_all(setting, seeds=1)
    for method in runs:
        assert again[method][0].errors == runs[method][0].errors
        # A loaded model carries the History of its training run, seconds included.
        assert again[method][0].seconds == runs[method][0].seconds


def test_fsp_runs_when_the_student_has_the_teachers_widths(setting):
    setting = _with(setting, make_student=lambda: models.lenet((16, 16, 8), image_size=8))
    (run,) = compare.run_all(setting, seeds=1, methods=["FSP"])["FSP"]
    assert [len(h) for h in run.histories] == [1, 1]


def test_fsp_distils_from_its_own_teacher_when_the_common_one_is_wider(setting):
    torch.manual_seed(1)
    own = models.lenet((4, 8, 32), image_size=8)  # the student's conv widths, a wider hidden layer
    paired = _with(setting, fsp_teacher=own)
    assert compare.fsp_mismatch(setting) is not None and compare.fsp_mismatch(paired) is None
    arms = [compare.ALONE, "Hinton KD", "FSP"]
    runs = compare.run_seed(paired, 0, arms)
    assert list(runs) == arms
    plain = compare.run_seed(setting, 0, arms[:2])
    for arm in arms[:2]:  # every other method still learns from the common teacher
        assert same_weights(runs[arm].student, plain[arm].student)
    torch.manual_seed(2)
    other = compare.run_seed(_with(setting, fsp_teacher=models.lenet((4, 8, 32), image_size=8)), 0, ["FSP"])
    assert not same_weights(other["FSP"].student, runs["FSP"].student)  # the FSP teacher is the one given


def test_without_the_cache_nothing_is_stored(setting, tmp_path):
    compare.run_all(_with(setting, cache=False), seeds=1, methods=["student alone", "Hinton KD", "DML"])
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_run_seed_rejects_an_unknown_method(setting):
    with pytest.raises(ValueError, match="methods must be one of"):
        compare.run_seed(setting, 0, methods=["magic"])


def test_setting_rejects_a_bad_knob(setting):
    with pytest.raises(ValueError, match="cohort must be an integer >= 2, got 1"):
        _with(setting, cohort=1)


def test_the_settings_optimizer_and_augmentation_reach_every_method(setting):
    methods = [compare.ALONE, "Hinton KD", "DKD", "Hinton KD + LS"]
    plain = compare.run_seed(setting, 0, methods)
    for knobs in ({"augment": augment.JITTER}, {"optimizer": "sgd_momentum", "weight_decay": 5e-4}):
        changed = compare.run_seed(_with(setting, **knobs), 0, methods)
        for method in methods:  # every method trained afresh with the knob, none answered by the plain run
            assert not same_weights(changed[method].student, plain[method].student), (method, knobs)


def test_method_knobs_reach_their_method_and_bad_ones_fail_at_once(setting):
    arms = [compare.ALONE, "DKD"]
    plain = compare.run_seed(setting, 0, arms)
    lighter = compare.run_seed(_with(setting, method_knobs={"dkd": {"nckd_weight": 1.0}}), 0, arms)
    assert same_weights(lighter[compare.ALONE].student, plain[compare.ALONE].student)
    assert not same_weights(lighter["DKD"].student, plain["DKD"].student)
    with pytest.raises(ValueError, match="unknown knob"):
        _with(setting, method_knobs={"dkd": {"beta": 6.0}})
    with pytest.raises(ValueError, match="method must be one of"):
        _with(setting, method_knobs={"crd": {}})


def test_test_every_epoch_gives_each_students_history_its_test_errors(setting):
    arms = [compare.ALONE, "Hinton KD", "FitNets"]
    plain = compare.run_seed(setting, 0, arms)
    watched = compare.run_seed(_with(setting, test_every_epoch=True, epochs=2), 0, arms)
    for arm in arms:
        assert "test_error" not in plain[arm].histories[-1].keys()
        history = watched[arm].histories[-1]  # the last stage, which trains the returned student
        assert len(history["test_error"]) == 2 and history.last("test_error") == watched[arm].error
