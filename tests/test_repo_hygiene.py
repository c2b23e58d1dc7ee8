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


# -- numbers in the prose: glued from the run, cited, or declared a definition ---------------------

PROSE_NUMBER = re.compile(r"(?<![\w.\-])\d+(?:[.,]\d+)*(?:x\d+)?%?(?!\w)")
NAMED_THING = re.compile(r"\b(?:Tables?|Figures?|[Cc]hapters?|[Ee]xercises?|Part|[Qq]uestions?|Section|"
                         r"[Ss]anity check)\s+\d+(?:\s*(?:,|and|-)\s*\d+)*")


def prose_numbers(markdown: str) -> list[tuple[str, str]]:
    """(number as written, its sentence) for each number a reader sees typed in ``markdown``.

    Not counted: math, code, MyST roles (a ``{glue:text}`` value comes from the run,
    a ``{numref}`` is a figure number), list numbering, names such as "Table 2", and
    every number of a sentence that cites a source with ``{cite}``.
    """
    text = re.sub(r"```.*?```|\$\$.*?\$\$", " ", markdown, flags=re.S)
    text = re.sub(r"\$[^$\n]*\$", " ", text)
    cited = {i for i, s in enumerate(_sentences(text)) if "{cite}" in s}
    text = re.sub(r"\{[a-z:]+\}`[^`]*`|`[^`]*`", " ", text)
    text = re.sub(r"^\s*\d+\. ", " ", text, flags=re.M)
    found = []
    for i, sentence in enumerate(_sentences(text)):
        if i in cited:
            continue
        for match in PROSE_NUMBER.finditer(NAMED_THING.sub(" ", sentence)):
            found.append((match.group(), " ".join(sentence.split())))
    return found


def _sentences(text: str) -> list[str]:
    # Roles and code spans keep their length-independent place: split on the same marks either way.
    return re.split(r"(?<=[.!?])\s+(?=[A-Z(*{])|\n\s*\n", text)


def test_prose_numbers_finds_typed_results_and_skips_the_rest():
    typed = prose_numbers("The model reaches 97.3% on the test set. Its loss fell.")
    assert [n for n, _ in typed] == ["97.3%"]
    assert prose_numbers("It reaches {glue:text}`acc:.1f`% here, with `lr=0.01` and $\\epsilon = 0.3$.") == []
    assert prose_numbers("The paper reports 86.6% {cite}`defendr`. See Table 2 and chapter 5.") == []
    assert [n for n, _ in prose_numbers("1. train for 5 epochs\n2. stop")] == ["5"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbers_in_the_prose_are_glued_cited_or_declared_definitions(path):
    """Every chapter: a number typed in the text is a setting or a definition the notebook declares,
    a number cited from a source, or a result glued from the run (myst-nb's glue)."""
    nb = nbformat.read(path, as_version=4)
    declared = nb.metadata.get("course", {}).get("defined_numbers", [])
    found = [(n, s) for c in nb.cells if c.cell_type == "markdown" for n, s in prose_numbers(c.source)]
    unexplained = sorted({f"{n!r} in: {s[:100]}" for n, s in found if n not in declared})
    assert not unexplained, (
        f"{path.name}: numbers typed in the text that are neither glued from the run "
        "({glue:text}`name`), cited ({cite}`key` in the same sentence), nor declared as "
        "settings or definitions (metadata.course.defined_numbers):\n  " + "\n  ".join(unexplained))
    stale = set(declared) - {n for n, _ in found}
    assert not stale, f"{path.name}: declared numbers no longer in the text: {sorted(stale)}"


def test_the_kits_everyday_imports_leave_the_cam_and_statistics_libraries_unloaded():
    """``import course_lib.zoo`` (every chapter, command line and graded run) loads neither pytorch-grad-cam,
    scikit-learn nor SciPy: they load where a map or a ROC curve is drawn (1.4 s of a 4.2 s import).
    """
    import subprocess
    import sys

    heavy = ("pytorch_grad_cam", "sklearn", "scipy", "matplotlib")
    probe = f"import sys, course_lib.zoo, course_lib.cli; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"imported with the zoo: {loaded}"
    from course_lib import saliency

    assert saliency.grad_cam.__module__ == "course_lib.saliency.gradcam"  # the lazy names still resolve
    with pytest.raises(AttributeError, match="no attribute 'gradcam_typo'"):
        saliency.gradcam_typo
