"""The rendered book in a real browser: every page loads, every figure decodes, nothing shows an error.

Headless Chromium opens each page through a same-origin harness served on
localhost and reports what a reader would see: images that did not load
(naturalWidth 0), tracebacks or error outputs, the links of the navigation, and
the launch and download buttons. A screenshot of each page is kept under
``_build/screenshots/`` for a person to look at.
"""
from __future__ import annotations

import functools
import http.server
import json
import posixpath
import re
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from course_lib.runner import list_notebooks

from .conftest import REPO

HARNESS = """<!doctype html><html><body style="margin: 0">
<iframe id="page" src="book/{page}" width="1280" height="2400" style="border: 0"></iframe>
<script>
document.getElementById("page").addEventListener("load", () => setTimeout(() => {{
  const doc = document.getElementById("page").contentDocument;
  const images = Array.from(doc.images);
  const broken = images.filter(im => !im.complete || im.naturalWidth === 0).map(im => im.src);
  const text = doc.body.innerText;
  const hrefs = Array.from(doc.querySelectorAll("a[href]")).map(a => a.getAttribute("href"));
  const report = {{title: doc.title, images: images.length, broken: broken, text: text.length,
                  traceback: text.includes("Traceback (most recent call last)"),
                  errors: doc.querySelectorAll(".output.error, .output.traceback, .output.stderr").length,
                  nav: Array.from(doc.querySelectorAll("nav a[href], .bd-sidebar a[href]"))
                            .map(a => a.getAttribute("href")),
                  colab: hrefs.some(h => h.includes("colab.research.google.com")),
                  binder: hrefs.some(h => h.includes("mybinder.org")),
                  download: doc.querySelectorAll(".btn-download-source-button, a[href$='.ipynb']").length,
                  math: doc.querySelectorAll(".math").length,
                  rendered: Array.from(doc.querySelectorAll(".math"))
                                 .filter(m => m.querySelector("mjx-container")).length,
                  mathjax: Array.from(doc.scripts).map(s => s.src).filter(s => s.toLowerCase().includes("mathjax"))}};
  document.body.setAttribute("data-report", JSON.stringify(report));
}}, 1500));
</script></body></html>"""

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=15000"]


def _chromium() -> str:
    """Path to Chromium; the test skips when it is missing (``make test`` installs it where it can)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Chromium is not installed: run `make browser` (Debian's chromium package, needs root "
                    "and apt-get) or install chromium yourself to run the browser checks")
    return found


@pytest.fixture(scope="module")
def served_book(built_book):
    """Serve a harness and the built book on 127.0.0.1; yield the base URL."""
    root = Path(tempfile.mkdtemp(prefix="book-serve-"))
    (root / "book").symlink_to(built_book, target_is_directory=True)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    shutil.rmtree(root)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


CHAPTERS = [f"notebooks/{p.stem}.html" for p in list_notebooks(REPO / "notebooks")]
BOOK_PAGES = [f"book/{p.stem}.html" for p in sorted((REPO / "book").glob("*.md"))]
SCREENSHOTS = REPO / "_build" / "screenshots"


def _screenshot_path(page: str) -> Path:
    return SCREENSHOTS / f"{re.sub(r'[^a-z0-9]+', '_', page)}.png"


def _report(root: Path, base: str, page: str, screenshot: Path | None = None) -> dict:
    """The harness's report on ``page``; with ``screenshot``, the same Chromium run also saves the
    page as it rendered (the harness's frame fills the 1280x2400 window)."""
    harness = f"check_{re.sub(r'[^a-z0-9]+', '_', page)}.html"
    (root / harness).write_text(HARNESS.format(page=page))
    shoot = ["--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={screenshot}"] if screenshot else []
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", *shoot,
                              f"{base}/{harness}"], capture_output=True, text=True, timeout=120).stdout
    match = re.search(r'data-report="([^"]*)"', dom)
    assert match, f"the harness did not report for {page}; DOM: {dom[:500]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def rendered(served_book):
    """Every page's report as futures of Chromium runs three at a time, and each chapter's screenshot path.

    Each run is its own browser process with its own profile, so running them
    side by side only saves the waiting; ``.result()`` raises a page's own
    failure in that page's test. A chapter's run also takes its screenshot.
    """
    root, base = served_book
    _chromium()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = {page: _screenshot_path(page) for page in CHAPTERS}
    for shot in shots.values():
        shot.unlink(missing_ok=True)  # never pass on a previous run's picture
    with ThreadPoolExecutor(3) as pool:
        reports = {page: pool.submit(_report, root, base, page, shots.get(page)) for page in BOOK_PAGES + CHAPTERS}
    return reports, shots


@pytest.mark.slow
@pytest.mark.parametrize("page", BOOK_PAGES + CHAPTERS)
def test_page_renders_with_all_figures_and_no_errors(served_book, rendered, page):
    root, base = served_book
    reports, shots = rendered
    report = reports[page].result()
    assert report["text"] > 500, f"{page} rendered almost no text: {report}"
    assert report["broken"] == [], f"{page}: images that did not load: {report['broken']}"
    assert not report["traceback"] and report["errors"] == 0, f"{page} shows an error output: {report}"
    # formulas are typeset by the MathJax the book bundles, never fetched from a CDN
    assert all(src.startswith(base) for src in report["mathjax"]), f"{page} loads MathJax from {report['mathjax']}"
    assert report["rendered"] == report["math"], f"{page}: {report['math'] - report['rendered']} formulas not typeset"
    if page in CHAPTERS:
        assert report["images"] >= 2, f"{page} shows no figures: {report}"
        assert report["colab"] and report["binder"], f"{page} has no Colab or Binder launch button: {report}"
        assert report["download"] > 0, f"{page} has no download button: {report}"
        shot = shots[page]
        assert shot.is_file() and shot.stat().st_size > 20_000, f"no real screenshot of {page} at {shot}"


@pytest.mark.slow
def test_formulas_render_offline(rendered):
    """Chromium here has no route to a CDN: typeset math proves the bundled MathJax did it."""
    report = rendered[0]["notebooks/09_local_geometry.html"].result()
    assert report["math"] >= 3 and report["rendered"] == report["math"], report
    assert report["mathjax"] and all("/_static/mathjax/" in src for src in report["mathjax"]), report["mathjax"]


@pytest.mark.slow
def test_the_navigation_reaches_every_chapter(rendered):
    nav = rendered[0]["book/intro.html"].result()["nav"]
    # hrefs are relative to book/intro.html
    targets = {posixpath.normpath(posixpath.join("book", href.split("#")[0])) for href in nav}
    missing = [page for page in CHAPTERS + BOOK_PAGES if page not in targets and page != "book/intro.html"]
    assert not missing, f"the navigation of the intro page does not link to {missing}; it links to {sorted(targets)}"
