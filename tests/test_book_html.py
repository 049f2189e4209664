"""Checks of the built HTML book: every chapter page, its figures, no error output.

Run by ``make test`` after the book is built from the smoke notebooks, with ``KDLAB_HTML``
naming the HTML folder; skipped (with that reason) when it is not set.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

from kdlab.book import runner

ROOT = Path(__file__).resolve().parents[1]
HTML = os.environ.get("KDLAB_HTML")
pytestmark = pytest.mark.skipif(
    not HTML, reason="set KDLAB_HTML to a built book's html folder (make test does)"
)


@pytest.mark.parametrize("chapter", runner.chapters(ROOT))
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


@pytest.mark.parametrize("chapter", runner.chapters(ROOT))
def test_no_figure_is_blank(chapter):
    """A figure whose pixels are all (nearly) one colour drew nothing."""
    from PIL import Image, ImageStat

    page = Path(HTML) / "book" / f"{chapter}.html"
    for src in re.findall(r'<img[^>]+src="([^"]*_images/[^"]+)"', page.read_text()):
        with Image.open((page.parent / src).resolve()) as image:
            spread = ImageStat.Stat(image.convert("L")).stddev[0]
        assert spread > 1.0, f"{chapter}: figure {src} is blank (pixel sd {spread:.2f})"


@pytest.mark.parametrize("chapter", ["intro", *runner.chapters(ROOT)])
def test_markdown_tables_render_as_tables(chapter):
    """A Markdown table, written in a cell or output by one (the claims tables), is an HTML table,
    never its source text left in a paragraph (its rule "| --- |", which Sphinx's smart quotes turn
    into "| — |")."""
    html = (Path(HTML) / "book" / f"{chapter}.html").read_text()
    text = re.sub(r"<[^>]+>", " ", html)
    assert not re.search(r"\|\s*(?:---+|—|–)\s*\|", text), f"{chapter}: a Markdown table left as text"


def test_math_is_served_with_the_book():
    """MathJax comes from the book's own folder, not from a CDN, so math renders offline."""
    for page in (Path(HTML) / "book").glob("*.html"):
        html = page.read_text()
        assert "cdn.jsdelivr.net/npm/mathjax" not in html and "mathjax@" not in html, (
            f"{page.name}: MathJax from a CDN"
        )
    assert (Path(HTML) / "mathjax" / "tex-svg.js").exists()


def test_the_bibliography_lists_the_papers_the_chapters_cite():
    html = (Path(HTML) / "book" / "bibliography.html").read_text()
    for author in ("Hinton", "Romero", "Furlanello", "Zhang", "Yim"):
        assert author in html, f"the bibliography lacks {author}"


def test_intro_page_exists():
    assert (Path(HTML) / "book" / "intro.html").exists() or (Path(HTML) / "index.html").exists()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    not CHROMIUM, reason="needs Debian's chromium (make test installs it where apt-get exists)"
)
def test_every_page_loads_its_figures_in_a_headless_browser():
    """Open each chapter as a reader would, screenshot it, and check every figure decoded."""
    from playwright.sync_api import sync_playwright

    shots = Path(HTML).parents[1] / "screenshots"
    shots.mkdir(exist_ok=True)
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for chapter in ["intro", *runner.chapters(ROOT)]:
            page.goto((Path(HTML) / "book" / f"{chapter}.html").resolve().as_uri())
            page.wait_for_load_state("load")
            figures = page.evaluate(
                "Array.from(document.images).filter(i => i.src.includes('_images'))"
                ".map(i => i.complete && i.naturalWidth > 0)"
            )
            assert all(figures), f"{chapter}: a figure did not load"
            assert chapter == "intro" or figures, f"{chapter}: no figure"
            # MathJax typesets after the load event; its startup promise resolves when it is done.
            page.evaluate("window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
            text = page.evaluate("document.querySelector('main').innerText")
            raw = [mark for mark in ("$$", "\\frac", "\\(", "\\[", "\\mathrm", "\\alpha") if mark in text]
            assert not raw, f"{chapter}: math left as TeX source ({raw}): MathJax did not render it"
            clipped = page.evaluate(
                "Array.from(document.querySelectorAll('main pre'))"
                ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText.slice(0, 80))"
            )
            assert not clipped, f"{chapter}: {len(clipped)} block(s) of code or output clipped: {clipped}"
            page.screenshot(path=str(shots / f"{chapter}.png"), full_page=True)
        browser.close()
