"""Every claim of the five source documents, one verdict rule, and the claims each chapter checked.

:data:`CLAIMS` is the catalogue: each claim of the sources (and each claim a chapter checks beyond
them) once, with a short stable id, its text, its source, the paper's figure, the chapter that
checks it (or why none does) and which way is better. A chapter checks a claim by its id:

>>> checked = []
>>> claims.check("hinton.mnist_table", distilled_errors, alone_errors, into=checked)  # doctest: +SKIP

:func:`check` looks the id up, computes the :func:`verdict`, prints one line and appends a record
(a dict carrying the id) to ``checked``, which the chapter saves as ``results["claims"]``.
:func:`judge` records a claim decided without numbers to pair (an exact count, a property), and
:func:`not_run` one that this run could not check, with the reason. The results chapter reads the
chapters' saved records (:func:`load_records`), joins them with the catalogue by id (:func:`join`)
and lists every claim that no chapter checked. :func:`chapter_points` gathers the (parameters,
error) points a chapter saved, for the results chapter's accuracy-against-cost plot.

The verdict rule (:func:`verdict`), the same for every claim: the differences ours - baseline,
paired over seeds (the same seed's method and baseline), their mean and its 95 % Student-t
interval; "held" when the interval excludes 0 in the paper's direction, "contradicted" when it
excludes 0 the other way, "not decided at this scale" otherwise (one seed included).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdlab import _checks
from kdlab.book import results as kd_results
from kdlab.book.catalogue import CLAIMS, DIRECTIONS, Claim, claim

HELD, CONTRADICTED, NOT_DECIDED = "held", "contradicted", "not decided at this scale"
NOT_RUN = "not run"
VERDICTS = (HELD, CONTRADICTED, NOT_DECIDED)
LEVEL = 0.95

# The chapters that check claims and save them, in the table of contents' order (the results
# chapter reads their JSON; it checks some claims itself, on its common setting).
CHAPTERS = (
    "soft_targets",
    "what_soft_targets_carry",
    "born_again",
    "fitnets",
    "fsp",
    "tsne_regularizer",
    "mutual_learning",
    "hint_mutual",
    "modern_logits",
    "language_models",
    "your_own_model",
)


# --- the verdict rule -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the rule says of ours - baseline: the mean difference, its interval ``[low, high]``
    (``nan`` where there is none), ``n`` differences, the ``verdict`` (one of :data:`VERDICTS`) and
    its ``reason``. ``kind``: ``"paired"`` (seed by seed), ``"against a fixed number"`` (one side
    is one number) or ``"judged"`` (decided without numbers to pair, :func:`judge`)."""

    mean: float
    low: float
    high: float
    n: int
    verdict: str
    reason: str
    kind: str = "paired"
    better: str = "lower"
    level: float = LEVEL

    def text(self) -> str:
        """One line: ``"difference -27.5, 95 % interval [-40.1, -14.9] (n=3, paired): held"``."""
        if self.kind == "judged":
            return f"{self.verdict} (judged without an interval: {self.reason})"
        if math.isnan(self.low):
            return f"difference {_numbers(self.mean)[0]} ({self.reason}, no interval): {self.verdict}"
        mean, low, high = _numbers(self.mean, self.low, self.high)
        return (
            f"difference {mean}, {100 * self.level:g} % interval [{low}, {high}] (n={self.n}, {self.kind}): "
            f"{self.verdict}"
        )


def _numbers(*values: float) -> list[str]:
    """The numbers with a sign, all to the decimals that the largest of them needs."""
    largest = max(abs(v) for v in values)
    if largest >= 100:
        decimals = 0
    elif largest >= 10:
        decimals = 1
    elif largest >= 1 or largest == 0:
        decimals = 2
    else:
        decimals = min(6, 2 - math.floor(math.log10(largest)))
    return [f"{v:+.{decimals}f}" for v in values]


def _values(name: str, values: Any) -> list[float] | None:
    """``values`` as a list of finite floats, or ``None`` for a single number (checked finite)."""
    if isinstance(values, bool):
        raise TypeError(f"{name} must be numbers, got the bool {values} (a yes-or-no claim: use judge())")
    if isinstance(values, numbers.Real) or getattr(values, "ndim", None) == 0:  # 0-d arrays too
        if not math.isfinite(float(values)):
            raise ValueError(f"{name} must be finite, got {values}")
        return None
    found = [float(v) for v in values]
    if not found:
        raise ValueError(f"{name} must hold at least one number, got none")
    bad = [v for v in found if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name} must be finite numbers, got {bad[0]} in {found}")
    return found


def differences(ours: Any, baseline: Any) -> tuple[list[float], str]:
    """The differences ours - baseline, and their kind: ``"paired"`` when both are sequences (of one
    length: the same seed's method and baseline, index by index), ``"against a fixed number"`` when
    one side is a single number (the paper's threshold, the one teacher's errors)."""
    mine, theirs = _values("ours", ours), _values("baseline", baseline)
    if mine is not None and theirs is not None:
        if len(mine) != len(theirs):
            raise ValueError(
                f"ours and baseline must pair seed by seed, got {len(mine)} and {len(theirs)} values; "
                "give a single number (not a list) for a fixed baseline"
            )
        return [a - b for a, b in zip(mine, theirs, strict=True)], "paired"
    if mine is None and theirs is None:
        return [float(ours) - float(baseline)], "paired"
    if theirs is None:
        return [a - float(baseline) for a in mine], "against a fixed number"
    return [float(ours) - b for b in theirs], "against a fixed number"


def verdict(ours: Any, baseline: Any, better: str = "lower", level: float = LEVEL) -> Verdict:
    """The book's one verdict rule on ours - baseline (see :func:`differences`).

    The mean difference and its Student-t interval at ``level``, mean ± t(1 - (1 - level) / 2, n - 1)
    sd / sqrt(n) with the sample sd; ``"held"`` when the interval excludes 0 on the ``better`` side
    (below 0 for ``"lower"``), ``"contradicted"`` when it excludes 0 on the other side, ``"not
    decided at this scale"`` when it contains 0. One difference has no interval: not decided, "one
    seed". Equal differences (sd 0) give no interval either: the spread is not estimated, only
    unseen (error counts are whole numbers, so two seeds can agree by chance), so they are not
    decided; otherwise a rule would call (-3, -3) held and the stronger (-3, -4) undecided.
    """
    _checks.choice("better", better, DIRECTIONS)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    found, kind = differences(ours, baseline)
    n = len(found)
    mean = sum(found) / n
    if n < 2:
        return Verdict(mean, math.nan, math.nan, n, NOT_DECIDED, "one seed", kind, better, level)
    sd = math.sqrt(sum((d - mean) ** 2 for d in found) / (n - 1))
    if sd == 0:
        reason = f"every one of the {n} differences is {mean:+g}: no spread to build an interval from"
        return Verdict(mean, math.nan, math.nan, n, NOT_DECIDED, reason, kind, better, level)
    from scipy import stats

    half = float(stats.t.ppf(1 - (1 - level) / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if high < 0 or low > 0:
        side = "below" if high < 0 else "above"
        outcome = HELD if side == ("below" if better == "lower" else "above") else CONTRADICTED
        reason = f"the {100 * level:g} % interval lies {side} 0"
        return Verdict(mean, low, high, n, outcome, reason, kind, better, level)
    reason = f"the {100 * level:g} % interval contains 0"
    return Verdict(mean, low, high, n, NOT_DECIDED, reason, kind, better, level)


# --- checking a claim in a chapter ---------------------------------------------------------------


def _spread(values: Any, digits: int) -> str:
    found = _values("values", values)
    if found is None:
        return f"{float(values):.{digits}f}"
    mean = sum(found) / len(found)
    if len(found) == 1:
        return f"{mean:.{digits}f} (n=1)"
    sd = math.sqrt(sum((v - mean) ** 2 for v in found) / (len(found) - 1))
    return f"{mean:.{digits}f} ± {sd:.{digits}f} (n={len(found)})"


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _record(found: Claim, setting: str, ours: str, measure: str, result: Verdict | None,
            reason: str = "") -> dict[str, Any]:
    """What a chapter saves of one checked claim (JSON: ``None`` where a number is missing)."""
    return {
        "id": found.id,
        "claim": found.claim,
        "source": found.cite(),
        "paper": found.paper,
        "setting": setting,
        "ours": ours,
        "measure": measure,
        "better": result.better if result else found.better,
        "verdict": result.verdict if result else NOT_RUN,
        "reason": result.reason if result else reason,
        "kind": result.kind if result else NOT_RUN,
        "difference": _json_number(result.mean) if result else None,
        "low": _json_number(result.low) if result else None,
        "high": _json_number(result.high) if result else None,
        "n": result.n if result else 0,
    }


def _line(found: Claim, setting: str, ours: str, tail: str) -> str:
    where = f" ({setting})" if setting else ""
    return f"[{found.id}] {found.claim}{where} | paper: {found.paper} | ours: {ours}; {tail}"


def check(
    claim_id: str,
    ours: Any,
    baseline: Any,
    *,
    into: list[dict[str, Any]],
    better: str | None = None,
    measure: str | None = None,
    setting: str = "",
    digits: int = 1,
) -> Verdict:
    """Check the catalogue's claim ``claim_id`` on our numbers: print one line, record it, return it.

    ``ours``: the numbers of what the claim favours (one per seed, or one number); ``baseline``:
    what it beats (one per seed, paired index by index with ``ours``, or one number: the teacher's
    errors, the paper's threshold). The :func:`verdict` uses the claim's direction; ``better`` and
    ``measure`` override it for a chapter that measures the other way (test errors where the paper
    gives accuracy). ``setting`` says where, for a claim checked on more than one (``"common
    setting"``). The line printed: the claim, the paper's figure, ours with its spread, the
    difference with its interval, the verdict. The record appended to ``into`` (which the chapter
    saves as ``results["claims"]``) carries the claim's id.
    """
    found = claim(claim_id)
    result = verdict(ours, baseline, better or found.better)
    unit = measure or found.measure
    shown = f"{_spread(ours, digits)} vs {_spread(baseline, digits)} {unit}"
    into.append(_record(found, setting, shown, unit, result))
    print(_line(found, setting, shown, result.text()))
    return result


def judge(
    claim_id: str,
    held: bool,
    ours: str,
    reason: str,
    *,
    into: list[dict[str, Any]],
    setting: str = "",
    varies: bool = False,
) -> Verdict:
    """Record a claim decided without numbers to pair (an exact count, a property that holds or not):
    ``"held"`` when ``held``, else ``"contradicted"``, labelled "judged" with the stated ``reason``
    (what was compared, and why no interval). ``varies``: the judgment rests on a measurement that
    changes from run to run (a timing), so the results chapter prints it where nbval compares
    nothing."""
    found = claim(claim_id)
    if not reason:
        raise ValueError("reason must say how the claim was judged, got an empty string")
    outcome = HELD if held else CONTRADICTED
    result = Verdict(math.nan, math.nan, math.nan, 0, outcome, reason, "judged", found.better)
    into.append({**_record(found, setting, ours, found.measure, result), "varies": bool(varies)})
    print(_line(found, setting, ours, result.text()))
    return result


def not_run(claim_id: str, reason: str, *, into: list[dict[str, Any]], setting: str = "") -> None:
    """Record that this run could not check ``claim_id``, and why (the results chapter lists it)."""
    found = claim(claim_id)
    if not reason:
        raise ValueError("reason must say why the claim was not run, got an empty string")
    into.append(_record(found, setting, "-", found.measure, None, reason))
    where = f" ({setting})" if setting else ""
    print(f"[{found.id}] {found.claim}{where} | paper: {found.paper} | not run: {reason}")


# --- the results chapter -------------------------------------------------------------------------


def load_records(
    chapters: Sequence[str], profile: str, folder: str | Path | None = None
) -> dict[str, dict[str, Any] | None]:
    """Each chapter's saved results at ``profile`` (:func:`kdlab.book.results.load`), ``None`` where the
    file is missing; an unreadable file is an error naming it."""
    records: dict[str, dict[str, Any] | None] = {}
    for chapter in chapters:
        try:
            records[chapter] = kd_results.load(chapter, profile, folder)
        except FileNotFoundError:
            records[chapter] = None
        except json.JSONDecodeError as error:
            raise ValueError(
                f"the results of chapter {chapter!r} at profile {profile!r} are not JSON: {error}"
            ) from None
    return records


def _saved(record: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return list((record or {}).get("results", {}).get("claims") or [])


def join(
    records: Mapping[str, Mapping[str, Any] | None],
    also: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    catalogue: Iterable[Claim] = CLAIMS,
) -> list[dict[str, Any]]:
    """Every catalogue claim with every verdict the chapters saved for it, joined by id.

    ``records``: chapter -> its saved results (:func:`load_records`; ``None`` where it has not run);
    ``also``: chapter -> the records of claims checked in this run, not saved yet (the results
    chapter's own, ``{"results": checked}``). One row per (claim, chapter's record) with a
    verdict, in the catalogue's order; a claim that no chapter checked gets one row with
    ``verdict`` ``"not checked"`` and the ``reason``: why no chapter checks it, the chapter's own
    reason for not running it, or that its chapter has not run or did not check it. Records whose
    id the catalogue lacks close the list ("not in the catalogue"). Each row: ``id``, ``claim``,
    ``source``, ``paper``, ``chapter``, ``setting``, ``ours``, ``verdict``, ``reason``, ``varies``
    (the verdict rests on a timing, see :func:`judge`), and for a verdict the ``difference``, its
    interval ``low`` .. ``high`` and ``n`` as the chapter saved them.
    """
    catalogue = list(catalogue)
    known = {c.id for c in catalogue}
    by_id: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    found_in = [(chapter, _saved(record)) for chapter, record in records.items()]
    for chapter, items in [*found_in, *(also or {}).items()]:
        for item in items:
            by_id.setdefault(str(item.get("id")), []).append((chapter, item))
    rows: list[dict[str, Any]] = []
    for found in catalogue:
        base = {"id": found.id, "claim": found.claim, "source": found.cite(), "paper": found.paper}
        saved = by_id.get(found.id, [])
        decided = [(chapter, item) for chapter, item in saved if item.get("verdict") in VERDICTS]
        for chapter, item in decided:
            rows.append({**base, "chapter": chapter, "setting": str(item.get("setting", "")),
                         "ours": str(item.get("ours", "-")), "verdict": str(item["verdict"]),
                         "reason": str(item.get("reason", "")), "varies": bool(item.get("varies")),
                         **{key: item.get(key) for key in ("difference", "low", "high", "n")}})
        if decided:
            continue
        if found.chapter is None:
            reason = found.why
        elif saved:
            reason = "; ".join(f"{chapter}: {item.get('reason', '')}" for chapter, item in saved)
        elif found.chapter not in records:
            reason = f"its chapter {found.chapter!r} is not among the chapters read"
        elif records[found.chapter] is None:
            reason = f"its chapter {found.chapter!r} has not run at this profile"
        else:
            reason = f"its chapter {found.chapter!r} ran but did not check it"
        rows.append({**base, "chapter": found.chapter or "-", "setting": "", "ours": "-",
                     "verdict": "not checked", "reason": reason, "varies": False})
    for claim_id, saved in by_id.items():
        if claim_id not in known:
            for chapter, item in saved:
                rows.append({"id": claim_id, "claim": str(item.get("claim", "-")), "source": "-",
                             "paper": str(item.get("paper", "-")), "chapter": chapter,
                             "setting": str(item.get("setting", "")), "ours": str(item.get("ours", "-")),
                             "verdict": "not in the catalogue", "reason": str(item.get("verdict", "-")),
                             "varies": False})
    return rows


def unchecked(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of :func:`join` whose claim no chapter checked."""
    return [row for row in rows if row["verdict"] == "not checked"]


def describe(row: Mapping[str, Any]) -> str:
    """One line for a row of :func:`join`, in the words :func:`check` prints."""
    where = ", ".join(part for part in (row["chapter"], row["setting"]) if part and part != "-")
    where = f" ({where})" if where else ""
    head = f"{row['verdict']}: [{row['id']}] {row['claim']}"
    if row["verdict"] == "not checked":
        return f"{head} | paper: {row['paper']} | {row['reason']}"
    return f"{head}{where} | paper: {row['paper']} | ours: {row['ours']}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows: Iterable[Mapping[str, Any]]) -> str:
    """The checked claims as a Markdown table, one row each: id, claim (and setting), source, the
    paper's figure, ours, the difference with its interval, the verdict. For a chapter's closing
    section, shown with ``IPython.display.Markdown`` (a real table, not a monospace block)."""
    lines = ["| claim | source | paper | ours | difference (95 % interval) | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        where = f" ({row['setting']})" if row.get("setting") else ""
        if row.get("low") is not None and row.get("high") is not None:
            mean, low, high = _numbers(row["difference"], row["low"], row["high"])
            interval = f"{mean} [{low}, {high}], n={row['n']}"
        elif row.get("difference") is not None:
            interval = f"{_numbers(row['difference'])[0]} (n={row['n']}, no interval)"
        else:
            interval = "-"
        cells = [f"`{row['id']}` {_cell(row['claim'])}{_cell(where)}", _cell(row["source"]),
                 _cell(row["paper"]), _cell(row["ours"]), interval, f"**{row['verdict']}**"]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def summary(rows: Iterable[Mapping[str, Any]]) -> str:
    """One sentence counting the checked claims by verdict, with their ids: "Of 7 claims checked, 3
    held (a, b, c), 1 was contradicted (d) and 3 were not decided at this scale (e, f, g)." Claims
    not run are counted apart. A claim checked in several settings counts once per check, each
    named with its setting up to the first comma: "Of 5 checks (4 claims)... bucila.munge (digits)"."""
    rows = list(rows)
    ids = [row["id"] for row in rows]

    def label(row: Mapping[str, Any]) -> str:
        if ids.count(row["id"]) == 1:
            return row["id"]
        setting = str(row.get("setting") or "").split(",")[0].strip()
        return f"{row['id']} ({setting or 'check ' + str(rows.index(row) + 1)})"

    groups = {verdict: [label(row) for row in rows if row["verdict"] == verdict]
              for verdict in (*VERDICTS, NOT_RUN)}
    decided = len(rows) - len(groups[NOT_RUN])
    claims_checked = len({row["id"] for row in rows if row["verdict"] != NOT_RUN})

    def part(verdict: str, singular: str, plural: str) -> str:
        ids = groups[verdict]
        return f"{len(ids)} {singular if len(ids) == 1 else plural}" + (f" ({', '.join(ids)})" if ids else "")

    counted = (f"{decided} claim{'s' if decided != 1 else ''} checked" if claims_checked == decided
               else f"{decided} checks ({claims_checked} claims)")
    text = (f"Of {counted}, {part(HELD, 'held', 'held')}, "
            f"{part(CONTRADICTED, 'was contradicted', 'were contradicted')} and "
            f"{part(NOT_DECIDED, 'was not decided at this scale', 'were not decided at this scale')}.")
    if groups[NOT_RUN]:
        text += f" Not run at this profile: {', '.join(groups[NOT_RUN])}."
    return text


def chapter_points(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The (model, parameters, test error %) points a chapter's saved results let one plot.

    Reads, where present: ``results["points"]`` (a list of ``{"model", "parameters",
    "error_percent"}``); else ``teacher_parameters`` / ``student_parameters`` with either
    ``teacher_errors`` and ``errors`` (``{name: [count per seed]}``, of ``test_size`` images, or
    of the knob ``test_size``, default 10,000) or ``teacher_accuracy`` and ``accuracy`` (``{name:
    [accuracy per seed]}``, in percent or as fractions). Mean over seeds; anything else is skipped.
    """
    found = record.get("results", {})
    chapter = record.get("chapter", "?")
    if isinstance(found.get("points"), list):
        return [
            {"chapter": chapter, **p}
            for p in found["points"]
            if {"model", "parameters", "error_percent"} <= set(p)
        ]
    teacher_n, student_n = found.get("teacher_parameters"), found.get("student_parameters")
    points: list[dict[str, Any]] = []

    def add(model: str, parameters: Any, values: Any, to_percent: Callable[[float], float]) -> None:
        values = values if isinstance(values, list) else [values]
        if parameters is None or not values or not all(isinstance(v, (int, float)) for v in values):
            return
        points.append(
            {
                "chapter": chapter,
                "model": model,
                "parameters": int(parameters),
                "error_percent": to_percent(sum(values) / len(values)),
            }
        )

    if isinstance(found.get("errors"), dict):
        size = found.get("test_size") or record.get("knobs", {}).get("test_size") or 10000

        def from_count(count: float) -> float:
            return 100.0 * count / size

        add("teacher", teacher_n, found.get("teacher_errors"), from_count)
        for name, values in found["errors"].items():
            add(name, student_n, values, from_count)
    elif isinstance(found.get("accuracy"), dict):

        def from_accuracy(value: float) -> float:
            return 100.0 - (100.0 * value if value <= 1.0 else value)

        add("teacher", teacher_n, found.get("teacher_accuracy"), from_accuracy)
        for name, values in found["accuracy"].items():
            add(name, student_n, values, from_accuracy)
    return points
