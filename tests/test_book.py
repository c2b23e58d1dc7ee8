"""The HTML book builds from the executed notebooks with Sphinx warnings as errors."""
from __future__ import annotations

import nbformat
import pytest

from course_lib.runner import list_notebooks

from .conftest import REPO


@pytest.mark.slow
def test_book_builds_with_a_page_per_notebook(built_book, executed_notebooks):
    html = built_book
    assert (html / "index.html").is_file()
    intro = (html / "book" / "intro.html").read_text()
    assert "Adversarial robustness" in intro
    for notebook in list_notebooks(REPO / "notebooks"):
        page = (html / "notebooks" / f"{notebook.stem}.html").read_text()
        executed = nbformat.read(executed_notebooks[notebook.stem].output, as_version=4)
        figures = sum("image/png" in o.get("data", {}) for c in executed.cells
                      if c.cell_type == "code" for o in c.outputs)
        assert page.count("<img") >= figures > 0
        assert "Traceback" not in page and "output error" not in page
