"""The repository itself: layout, stored notebooks, parameters cells, dependency lists."""
from __future__ import annotations

import ast
import re
import tomllib

import nbformat
import pytest
import yaml

from course_lib.runner import REQUIRED_PARAMETERS, list_notebooks

from .conftest import REPO

NOTEBOOKS = list_notebooks(REPO / "notebooks")


def test_layout_of_the_design():
    for name in ["_config.yml", "_toc.yml", "book", "notebooks", "course_lib", "assignments", "tests",
                 "benchmarks", "environment.yml", "pyproject.toml", "Makefile", "README.md", ".ci/run"]:
        assert (REPO / name).exists(), name


def test_readme_quickstart_has_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), f"{path.name}: tag the first code cell"
    assigned = {t.id: ast.literal_eval(node.value) for node in ast.parse(first_code.source).body
                if isinstance(node, ast.Assign) for t in node.targets}
    assert tuple(assigned) == REQUIRED_PARAMETERS
    assert assigned == {"PROFILE": "quick", "SEED": 0, "DATA_HOME": None, "DEVICE": "auto"}


def test_every_notebook_is_in_the_table_of_contents():
    toc = (REPO / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*notebooks/(\S+)", toc))
    assert listed == {p.stem for p in NOTEBOOKS}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    assert {"torch", "cleverhans", "grad-cam", "timm", "jupyter-book", "papermill", "nbval"} <= {
        _name(r) for r in wanted}


CODE_COLUMN = 80  # characters the book's code column shows at the default theme width without scrolling


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_fits_the_book_column(path):
    nb = nbformat.read(path, as_version=4)
    long = [f"cell {i}: {line!r}" for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for line in cell.source.splitlines() if len(line) > CODE_COLUMN]
    assert not long, f"{path.name}: {len(long)} code lines over {CODE_COLUMN} characters:\n" + "\n".join(long)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_installs_the_kit_from_the_books_repository(path):
    from course_lib.launch import install_cell, install_cell_source, repository_url

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[1] is install_cell(nb), f"{path.name}: the install cell follows the parameters cell"
    assert code[1].source == install_cell_source(repository_url()), \
        f"{path.name}: install cell differs from _config.yml's repository; run `course set-repository URL`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_reads_as_a_lesson(path):
    """Learning goals on top, exercises near the end, and a last cell that times the run."""
    nb = nbformat.read(path, as_version=4)
    assert "**Learning goals.**" in nb.cells[0].source, f"{path.name}: state the learning goals first"
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert any(h in ("## Exercises", "## Try it") for h in headings), f"{path.name}: end with exercises"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "chapter_start = time.perf_counter()" in code[2].source, f"{path.name}: start the clock"
    assert "time.perf_counter() - chapter_start" in code[-1].source and "PROFILE" in code[-1].source, \
        f"{path.name}: the last cell reports the profile and the run time"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_a_caption_and_every_named_one_is_referred_to(path):
    nb = nbformat.read(path, as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "plt.show()" not in cell.source:
            continue
        if "interactive_figure(" in cell.source:  # a live figure: its markdown introduces it
            continue
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        assert figure.get("caption"), f"{path.name} cell {i}: add metadata mystnb.figure.caption"
        if figure.get("name"):
            assert f"{{numref}}`{figure['name']}`" in prose, f"{path.name}: refer to {figure['name']} by number"
