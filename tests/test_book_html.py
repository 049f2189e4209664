"""Checks of the built HTML book: every chapter page, its figures, no error output.

Run by ``make test`` after the book is built from the smoke notebooks, with ``KDLAB_HTML``
naming the HTML folder; skipped (with that reason) when it is not set.
"""

import os
import re
from pathlib import Path

import pytest

from kdlab import book

ROOT = Path(__file__).resolve().parents[1]
HTML = os.environ.get("KDLAB_HTML")
pytestmark = pytest.mark.skipif(
    not HTML, reason="set KDLAB_HTML to a built book's html folder (make test does)"
)


@pytest.mark.parametrize("chapter", book.chapters(ROOT))
def test_chapter_page_renders_its_figures_and_no_errors(chapter):
    page = Path(HTML) / "book" / f"{chapter}.html"
    assert page.exists(), f"{page} was not built"
    html = page.read_text()
    sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    figures = [s for s in sources if "_images/" in s]
    assert figures, f"{chapter}: no figure on the page"
    for src in figures:
        assert (page.parent / src).resolve().exists(), f"{chapter}: figure {src} is missing"
    assert "ipythontb" not in html and "Traceback (most recent call last)" not in html, (
        f"{chapter}: error output"
    )
    assert "injected-parameters" not in html and "# Parameters" not in html, (
        f"{chapter}: papermill cell shown"
    )


def test_intro_page_exists():
    assert (Path(HTML) / "book" / "intro.html").exists() or (Path(HTML) / "index.html").exists()
