"""Build the Jupyter Book from the notebooks that ``course_lib.runner`` executed.

The repository root is the book's source (``_config.yml``, ``_toc.yml``,
``book/``, ``notebooks/``). Notebooks are stored without outputs, so the build
copies the sources to ``_build/book_src`` with each notebook replaced by its
executed copy, and runs ``jupyter-book build`` there with Sphinx warnings as
errors. The HTML lands in ``_build/html``. Notebooks are executed once, by the
runner; the book itself executes nothing (``execute_notebooks: "off"``).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .runner import EXECUTED_DIR, NOTEBOOKS_DIR, REPO_ROOT, list_notebooks

BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
BENCHMARK_RESULTS = REPO_ROOT / "benchmarks" / "results"
# book/benchmarks.md holds this line; the staged copy has the tables in its place.
BENCHMARK_MARKER = "<!-- benchmark tables -->"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "\\|")


def benchmark_tables(results_dir=BENCHMARK_RESULTS) -> str:
    """Markdown: one section per ``benchmarks/results/*.json``, its machine, command and table of rows."""
    import json

    paths = sorted(Path(results_dir).glob("*.json"))
    if not paths:
        return ("No benchmark has been run on this checkout yet: run the scripts in `benchmarks/` "
                "(each writes `benchmarks/results/<name>.json`) and build the book again.")
    sections = []
    for path in paths:
        record = json.loads(path.read_text())
        rows = record.get("rows") or []
        if not rows:
            raise ValueError(f"{path} holds no rows; run its benchmark script again")
        machine = record.get("machine", {})
        where = (f"{machine.get('cuda') or 'CPU only'}, {machine.get('cpu_threads', '?')} CPU threads, "
                 f"{machine.get('processor', '?')}, Python {machine.get('python', '?')}, "
                 f"torch {machine.get('torch', '?')}")
        columns = list(rows[0])
        lines = [f"### `{path.stem}`", "",
                 f"Measured on: {where}. Written: {record.get('written', 'before dates were recorded')}."]
        if record.get("command"):
            lines.append(f"Command: `{record['command']}`.")
        if record.get("notes"):
            lines += [""] + [f"- {note}" for note in record["notes"]]
        lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def stage_book(executed_dir=EXECUTED_DIR, stage_dir=None, repo_root=REPO_ROOT) -> Path:
    """Copy the book's sources with executed notebooks into ``stage_dir``."""
    repo_root = Path(repo_root)
    stage = Path(stage_dir) if stage_dir else repo_root / "_build" / "book_src"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name in BOOK_SOURCES:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, stage / name)
    (stage / "notebooks").mkdir()
    missing = []
    for notebook in list_notebooks(repo_root / NOTEBOOKS_DIR.name):
        executed = Path(executed_dir) / notebook.name
        if not executed.is_file():
            missing.append(notebook.name)
            continue
        shutil.copy2(executed, stage / "notebooks" / notebook.name)
    if missing:
        raise FileNotFoundError(
            f"no executed copy of {', '.join(missing)} in {executed_dir}; run "
            "`course notebooks run` (or `make book`) first")
    page = stage / "book" / "benchmarks.md"
    if page.is_file():
        page.write_text(page.read_text().replace(
            BENCHMARK_MARKER, benchmark_tables(repo_root / "benchmarks" / "results")))
    return stage


def build_book(executed_dir=EXECUTED_DIR, repo_root=REPO_ROOT) -> Path:
    """Stage and build the HTML book with ``-W --keep-going``; return ``_build/html``."""
    stage = stage_book(executed_dir, repo_root=repo_root)
    executable = Path(sys.executable).parent / "jupyter-book"
    if not executable.exists():
        found = shutil.which("jupyter-book")
        if found is None:
            raise FileNotFoundError("jupyter-book is not installed; run `make book`, which installs it")
        executable = Path(found)
    cmd = [str(executable), "build", str(stage),
           "--path-output", str(repo_root), "--builder", "html", "-W", "--keep-going"]
    result = subprocess.run(cmd, cwd=repo_root)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {result.returncode}); "
                           "see the warnings above")
    return Path(repo_root) / "_build" / "html"
