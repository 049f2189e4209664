from pathlib import Path

import pytest

from kdlab import cache, cli, cli_distill
from kdlab.book import runner

ROOT = Path(__file__).resolve().parents[1]


def test_parameters_parse_as_python_literals_or_strings():
    pairs = ["epochs=30", "device=cuda", "alpha=0.5", "seeds=None", "t=[1, 2]"]
    assert cli_distill.parse_parameters(pairs) == {
        "epochs": 30,
        "device": "cuda",
        "alpha": 0.5,
        "seeds": None,
        "t": [1, 2],
    }
    with pytest.raises(ValueError, match="name=value"):
        cli_distill.parse_parameters(["epochs"])


def test_chapters_come_from_the_toc():
    names = runner.chapters(ROOT)
    assert names[0] == "soft_targets" and "intro" not in names


def test_run_rejects_unknown_chapters_and_parameters(tmp_path, capsys):
    assert cli.main(["--root", str(ROOT), "run", "no_such_chapter", "--out", str(tmp_path)]) == 2
    assert "chapter must be one of" in capsys.readouterr().err
    assert (
        cli.main(["--root", str(ROOT), "run", "soft_targets", "-p", "epoch=3", "--out", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err
    assert "has no parameter(s) ['epoch']" in err and "'epochs'" in err


def test_find_root_fails_clearly_outside_a_book(tmp_path):
    with pytest.raises(FileNotFoundError, match="no kdlab book found"):
        runner.find_root(tmp_path)


def tiny_book(root: Path) -> None:
    import nbformat

    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n- file: book/first\n- file: book/last\n"
    )
    (root / "book" / "intro.md").write_text("# Intro\n")
    for name, reads in (("first", False), ("last", True)):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        if reads:
            nb.metadata["kdlab"] = {"reads_results": True}
        parameters = nbformat.v4.new_code_cell('profile = "default"')
        parameters.metadata["tags"] = ["parameters"]
        nb.cells = [parameters, nbformat.v4.new_code_cell(f"print({name!r}, profile)")]
        nbformat.write(nb, root / "book" / f"{name}.ipynb")


def test_execute_all_runs_in_toc_order_and_skips_unchanged_chapters(tmp_path):
    tiny_book(tmp_path)
    out = tmp_path / "runs"
    first = runner.execute_all(tmp_path, "smoke", out)
    assert [(name, status) for name, status, _ in first] == [("first", "ran"), ("last", "ran")]
    assert "first smoke" in (out / "first.ipynb").read_text()
    again = runner.execute_all(tmp_path, "smoke", out)
    assert [status for _, status, _ in again] == ["up to date", "up to date"]
    source = tmp_path / "book" / "first.ipynb"
    source.write_text(source.read_text().replace("print(", "print('changed', "))
    third = runner.execute_all(tmp_path, "smoke", out)
    # "last" reads the other chapters' results, so it runs again after "first" changed.
    assert [status for _, status, _ in third] == ["ran", "ran"]


def test_a_warm_book_runs_its_stale_chapters_at_once_and_a_cold_one_in_turn(tmp_path):
    import copy

    import nbformat

    tiny_book(tmp_path)
    out = tmp_path / "runs"
    runner.execute_all(tmp_path, "smoke", out)
    assert (out / ".training.key").read_text() == cache.code_digest()
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n"
        + "".join(f"- file: book/{name}\n" for name in ("first", "second", "last"))
    )
    plain = nbformat.read(tmp_path / "book" / "first.ipynb", as_version=4)
    for name in ("first", "second"):  # each records when it ran, in seconds
        nb = copy.deepcopy(plain)
        nb.cells.append(nbformat.v4.new_code_cell(
            "import time\nstart = time.time()\ntime.sleep(3)\n"
            f"open({name!r} + '.times', 'w').write(f'{{start}} {{time.time()}}')"
        ))
        nbformat.write(nb, tmp_path / "book" / f"{name}.ipynb")

    def spans():
        return [tuple(map(float, (out / f"{n}.times").read_text().split())) for n in ("first", "second")]

    warm = runner.execute_all(tmp_path, "smoke", out)
    assert [status for _, status, _ in warm] == ["ran", "ran", "ran"]
    (a_start, a_end), (b_start, b_end) = spans()
    assert a_start < b_end and b_start < a_end  # at once: the training code is the last build's
    (out / ".training.key").write_text("another training code")
    for name in ("first", "second"):
        (out / f".{name}.key").unlink()
    cold = runner.execute_all(tmp_path, "smoke", out)
    assert [status for _, status, _ in cold] == ["ran", "ran", "up to date"]  # the same chapters' results
    (a_start, a_end), (b_start, b_end) = spans()
    assert a_end <= b_start  # in turn, in the table's order


def test_bench_creates_its_json_folder_and_rejects_unknown_names(tmp_path):
    folder = tmp_path / "not" / "yet"
    # The gpu benchmark skips at once without CUDA, and still writes its JSON.
    assert cli.main(["--root", str(ROOT), "bench", "--json-dir", str(folder), "gpu"]) == 0
    assert (folder / "gpu.json").exists()
    with pytest.raises(SystemExit, match=r"no benchmark\(s\) \['gpus'\].*'distill_step'"):
        cli.main(["--root", str(ROOT), "bench", "gpus"])


def test_a_dry_run_is_of_the_full_profile(capsys):
    assert cli.main(["run", "fsp", "--profile", "smoke", "--dry-run"]) == 2
    assert "--dry-run runs the full profile, got --profile smoke" in capsys.readouterr().err


def test_the_repository_and_launch_buttons_show_only_with_a_repository_url():
    config = {"repository": {"url": ""}, "launch_buttons": {"colab_url": "x"}, "html": {}}
    hidden = runner.with_repository(config)
    assert "repository" not in hidden and "launch_buttons" not in hidden
    assert hidden["html"]["use_repository_button"] is False
    shown = runner.with_repository({"repository": {"url": "https://example.org/kdlab"}, "launch_buttons": {}})
    assert shown["html"]["use_repository_button"] is True and shown["repository"]["url"]


def test_an_unforeseen_error_is_one_line_unless_kdlab_debug_is_set(monkeypatch, capsys):
    def fails(args):
        raise RuntimeError("Given groups=1, weight of size [8, 3, 3, 3]\nexpected 3 channels")

    monkeypatch.delenv("KDLAB_DEBUG", raising=False)
    monkeypatch.setattr(cli_distill, "run", fails)
    argv = ["distill", "--teacher", "t.pt", "--student", "mlp((64, 3))", "--data", "digits"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == ("kdlab: error: RuntimeError: Given groups=1, weight of size [8, 3, 3, 3] expected 3 "
                   "channels (set KDLAB_DEBUG=1 to see the traceback)\n")
    for error in (OSError("disk full"), KeyError("fc"), TypeError("bad")):
        monkeypatch.setattr(cli_distill, "run", lambda args, error=error: (_ for _ in ()).throw(error))
        assert cli.main(argv) == 2
        assert capsys.readouterr().err.startswith(f"kdlab: error: {type(error).__name__}: ")
    monkeypatch.setattr(cli_distill, "run", fails)
    monkeypatch.setenv("KDLAB_DEBUG", "1")
    with pytest.raises(RuntimeError, match="Given groups=1"):
        cli.main(argv)
    with pytest.raises(ValueError, match="chapter must be one of"):  # kdlab's own errors too
        cli.main(["--root", str(ROOT), "run", "no_such_chapter"])
    monkeypatch.setenv("KDLAB_DEBUG", "0")
    for interrupt in (KeyboardInterrupt(), SystemExit(3)):  # left alone
        monkeypatch.setattr(cli_distill, "run", lambda args, error=interrupt: (_ for _ in ()).throw(error))
        with pytest.raises(type(interrupt)):
            cli.main(argv)


def test_the_help_says_how_to_see_a_traceback(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "KDLAB_DEBUG=1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["distill", "--help"])
    out = capsys.readouterr().out
    assert "KDLAB_DEBUG=1" in out and "--val-fraction F" in out
