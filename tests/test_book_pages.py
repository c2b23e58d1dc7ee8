"""Pages the book builds from files: the benchmark tables rendered from benchmarks/results/*.json."""
from __future__ import annotations

import json
import shutil

import pytest

from course_lib.book import BENCHMARK_MARKER, benchmark_tables, stage_book
from course_lib.runner import list_notebooks

from .conftest import REPO

RECORD = {"machine": {"python": "3.11.7", "torch": "2.14.1", "cpu_threads": 2, "processor": "x86_64", "cuda": None},
          "written": "2026-11-23 09:00 UTC", "command": "python benchmarks/attacks.py --runs 5",
          "rows": [{"attack": "kit", "img_s": 111.9078, "floor_share": 1.0042},
                   {"attack": "cleverhans", "img_s": 95.547, "floor_share": 0.8574}]}


def test_benchmark_tables_render_every_row_with_its_machine(tmp_path):
    (tmp_path / "attacks_mnist_cpu.json").write_text(json.dumps(RECORD))
    page = benchmark_tables(tmp_path)
    assert "### `attacks_mnist_cpu`" in page and "CPU only, 2 CPU threads" in page
    assert "2026-11-23 09:00 UTC" in page and "`python benchmarks/attacks.py --runs 5`" in page
    assert "| attack | img_s | floor_share |" in page
    assert "| kit | 112 | 1 |" in page and "| cleverhans | 95.5 | 0.857 |" in page


def test_no_results_and_empty_results_are_said_plainly(tmp_path):
    assert "No benchmark has been run" in benchmark_tables(tmp_path)
    (tmp_path / "broken.json").write_text(json.dumps({"machine": {}, "rows": []}))
    with pytest.raises(ValueError, match="broken.json holds no rows; run its benchmark script again"):
        benchmark_tables(tmp_path)


def test_the_staged_benchmarks_page_holds_the_tables(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    for notebook in list_notebooks(REPO / "notebooks"):
        shutil.copy(notebook, executed / notebook.name)
    stage = stage_book(executed, tmp_path / "stage")
    page = (stage / "book" / "benchmarks.md").read_text()
    assert BENCHMARK_MARKER not in page
    assert BENCHMARK_MARKER in (REPO / "book" / "benchmarks.md").read_text()
    for path in sorted((REPO / "benchmarks" / "results").glob("*.json")):
        assert f"### `{path.stem}`" in page
