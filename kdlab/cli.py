"""The ``kdlab`` command: run a chapter with a profile, build the book, run the benchmarks, distil a
teacher into a student (``kdlab distill``).

A failure prints one line, ``kdlab: error: ...``, and exits with status 2 (a failed benchmark or
subprocess: 1); an unforeseen error of a run prints its type and message on that line. Set the
environment variable ``KDLAB_DEBUG=1`` to see the Python traceback instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import webbrowser
from pathlib import Path

from kdlab import cli_distill, runtime
from kdlab.book import gpu_check, runner
from kdlab.book.profiles import PROFILES


def _check_device(name: str) -> None:
    """Refuse a device this machine lacks before any chapter starts (not in a papermill traceback)."""
    try:
        runtime.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name}: {error}") from None


def _chapters(root: Path, chapter: str) -> list[str]:
    """The chapters ``kdlab run CHAPTER`` runs: every chapter for ``all``, else ``chapter`` if it is one."""
    known = runner.chapters(root)
    if chapter == "all":
        return known
    if chapter not in known:
        raise ValueError(f"chapter must be one of {known} (or 'all'), got {chapter!r}")
    return [chapter]


def _run(args: argparse.Namespace) -> int:
    root = runner.find_root(args.root)
    parameters = cli_distill.parse_parameters(args.parameter or [])
    if args.device is not None:
        _check_device(args.device)
        parameters["device"] = args.device
    names = _chapters(root, args.chapter)
    if args.dry_run:
        if args.profile != "full":
            raise ValueError(f"--dry-run runs the full profile, got --profile {args.profile}")
        out = Path(args.out) if args.out else runner.default_out(root, "full", dry_run=True)
        runner.dry_run_all(root, out, names, parameters, kernel=args.kernel)
        return 0
    out = Path(args.out or runner.default_out(root, args.profile))
    for name in names:
        print(f"kdlab: running {name} at profile {args.profile} -> {out / (name + '.ipynb')}", flush=True)
        runner.run_chapter(root, name, args.profile, parameters, out, kernel=args.kernel)
    return 0


def _book(args: argparse.Namespace) -> int:
    root = runner.find_root(args.root)
    if args.executed:
        executed = Path(args.executed)
    else:
        executed = root / "_build" / "runs" / args.profile
        for name, status, seconds in runner.execute_all(
            root, args.profile, executed, kernel=args.kernel, jobs=args.jobs
        ):
            print(
                f"kdlab: {name}: {status}" + (f" in {seconds:.0f} s" if status == "ran" else ""), flush=True
            )
    index = runner.build(root, executed)
    print(f"kdlab: the book is at {index}")
    if args.open:
        webbrowser.open(index.as_uri())
    return 0


def _bench(args: argparse.Namespace) -> int:
    root = runner.find_root(args.root)
    if args.gpu:
        if args.only:
            raise ValueError(f"--gpu runs the GPU check, not benchmarks; got benchmark name(s) {args.only}")
        out = Path(args.json_dir or root / "_build" / "gpu-check")
        steps = gpu_check.DEFAULT_STEPS if args.steps is None else args.steps
        gpu_check.check(
            root, out, device=args.device, steps=steps, chapters=args.chapters, kernel=args.kernel
        )
        return 0
    given = {"--device": args.device != "cuda", "--steps": args.steps is not None,
             "--chapters": args.chapters is not None}
    unused = [flag for flag, value in given.items() if value]
    if unused:
        raise ValueError(f"{', '.join(unused)}: only with --gpu (the GPU check); benchmarks take only names")
    scripts = sorted(s for s in (root / "benchmarks").glob("*.py") if not s.name.startswith("_"))
    if args.only:
        unknown = sorted(set(args.only) - {s.stem for s in scripts})
        if unknown:
            names = [s.stem for s in scripts]
            raise SystemExit(f"kdlab bench: no benchmark(s) {unknown}; the benchmarks are {names}")
        scripts = [s for s in scripts if s.stem in args.only]
    if args.json_dir:
        Path(args.json_dir).mkdir(parents=True, exist_ok=True)
    failed = 0
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        command = [sys.executable, str(script)]
        if args.json_dir:
            command += ["--json", str(Path(args.json_dir) / f"{script.stem}.json")]
        failed += subprocess.run(command).returncode != 0
    return 1 if failed else 0


DEBUG = "KDLAB_DEBUG"
EPILOG = (
    "A failure prints one line, 'kdlab: error: ...', and exits with status 2; set the environment variable "
    f"{DEBUG}=1 to see the Python traceback of an error instead."
)


def _one_line(error: BaseException) -> str:
    """``error``'s message on one line: a notebook's failure (papermill's) as its exception's name and
    value, else the message's lines joined."""
    ename, evalue = getattr(error, "ename", None), getattr(error, "evalue", None)
    if ename and evalue is not None:
        return f"a notebook failed: {ename}: {evalue}"
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or "(no message)"


def _debugging() -> bool:
    return os.environ.get(DEBUG, "").strip() not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kdlab", description=__doc__, epilog=EPILOG)
    parser.add_argument("--root", help="the book's folder (default: found at or above the working directory)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="execute a chapter with papermill at a profile")
    run.add_argument("chapter", help="a chapter name from _toc.yml (e.g. soft_targets), or 'all'")
    run.add_argument("--profile", choices=PROFILES, default="default")
    run.add_argument(
        "-p", "--parameter", action="append", metavar="NAME=VALUE", help="override a knob (repeatable)"
    )
    run.add_argument("--device", help="cpu, cuda or mps (default: the chapter's choice)")
    run.add_argument("--out", help="output folder (default: _build/runs/PROFILE)")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    run.add_argument(
        "--dry-run", action="store_true",
        help="with --profile full: the chapter's full path end to end on the CPU on a miniature of the work "
             "(2 steps an epoch, 1 epoch a stage, synthetic data where a data set is absent), with the "
             "projected wall time of the real run (into _build/dry-run)",
    )
    run.set_defaults(handler=_run)

    build = commands.add_parser(
        "book", help="run every chapter (skipping unchanged ones) in order, then build the HTML book"
    )
    build.add_argument("--profile", choices=PROFILES, default="default", help="the profile of every chapter")
    build.add_argument(
        "--executed", help="build from notebooks already executed into this folder (no execution)"
    )
    build.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    build.add_argument(
        "--jobs", type=int, default=2,
        help="chapters run at once when the library's training code is unchanged since the last build "
             "(they load their models from the cache); a cold build runs them one at a time",
    )
    build.add_argument("--open", action="store_true", help="open the book in a browser when built")
    build.set_defaults(handler=_book)

    bench = commands.add_parser("bench", help="run the speed and memory benchmarks in benchmarks/")
    bench.add_argument("only", nargs="*", help="benchmark names (default: all)")
    bench.add_argument("--json-dir", help="write each benchmark's numbers as JSON here")
    bench.add_argument(
        "--gpu", action="store_true",
        help="the GPU check (make gpu-check): each chapter's full path for a few steps an epoch on --device, "
             "with images/s, peak memory and projected full-run times, then the CUDA speed knobs; JSON into "
             "--json-dir (default _build/gpu-check)",
    )
    bench.add_argument("--device", default="cuda", help="with --gpu: the device to check (default cuda)")
    bench.add_argument(
        "--steps", type=int, help=f"with --gpu: steps an epoch (default {gpu_check.DEFAULT_STEPS})"
    )
    bench.add_argument("--chapters", nargs="+", help="with --gpu: these chapters only (default: all)")
    bench.add_argument("--kernel", default="python3", help="with --gpu: Jupyter kernel name")
    bench.set_defaults(handler=_bench)

    cli_distill.add_parser(commands)

    args = parser.parse_args(argv)
    os.environ.setdefault("KDLAB_PROGRESS", "0")
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as error:  # kdlab's own messages: the option, value, what is valid
        if _debugging():
            raise
        print(f"kdlab: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        if _debugging():
            raise
        print(f"kdlab: error: {error.cmd[0]} failed with exit status {error.returncode}", file=sys.stderr)
        return 1
    except Exception as error:  # anything else from the run (not KeyboardInterrupt or SystemExit)
        if _debugging():
            raise
        print(f"kdlab: error: {type(error).__name__}: {_one_line(error)} (set {DEBUG}=1 to see the "
              "traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
