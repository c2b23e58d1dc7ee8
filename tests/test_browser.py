"""The rendered book in a real browser: every page loads and every figure decodes.

Headless Chromium opens each notebook page through a same-origin harness
served on localhost, and reports images that did not load (naturalWidth 0).
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from course_lib.runner import list_notebooks

from .conftest import REPO

HARNESS = """<!doctype html><html><body>
<iframe id="page" src="book/{page}" width="1200" height="900"></iframe>
<script>
document.getElementById("page").addEventListener("load", () => setTimeout(() => {{
  const doc = document.getElementById("page").contentDocument;
  const images = Array.from(doc.images);
  const broken = images.filter(im => !im.complete || im.naturalWidth === 0).map(im => im.src);
  const report = {{title: doc.title, images: images.length, broken: broken,
                  text: doc.body.innerText.length}};
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


@pytest.mark.slow
@pytest.mark.parametrize("page", ["book/intro.html"] + [f"notebooks/{p.stem}.html"
                                                        for p in list_notebooks(REPO / "notebooks")])
def test_page_renders_with_all_figures(served_book, page):
    root, base = served_book
    harness = f"check_{re.sub(r'[^a-z0-9]+', '_', page)}.html"
    (root / harness).write_text(HARNESS.format(page=page))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                              f"{base}/{harness}"], capture_output=True, text=True, timeout=120).stdout
    match = re.search(r'data-report="([^"]*)"', dom)
    assert match, f"the harness did not report for {page}; DOM: {dom[:500]}"
    report = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert report["text"] > 500, f"{page} rendered almost no text: {report}"
    assert report["broken"] == [], f"{page}: images that did not load: {report['broken']}"
    if page.startswith("notebooks/"):
        assert report["images"] >= 2, f"{page} shows no figures: {report}"
