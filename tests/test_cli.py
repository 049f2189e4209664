from pathlib import Path

import pytest

from kdlab import book, cli

ROOT = Path(__file__).resolve().parents[1]


def test_parameters_parse_as_python_literals_or_strings():
    assert book.parse_parameters(["epochs=30", "device=cuda", "alpha=0.5", "seeds=None", "t=[1, 2]"]) == {
        "epochs": 30,
        "device": "cuda",
        "alpha": 0.5,
        "seeds": None,
        "t": [1, 2],
    }
    with pytest.raises(ValueError, match="name=value"):
        book.parse_parameters(["epochs"])


def test_chapters_come_from_the_toc():
    names = book.chapters(ROOT)
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
        book.find_root(tmp_path)
