"""Running chapters with papermill and building the Jupyter Book (``kdlab run``, ``kdlab book``)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from kdlab import _checks, dry_run
from kdlab.book import profiles
from kdlab.book.profiles import PROFILES

# A folder of dry-run notebooks carries this file, so real and dry runs never share a folder.
DRY_RUN_MARK = ".kdlab-dry-run"


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The book's root: the nearest folder at or above ``start`` (default: here) holding ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "book").is_dir():
            return folder
    raise FileNotFoundError(
        f"no kdlab book found at or above {str(here)!r} (a folder with _toc.yml and book/); "
        "run from a clone of the kdlab repository or pass --root"
    )


def chapters(root: Path) -> list[str]:
    """The notebook chapters listed in ``_toc.yml``, in order (names without ``book/`` and suffix)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = [toc.get("root", "")]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))
            for part in entry.get("parts", []):
                walk(part.get("chapters", []))

    walk(toc.get("chapters", []))
    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    return [Path(f).name for f in files if f and (root / f"{f}.ipynb").exists()]


def default_out(root: Path, profile: str, dry_run: bool = False) -> Path:
    """Where ``kdlab run`` writes executed chapters: ``_build/runs/<profile>``, or ``_build/dry-run``
    for dry runs (never the same folder as real runs)."""
    return root / "_build" / ("dry-run" if dry_run else f"runs/{profile}")


def run_chapter(
    root: Path,
    chapter: str,
    profile: str,
    parameters: dict[str, Any],
    out: Path,
    kernel: str = "python3",
    dry_run: bool = False,
    steps: int | None = None,
) -> Path:
    """Execute ``book/<chapter>.ipynb`` with papermill at ``profile`` into ``out/<chapter>.ipynb``.

    A parameter that the chapter's ``parameters`` cell does not define is an error (papermill
    would only warn), and so is a profile table whose knobs differ from the parameters cell's
    (:func:`kdlab.book.profiles.check_notebook`). The injected-parameters cell is tagged
    ``remove-cell`` so a book built from the executed notebook does not show it. The chapter runs
    in ``out`` (its results land in ``out/results``).

    With ``dry_run``, the chapter's ``full`` path runs end to end on a miniature of the work
    (:mod:`kdlab.dry_run`; ``profile`` is ignored), on the CPU unless ``parameters`` name a
    ``device``, for ``steps`` steps an epoch (default :data:`kdlab.dry_run.STEPS_PER_EPOCH`): see
    :func:`dry_run_environment`. It prints
    and writes (``out/<chapter>.dry-run.json``) what its training steps measured and the projected
    wall time of the real run; :func:`dry_run_summary` reads it back. ``out`` must not hold
    notebooks of real runs (and a real run refuses a folder of dry runs).
    """
    import nbformat
    import papermill

    if dry_run:
        profile = "full"
    _checks.choice("profile", profile, PROFILES)
    known = chapters(root)
    if chapter not in known:
        raise ValueError(f"chapter must be one of {known}, got {chapter!r}")
    source = root / "book" / f"{chapter}.ipynb"
    profiles.check_notebook(json.loads(source.read_text()), f"chapter {chapter!r}")
    declared = papermill.inspect_notebook(str(source))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(
            f"chapter {chapter!r} has no parameter(s) {unknown}; its parameters are {sorted(declared)}"
        )
    _check_out(Path(out), dry_run)
    out.mkdir(parents=True, exist_ok=True)
    for extra in (root / "book").iterdir():  # figures and data files the chapter reads beside it
        if extra.suffix not in (".ipynb", ".md") and extra.is_file():
            shutil.copy2(extra, out / extra.name)
    target = out / f"{chapter}.ipynb"
    device = str(parameters.get("device") or "cpu")
    if dry_run:
        (out / DRY_RUN_MARK).touch()
        if "device" in declared:
            parameters = {**parameters, "device": device}
    started = time.perf_counter()
    with environment(dry_run_environment(out, chapter, device, steps) if dry_run else {}):
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters={"profile": profile, **parameters},
            cwd=str(out),
            kernel_name=kernel,
            progress_bar=False,
        )
    if dry_run:
        _report_dry_run(out, chapter, time.perf_counter() - started, steps)
    notebook = nbformat.read(target, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(notebook, target)
    return target


def _check_out(out: Path, dry_run: bool) -> None:
    """Refuse to mix dry-run notebooks and real ones in one folder."""
    if not out.is_dir():
        return
    marked = (out / DRY_RUN_MARK).exists()
    if dry_run and not marked and any(out.glob("*.ipynb")):
        raise ValueError(f"{str(out)!r} holds notebooks of real runs; give dry runs a folder of their own")
    if not dry_run and marked:
        raise ValueError(f"{str(out)!r} holds dry runs; give real runs another folder")


def dry_run_environment(
    out: Path, chapter: str, device: str = "cpu", steps: int | None = None
) -> dict[str, str]:
    """The environment of a chapter's dry run (see :mod:`kdlab.dry_run`): ``KDLAB_DRY_RUN=1``,
    ``KDLAB_DEVICE=device``, ``KDLAB_DRY_RUN_STEPS=steps`` when given, the report file
    ``KDLAB_DRY_RUN_REPORT=out/<chapter>.dry-run.jsonl``
    (emptied), and, unless ``KDLAB_CACHE`` is set, an empty cache of its own in
    ``out/cache/<chapter>``, so every fit of the chapter runs and is measured (the keys of a dry
    run differ from a real run's anyway)."""
    out = Path(out).resolve()
    report = out / f"{chapter}.dry-run.jsonl"
    report.unlink(missing_ok=True)
    env = {dry_run.ENV: "1", dry_run.REPORT_ENV: str(report), "KDLAB_DEVICE": device}
    if steps is not None:
        _checks.at_least("steps", steps, 1)
        env[dry_run.STEPS_ENV] = str(steps)
    if not os.environ.get("KDLAB_CACHE"):
        cache = out / "cache" / chapter
        shutil.rmtree(cache, ignore_errors=True)
        env["KDLAB_CACHE"] = str(cache)
    return env


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set (the kernel inherits it), restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _report_dry_run(
    out: Path, chapter: str, seconds: float, steps: int | None = None
) -> dry_run.Summary:
    steps = dry_run.STEPS_PER_EPOCH if steps is None else steps
    summary = dry_run.summary(Path(out) / f"{chapter}.dry-run.jsonl")
    record = {"chapter": chapter, "wall_seconds": seconds, **summary.to_dict()}
    (Path(out) / f"{chapter}.dry-run.json").write_text(json.dumps(record, indent=1) + "\n")
    print(dry_run_line(chapter, summary, seconds, steps), flush=True)
    for configuration in summary.configurations[:3]:  # where most of the real run goes
        print(f"  {dry_run.describe(configuration)}", flush=True)
    return summary


def dry_run_line(
    chapter: str, summary: dry_run.Summary, seconds: float, steps: int = dry_run.STEPS_PER_EPOCH
) -> str:
    """One line: ``kdlab: fsp full (dry run): 26 fit calls, 52 steps (at most 2 each), ran in 19 s;
    the real run: ~13.0 h of training on this CPU``."""
    return (f"kdlab: {chapter} full (dry run): {summary.fits} fit calls, {summary.steps} steps "
            f"(at most {steps} each), ran in {seconds:.0f} s; the real run: "
            f"~{dry_run.duration(summary.projected_seconds)} of training on {_machine(summary.device)}")


def _machine(device: str) -> str:
    """``this CPU`` or ``this GPU (cuda:0)``: where a dry run's speeds were measured."""
    return "this CPU" if device == "cpu" else f"this GPU ({device})" if device.startswith("cuda") else device


def dry_run_summary(out: Path, chapter: str) -> dict[str, Any] | None:
    """What the last dry run of ``chapter`` into ``out`` wrote (``None`` if there was none):
    ``wall_seconds``, ``fits``, ``steps``, ``seconds``, ``projected_seconds`` and ``configurations``
    (each with its best ``images_per_second`` and ``projected_seconds``, the heaviest first)."""
    path = Path(out) / f"{chapter}.dry-run.json"
    return json.loads(path.read_text()) if path.exists() else None


def dry_run_all(
    root: Path,
    out: str | os.PathLike,
    names: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
    kernel: str = "python3",
    steps: int | None = None,
) -> list[dict[str, Any]]:
    """Dry-run ``names`` (default: every chapter, in the table of contents' order) into ``out``, one
    after the other (``steps`` steps an epoch, on ``parameters["device"]`` if given, else the CPU),
    then print the total; returns each chapter's :func:`dry_run_summary`."""
    names = chapters(root) if names is None else names
    out = Path(out)
    done = []
    for name in names:
        print(f"kdlab: dry run of {name} at profile full -> {out / (name + '.ipynb')}", flush=True)
        run_chapter(root, name, "full", dict(parameters or {}), out, kernel=kernel, dry_run=True, steps=steps)
        done.append(dry_run_summary(out, name))
    wall = sum(d["wall_seconds"] for d in done)
    projected = sum(d["projected_seconds"] for d in done)
    print(f"kdlab: {len(done)} chapter(s) dry-run in {wall:.0f} s; the real full runs: "
          f"~{dry_run.duration(projected)} of training on {_machine(done[0]['device'] if done else 'cpu')}",
          flush=True)
    return done


def _package_digest() -> str:
    import kdlab

    h = hashlib.sha256()
    for path in sorted(Path(kdlab.__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def _run_stamped(
    root: Path, name: str, profile: str, parameters: dict[str, Any], out: Path, kernel: str, key: str,
    threads: int | None = None,
) -> float:
    """:func:`run_chapter`, its key stamped beside the executed notebook once it ran; its seconds. With
    ``threads`` (a worker process of its own), the chapter's kernel gets that many CPU threads."""
    if threads is not None:
        # Chapters side by side must share the cores: torch's threads, more than the cores, spin and crawl.
        os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.perf_counter()
    print(f"kdlab: running {name} at profile {profile} -> {out / (name + '.ipynb')}", flush=True)
    (out / f".{name}.key").unlink(missing_ok=True)
    run_chapter(root, name, profile, parameters, out, kernel=kernel)
    (out / f".{name}.key").write_text(key)
    return time.perf_counter() - started


def execute_all(
    root: Path,
    profile: str,
    out: Path,
    parameters: dict[str, Any] | None = None,
    kernel: str = "python3",
    jobs: int = 2,
) -> list[tuple[str, str, float]]:
    """Run every chapter of ``_toc.yml`` at ``profile`` into ``out``, in the table of contents' order.

    A chapter whose notebook, parameters and kdlab sources are unchanged since its last run here
    is not run again (its executed notebook is reused: the warm build). A chapter that reads the
    other chapters' results (notebook metadata ``kdlab.reads_results``, the results chapter) runs
    again whenever a chapter before it did, and after them. When the library's training code
    (:func:`kdlab.cache.code_digest`) is that of the last build in ``out``, the chapters to run find
    their trained models in the cache and spend their time starting kernels, loading and plotting,
    so up to ``jobs`` of them run at once; otherwise (a cold build, or a changed loss, recipe or
    training loop) one at a time, since chapters that train would only share the cores and blur
    each chapter's time. Returns ``(chapter, "ran" or "up to date", seconds)`` in the table's order.
    """
    from kdlab import cache

    _checks.at_least("jobs", jobs, 1)
    parameters = parameters or {}
    out.mkdir(parents=True, exist_ok=True)
    package, training = _package_digest(), cache.code_digest()
    training_stamp = out / ".training.key"
    warm = training_stamp.exists() and training_stamp.read_text() == training
    seconds: dict[str, float] = {}
    keys, earlier, first, last = {}, [], [], []
    for name in chapters(root):
        notebook = (root / "book" / f"{name}.ipynb").read_bytes()
        key_parts = [notebook.hex(), profile, repr(sorted(parameters.items())), package]
        reads = json.loads(notebook).get("metadata", {}).get("kdlab", {}).get("reads_results")
        if reads:
            key_parts += earlier
        keys[name] = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()
        earlier.append(keys[name])
        stamp, target = out / f".{name}.key", out / f"{name}.ipynb"
        if not (target.exists() and stamp.exists() and stamp.read_text() == keys[name]):
            (last if reads else first).append(name)

    chapter_args = {name: (root, name, profile, parameters, out, kernel, keys[name]) for name in first + last}
    if warm and jobs > 1 and len(first) > 1:
        # Spawned processes: each chapter's papermill client in its own interpreter, as `kdlab run` runs it.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            runs = {name: pool.submit(_run_stamped, *chapter_args[name], threads) for name in first}
            seconds.update({name: run.result() for name, run in runs.items()})  # a failure raises here
    else:
        seconds.update({name: _run_stamped(*chapter_args[name]) for name in first})
    seconds.update({name: _run_stamped(*chapter_args[name]) for name in last})
    training_stamp.write_text(training)
    return [(name, "ran", seconds[name]) if name in seconds else (name, "up to date", 0.0) for name in keys]


def with_repository(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the repository and launch buttons shown only when ``repository.url`` (the one
    setting, empty until the book is published) names a repository: a button never leads nowhere."""
    url = str((config.get("repository") or {}).get("url") or "").strip()
    config = {**config, "html": {**config.get("html", {}), "use_repository_button": bool(url)}}
    if not url:
        config.pop("repository", None)
        config.pop("launch_buttons", None)
    return config


def _local_mathjax(source: Path) -> dict[str, Any]:
    """Copy MathJax 3 (its TeX-to-SVG bundle, from the ``sphinx-mathjax-offline`` package) into the
    book as an extra file (``mathjax/tex-svg.js`` beside ``index.html``) and return the Sphinx
    settings that load it: the pages render their math without a network (the default fetches
    MathJax from a CDN), and SVG output needs no web fonts, which browsers refuse to load from
    ``file://`` pages. (``mathjax_path`` is relative to ``_static``.)"""
    bundle = Path(importlib.metadata.distribution("sphinx-mathjax-offline").locate_file(
        "sphinx-mathjax-offline/static/mathjax/tex-svg.js"))
    (source / "_extra" / "mathjax").mkdir(parents=True, exist_ok=True)
    shutil.copy2(bundle, source / "_extra" / "mathjax" / "tex-svg.js")
    return {"html_extra_path": ["_extra"], "mathjax_path": "../mathjax/tex-svg.js"}


def build(root: Path, executed: Path, strict: bool = True) -> Path:
    """Build the HTML book from executed notebooks; returns the path of its ``index.html``.

    ``executed`` is a folder of notebooks from :func:`run_chapter` / :func:`execute_all`. A copy
    of the book that uses them is built in ``_build/book`` with execution off, so the chapters
    run in the table of contents' order (the results chapter last) under papermill, not in
    Sphinx's alphabetical order. With ``strict``, warnings are errors.
    """
    source = root / "_build" / "book"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(root / "book", source / "book", ignore=shutil.ignore_patterns("_results", "*.ipynb"))
    for name in chapters(root):
        notebook = Path(executed) / f"{name}.ipynb"
        if not notebook.exists():
            raise FileNotFoundError(f"{notebook} is missing: run `kdlab run {name} --out {executed}` first")
        shutil.copy2(notebook, source / "book" / notebook.name)
    shutil.copy2(root / "_toc.yml", source / "_toc.yml")
    shutil.copy2(root / "references.bib", source / "references.bib")
    shutil.copytree(root / "_static", source / "_static")
    config = with_repository(yaml.safe_load((root / "_config.yml").read_text()))
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config.setdefault("sphinx", {}).setdefault("config", {}).update(
        _local_mathjax(source), html_static_path=["_static"], html_css_files=["kdlab.css"]
    )
    (source / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    script = Path(sys.executable).parent / "jupyter-book"
    command = [
        str(script) if script.exists() else (shutil.which("jupyter-book") or "jupyter-book"),
        "build",
        str(source),
    ]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    env = {**os.environ, "KDLAB_PROGRESS": os.environ.get("KDLAB_PROGRESS", "0")}
    subprocess.run(command, check=True, env=env)
    return source / "_build" / "html" / "index.html"
