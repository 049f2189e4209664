"""The claim catalogue and the one verdict rule (kdlab.book.claims): intervals by hand, the three
verdicts and the direction, one seed, check / judge / not_run, the join by id, and the chapters'
use of the catalogue (every id they check exists, every claim's chapter checks it)."""

from __future__ import annotations

import ast
import json
import math
import random
import re
from pathlib import Path

import pytest

from kdlab.book import catalogue, claims, results, runner

ROOT = Path(__file__).resolve().parents[1]
# Student-t quantiles t(0.975, df) from a printed table (df = 1, 2, 3, 4), not from scipy.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}


def _by_hand(found):
    """Mean and 95 % half-width of a list of differences, with the table's quantile."""
    n = len(found)
    mean = sum(found) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in found) / (n - 1))
    return mean, T975[n - 1] * sd / math.sqrt(n)


# --- the verdict rule ---------------------------------------------------------------------------


def test_the_interval_of_one_two_three_is_two_plus_or_minus_t_over_root_three():
    result = claims.verdict([1, 2, 3], 0, better="higher")
    assert result.mean == pytest.approx(2.0)
    assert result.low == pytest.approx(2 - 4.303 / math.sqrt(3), abs=1e-3)
    assert result.high == pytest.approx(2 + 4.303 / math.sqrt(3), abs=1e-3)
    assert (result.n, result.kind) == (3, "against a fixed number")
    assert result.verdict == "not decided at this scale"  # [-0.48, 4.48] contains 0
    assert result.reason == "the 95 % interval contains 0"


@pytest.mark.parametrize(
    "ours, baseline",
    [
        ([140, 150, 146, 160], [150, 161, 158, 169]),  # differences -10, -11, -12, -9
        ([12.0, 9.5], [10.0, 10.5]),  # differences 2, -1
        ([70, 72, 75], [140, 150, 145]),
    ],
)
def test_paired_intervals_match_a_hand_computation(ours, baseline):
    found = [a - b for a, b in zip(ours, baseline, strict=True)]
    mean, half = _by_hand(found)
    result = claims.verdict(ours, baseline)
    assert result.kind == "paired" and result.n == len(found)
    assert result.mean == pytest.approx(mean)
    assert result.low == pytest.approx(mean - half, rel=1e-3, abs=1e-3)
    assert result.high == pytest.approx(mean + half, rel=1e-3, abs=1e-3)


def test_held_contradicted_and_not_decided_follow_the_papers_direction():
    fewer_errors = ([140, 150, 146, 160], [150, 161, 158, 169])  # interval about [-12.6, -8.4]
    assert claims.verdict(*fewer_errors, better="lower").verdict == "held"
    assert claims.verdict(*fewer_errors, better="higher").verdict == "contradicted"
    assert claims.verdict(*reversed(fewer_errors), better="lower").verdict == "contradicted"
    assert claims.verdict(*reversed(fewer_errors), better="higher").verdict == "held"
    mixed = ([12.0, 9.5], [10.0, 10.5])  # differences 2 and -1: the interval contains 0
    for better in ("lower", "higher"):
        assert claims.verdict(*mixed, better=better).verdict == "not decided at this scale"
    assert "below 0" in claims.verdict(*fewer_errors).reason


def test_the_seeds_are_paired_not_pooled():
    # Each seed's method is about 1 below its baseline, but the seeds differ by far more: pooled, the
    # two groups overlap; paired, the differences are -1.0, -1.1, -0.9 and the claim holds.
    baseline = [100.0, 200.0, 300.0]
    ours = [99.0, 198.9, 299.1]
    result = claims.verdict(ours, baseline)
    half = 4.303 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n); the differences' sd is 0.1
    assert result.low == pytest.approx(-1.0 - half, rel=1e-3)
    assert result.high == pytest.approx(-1.0 + half, rel=1e-3)
    assert result.verdict == "held"


def test_one_seed_is_not_decided():
    for ours, baseline in (([70], [140]), (70, 140), ([70], 140)):
        result = claims.verdict(ours, baseline)
        assert result.verdict == "not decided at this scale" and result.reason == "one seed"
        assert result.n == 1 and result.mean == -70 and math.isnan(result.low) and math.isnan(result.high)
    assert "one seed, no interval" in claims.verdict([70], [140]).text()


def test_equal_differences_give_no_interval_and_are_not_decided():
    # Whole error counts can agree by chance: (-3, -3) must not be held while the stronger (-3, -4) is not.
    same = claims.verdict([3, 3, 3], [1, 1, 1], better="higher")
    assert same.verdict == "not decided at this scale" and math.isnan(same.low) and "no spread" in same.reason
    assert claims.verdict([7, 6], [10, 10]).verdict == claims.verdict([7, 7], [10, 10]).verdict
    assert claims.verdict([5, 6], [5, 6]).verdict == "not decided at this scale"


def test_a_single_number_is_a_fixed_baseline_on_either_side():
    ours_side = claims.verdict([70, 72, 75], 67)
    mean, half = _by_hand([3, 5, 8])
    assert ours_side.kind == "against a fixed number"
    assert ours_side.mean == pytest.approx(mean) and ours_side.high == pytest.approx(mean + half, rel=1e-3)
    teacher_side = claims.verdict(67, [70, 72, 75])  # the one teacher against students per seed
    assert teacher_side.mean == pytest.approx(-mean)
    assert teacher_side.low == pytest.approx(-mean - half, rel=1e-3)


def test_the_verdict_agrees_with_a_t_test_on_random_differences():
    # Another way to the same decision: the interval excludes 0 exactly when the two-sided
    # one-sample t-test rejects 0 at 5 %; and then the sign of the mean says which verdict.
    from scipy import stats

    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(2, 8)
        found = [rng.gauss(rng.uniform(-2, 2), rng.uniform(0.1, 3)) for _ in range(n)]
        p = stats.ttest_1samp(found, 0.0).pvalue
        if abs(p - 0.05) < 1e-9:
            continue
        result = claims.verdict(found, 0.0, better="lower")
        if p < 0.05:
            assert result.verdict == ("held" if result.mean < 0 else "contradicted")
        else:
            assert result.verdict == "not decided at this scale"


def test_bad_inputs_are_errors_that_say_what_is_wrong():
    with pytest.raises(ValueError, match="must pair seed by seed, got 3 and 1 values"):
        claims.verdict([1, 2, 3], [4])
    with pytest.raises(ValueError, match="ours must hold at least one number"):
        claims.verdict([], [])
    with pytest.raises(ValueError, match="baseline must be finite numbers, got nan"):
        claims.verdict([1, 2], [1, float("nan")])
    with pytest.raises(ValueError, match="better must be one of"):
        claims.verdict([1, 2], [3, 4], better="smaller")
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        claims.verdict([1, 2], [3, 4], level=95)


def test_text_renders_the_interval_on_one_line():
    text = claims.verdict([140, 150, 146, 160], [150, 161, 158, 169]).text()
    assert text == "difference -10.5, 95 % interval [-12.6, -8.4] (n=4, paired): held"


# --- check, judge, not_run -----------------------------------------------------------------------


def test_check_prints_one_line_and_records_the_claim_by_id(capsys):
    checked = []
    result = claims.check("hinton.mnist_table", [70, 72, 75], [140, 150, 145], into=checked)
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    found = catalogue.claim("hinton.mnist_table")
    for part in ("[hinton.mnist_table]", found.claim, found.paper, "72.3 ± 2.5 (n=3) vs 145.0 ± 5.0 (n=3)",
                 "95 % interval", "held"):
        assert part in line
    (record,) = checked
    assert record["id"] == "hinton.mnist_table" and record["verdict"] == result.verdict == "held"
    assert record["low"] == pytest.approx(result.low) and record["n"] == 3 and record["kind"] == "paired"
    assert "Hinton, Vinyals & Dean (2015)" in record["source"]
    json.dumps(checked, allow_nan=False)  # a chapter saves it with results.save


def test_check_uses_the_catalogues_direction_unless_the_chapter_measures_the_other_way(capsys):
    checked = []
    # dml.cohort_beats_alone is about accuracy (higher is better); in errors, lower is better.
    assert catalogue.claim("dml.cohort_beats_alone").better == "higher"
    fewer_errors = ([540, 550, 545], [600, 612, 603])
    assert claims.check("dml.cohort_beats_alone", *fewer_errors, into=checked).verdict == "contradicted"
    in_errors = claims.check("dml.cohort_beats_alone", *fewer_errors, into=checked, better="lower",
                             measure="test errors", setting="common setting")
    assert in_errors.verdict == "held"
    assert checked[1]["measure"] == "test errors" and checked[1]["setting"] == "common setting"
    assert "(common setting)" in capsys.readouterr().out.splitlines()[1]


def test_an_unknown_id_is_an_error_listing_the_close_ones():
    with pytest.raises(KeyError, match=r"unknown claim id 'hinton.mnist'; close ids: \['hinton.mnist_table'"):
        claims.check("hinton.mnist", [1, 2], [3, 4], into=[])
    with pytest.raises(KeyError, match="unknown claim id 'nothing'"):
        claims.judge("nothing", True, "-", "a reason", into=[])


def test_judge_and_not_run_are_labelled(capsys):
    checked = []
    claims.judge("fitnets.conv_regressor", True, "conv 2,112 vs fc 4,920,384", "exact counts", into=checked)
    claims.judge("hint_dml.reduction_63", False, "38.6 % fewer", "the source's own counts", into=checked)
    claims.not_run("he.lambda_sweep", "(T = 1, alpha = 1) is not in the sweep", into=checked)
    claims.judge("bucila.smaller_faster", True, "30x faster", "one timing", into=checked, varies=True)
    out = capsys.readouterr().out.splitlines()
    assert [r["verdict"] for r in checked] == ["held", "contradicted", "not run", "held"]
    assert [r["kind"] for r in checked] == ["judged", "judged", "not run", "judged"]
    assert [r.get("varies") for r in checked] == [False, False, None, True]
    assert "held (judged without an interval: exact counts)" in out[0]
    assert out[2].endswith("not run: (T = 1, alpha = 1) is not in the sweep")
    with pytest.raises(ValueError, match="reason must say how the claim was judged"):
        claims.judge("fitnets.conv_regressor", True, "-", "", into=checked)
    with pytest.raises(ValueError, match="reason must say why the claim was not run"):
        claims.not_run("he.lambda_sweep", "", into=checked)


# --- the catalogue ------------------------------------------------------------------------------


def test_every_catalogue_id_is_unique_and_well_formed():
    ids = [c.id for c in catalogue.CLAIMS]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert len(catalogue.CATALOGUE) == len(catalogue.CLAIMS) >= 40
    for found in catalogue.CLAIMS:
        assert re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+", found.id), found.id
        assert found.claim and found.paper and found.measure, found.id
        assert found.source in catalogue.SOURCES, found.id
        assert found.better in catalogue.DIRECTIONS, found.id
        # A reason exactly when no chapter checks the claim.
        assert bool(found.why) == (found.chapter is None), found.id


def test_every_chapter_named_by_the_catalogue_is_in_the_table_of_contents():
    toc = runner.chapters(ROOT)
    named = {c.chapter for c in catalogue.CLAIMS if c.chapter is not None}
    assert named <= set(toc), named - set(toc)
    assert set(claims.CHAPTERS) <= set(toc)
    assert named <= set(claims.CHAPTERS)  # the results chapter reads every chapter that checks a claim


def test_every_source_document_is_cited_and_hintons_table_is_written_once():
    documents = {catalogue.SOURCES[c.source].document for c in catalogue.CLAIMS}
    assert {"000", "001", "002", "003", "004"} <= documents
    figures = {c.paper for c in catalogue.CLAIMS if "146" in c.paper}
    assert figures == {catalogue.claim("hinton.mnist_table").paper}


def _claim_calls():
    """(chapter, function, first argument) of every claims.check / judge / not_run / claim call."""
    calls = []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            # IPython magics are not Python: each becomes a `pass` at its indentation.
            lines = [line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
                     else line for line in source.splitlines()]
            for node in ast.walk(ast.parse("\n".join(lines))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "claims"
                        and node.func.attr in ("check", "judge", "not_run", "claim")):
                    first = node.args[0] if node.args else None
                    calls.append((path.stem, node.func.attr, first))
    return calls


def test_every_id_a_chapter_checks_is_in_the_catalogue():
    calls = _claim_calls()
    assert len(calls) >= 40
    for chapter, function, first in calls:
        # A literal id, so that this scan sees every claim a chapter checks.
        assert isinstance(first, ast.Constant) and isinstance(first.value, str), (chapter, function)
        assert first.value in catalogue.CATALOGUE, f"{chapter} calls claims.{function}({first.value!r})"


def test_every_claim_with_a_chapter_is_checked_by_that_chapter():
    checked = {(chapter, first.value) for chapter, function, first in _claim_calls() if function != "claim"}
    missing = [(c.chapter, c.id) for c in catalogue.CLAIMS if c.chapter and (c.chapter, c.id) not in checked]
    assert not missing


def test_no_chapter_calls_the_old_verdict_helpers():
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        text = path.read_text()
        assert "results.verdict" not in text and "results.claim(" not in text, path.name


# --- the join of the results chapter -----------------------------------------------------------


def _saved_claims(*calls):
    checked = []
    for function, args in calls:
        extra = {"varies": True} if args[0] == "bucila.smaller_faster" else {}
        getattr(claims, function)(*args, into=checked, **extra)
    return checked


def test_join_lists_every_verdict_by_id_and_every_claim_no_chapter_checked(capsys):
    soft = _saved_claims(
        ("check", ("hinton.mnist_table", [70, 72, 75], [140, 150, 145])),
        ("judge", ("bucila.smaller_faster", True, "30x faster", "one timing")),
        ("not_run", ("he.lambda_sweep", "(T = 1, alpha = 1) is not in the sweep")),
        ("check", ("ba.logit_regression", [1, 2], [1, 3])),
    )
    results.save("soft_targets", {"profile": "smoke"}, {"claims": soft})
    results.save("fitnets", {"profile": "smoke"}, {"errors": {"a": [1]}})
    stale = {"id": "fsp.old_id", "claim": "c", "verdict": "held"}  # an id the catalogue no longer has
    results.save("fsp", {"profile": "smoke"}, {"claims": [stale]})
    records = claims.load_records(["soft_targets", "fitnets", "fsp", "born_again"], "smoke")
    assert records["born_again"] is None
    own = _saved_claims(("check", ("hinton.mnist_table", [800, 810], [900, 905])))
    capsys.readouterr()
    rows = claims.join(records, also={"results": own})
    by_id = {}
    for row in rows:
        by_id.setdefault(row["id"], []).append(row)
    # One row per chapter that decided the claim, in the catalogue's order.
    assert [(r["chapter"], r["verdict"]) for r in by_id["hinton.mnist_table"]] == [
        ("soft_targets", "held"), ("results", "held")]
    assert by_id["ba.logit_regression"][0]["verdict"] == "not decided at this scale"
    in_order = [r["id"] for r in rows]
    assert list(dict.fromkeys(in_order)) == [c.id for c in catalogue.CLAIMS] + ["fsp.old_id"]
    # Every catalogue claim appears; those nobody checked say why.
    assert {r["id"] for r in rows} >= set(catalogue.CATALOGUE)
    reasons = {r["id"]: r["reason"] for r in claims.unchecked(rows)}
    assert reasons["he.lambda_sweep"] == "soft_targets: (T = 1, alpha = 1) is not in the sweep"
    assert reasons["breiman.other_data_sets"] == catalogue.claim("breiman.other_data_sets").why
    assert reasons["fitnets.beats_teacher"] == "its chapter 'fitnets' ran but did not check it"
    assert reasons["ban.ban1_beats_teacher"] == "its chapter 'born_again' has not run at this profile"
    assert reasons["dml.in_turn"] == "its chapter 'mutual_learning' is not among the chapters read"
    decided = {r["id"] for r in rows if r["verdict"] in claims.VERDICTS}
    assert decided == {"hinton.mnist_table", "ba.logit_regression", "bucila.smaller_faster"}
    assert [r["id"] for r in rows if r["varies"]] == ["bucila.smaller_faster"]  # a timing
    assert set(reasons) == set(catalogue.CATALOGUE) - decided
    (stray,) = [r for r in rows if r["verdict"] == "not in the catalogue"]
    assert (stray["id"], stray["chapter"]) == ("fsp.old_id", "fsp")
    assert claims.describe(by_id["hinton.mnist_table"][1]).startswith(
        "held: [hinton.mnist_table] a small net distilled")
    assert "(results)" in claims.describe(by_id["hinton.mnist_table"][1])


def test_summary_counts_each_verdict_with_its_ids():
    rows = []
    claims.check("hinton.mnist_table", [100, 110, 105], [150, 160, 170], into=rows)  # held
    claims.check("hinton.teacher_ahead", 200, [100, 110, 105], into=rows)  # contradicted
    claims.check("ba.logit_regression", [1, 2], [2, 1], into=rows)  # equal and opposite: not decided
    claims.not_run("he.lambda_sweep", "not in this sweep", into=rows)
    expected = [claims.HELD, claims.CONTRADICTED, claims.NOT_DECIDED, claims.NOT_RUN]
    assert [row["verdict"] for row in rows] == expected
    assert claims.summary(rows) == (
        "Of 3 claims checked, 1 held (hinton.mnist_table), 1 was contradicted (hinton.teacher_ahead) and "
        "1 was not decided at this scale (ba.logit_regression). Not run at this profile: he.lambda_sweep."
    )


def test_summary_names_each_check_of_a_claim_checked_twice_by_its_setting():
    rows = []
    claims.check("bucila.munge", [3.0, 3.1, 3.2], [3.0, 3.2, 3.1], into=rows,
                 setting="breast cancer, 10 splits")
    claims.check("bucila.munge", [6.0, 6.1, 6.2], [8.0, 8.2, 8.1], into=rows, setting="digits, 10 splits")
    claims.check("hinton.mnist_table", [100, 110, 105], [150, 160, 170], into=rows)
    assert claims.summary(rows) == (
        "Of 3 checks (2 claims), 2 held (bucila.munge (digits), hinton.mnist_table), 0 were contradicted and "
        "1 was not decided at this scale (bucila.munge (breast cancer))."
    )


def test_table_has_one_row_per_claim_and_escapes_pipes():
    rows = []
    claims.check("hinton.mnist_table", [100, 110, 105], [150, 160, 170], into=rows, setting="a | b")
    claims.not_run("he.lambda_sweep", "not in this sweep", into=rows)
    lines = claims.table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert all(line.count(" | ") == lines[0].count(" | ") for line in lines)  # no stray column
    assert "a \\| b" in lines[2] and "**held**" in lines[2] and "[-76.5, -33.5], n=3" in lines[2]
    assert "**not run**" in lines[3]
