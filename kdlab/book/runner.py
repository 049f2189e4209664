"""Running chapters with papermill and building the Jupyter Book (``kdlab run``, ``kdlab book``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from kdlab import _checks
from kdlab.book import profiles
from kdlab.book.profiles import PROFILES


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


def run_chapter(
    root: Path, chapter: str, profile: str, parameters: dict[str, Any], out: Path, kernel: str = "python3"
) -> Path:
    """Execute ``book/<chapter>.ipynb`` with papermill at ``profile`` into ``out/<chapter>.ipynb``.

    A parameter that the chapter's ``parameters`` cell does not define is an error (papermill
    would only warn), and so is a profile table whose knobs differ from the parameters cell's
    (:func:`kdlab.book.profiles.check_notebook`). The injected-parameters cell is tagged
    ``remove-cell`` so a book built from the executed notebook does not show it. The chapter runs
    in ``out`` (its results land in ``out/results``).
    """
    import nbformat
    import papermill

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
    out.mkdir(parents=True, exist_ok=True)
    for extra in (root / "book").iterdir():  # figures and data files the chapter reads beside it
        if extra.suffix not in (".ipynb", ".md") and extra.is_file():
            shutil.copy2(extra, out / extra.name)
    target = out / f"{chapter}.ipynb"
    papermill.execute_notebook(
        str(source),
        str(target),
        parameters={"profile": profile, **parameters},
        cwd=str(out),
        kernel_name=kernel,
        progress_bar=False,
    )
    notebook = nbformat.read(target, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(notebook, target)
    return target


def _package_digest() -> str:
    import kdlab

    h = hashlib.sha256()
    for path in sorted(Path(kdlab.__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def execute_all(
    root: Path, profile: str, out: Path, parameters: dict[str, Any] | None = None, kernel: str = "python3"
) -> list[tuple[str, str, float]]:
    """Run every chapter of ``_toc.yml`` at ``profile`` into ``out``, in the table of contents' order.

    A chapter whose notebook, parameters and kdlab sources are unchanged since its last run here
    is not run again (its executed notebook is reused: the warm build). A chapter that reads the
    other chapters' results (notebook metadata ``kdlab.reads_results``, the results chapter) runs
    again whenever a chapter before it did. Returns ``(chapter, "ran" or "up to date", seconds)``.
    """
    parameters = parameters or {}
    out.mkdir(parents=True, exist_ok=True)
    package = _package_digest()
    report, earlier = [], []
    for name in chapters(root):
        source = root / "book" / f"{name}.ipynb"
        key_parts = [source.read_bytes().hex(), profile, repr(sorted(parameters.items())), package]
        if json.loads(source.read_text()).get("metadata", {}).get("kdlab", {}).get("reads_results"):
            key_parts += earlier
        key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()
        earlier.append(key)
        stamp, target = out / f".{name}.key", out / f"{name}.ipynb"
        if target.exists() and stamp.exists() and stamp.read_text() == key:
            report.append((name, "up to date", 0.0))
            continue
        started = time.perf_counter()
        print(f"kdlab: running {name} at profile {profile} -> {target}", flush=True)
        stamp.unlink(missing_ok=True)
        run_chapter(root, name, profile, parameters, out, kernel=kernel)
        stamp.write_text(key)
        report.append((name, "ran", time.perf_counter() - started))
    return report


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
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
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
