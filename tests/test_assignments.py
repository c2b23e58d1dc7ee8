"""The kit's assignments: the solution scores full marks, the student version runs and scores 0."""
from __future__ import annotations

import nbformat
import pytest

from course_lib.grading import cells as nbcells
from course_lib.grading.course import KIT_ASSIGNMENTS, kit_assignments

ASSIGNMENTS = kit_assignments()


def test_the_kit_has_three_assignments_every_test_with_hidden_inputs():
    assert len(ASSIGNMENTS) >= 3, ASSIGNMENTS
    for name in ASSIGNMENTS:
        for path in (KIT_ASSIGNMENTS / name).glob("*.ipynb"):
            nb = nbformat.read(path, as_version=4)
            nbcells.check_source_notebook(nb, path.name)
            tests = [c for c in nb.cells if nbcells.is_test_cell(c)]
            assert tests and all("### BEGIN HIDDEN TESTS" in c.source for c in tests), path
            assert all(not c.outputs for c in nb.cells if c.cell_type == "code"), f"{path}: strip outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_scores_full_marks_and_student_version_zero(name, tmp_path, zoo_home, mnist_baseline):
    from course_lib.grading.batch import grade
    from course_lib.grading.course import assign

    course = tmp_path / "course"
    release_dir = assign(name, course)
    for path in sorted(release_dir.glob("*.ipynb")):
        release = nbformat.read(path, as_version=4)
        source = nbformat.read(course / "source" / name / path.name, as_version=4)
        for student, nb in (("solution", nbcells.with_answers(release, source)), ("student", release)):
            (course / "submitted" / student / name).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, course / "submitted" / student / name / path.name)
    rows = grade(name, course, workers=2, data_home=zoo_home, log=lambda message: None)
    for row in rows:
        assert row["status"] == "graded", row
        expected = float(row["max_score"]) if row["student"] == "solution" else 0.0
        assert float(row["score"]) == expected, row
        graded = nbformat.read(course / ".course-grade" / name / row["student"] / f"{row['notebook']}.ipynb", 4)
        errors = [c.source[:60] for c in graded.cells if c.cell_type == "code" and not nbcells.is_test_cell(c)
                  and any(o.output_type == "error" for o in c.outputs)]
        assert not errors, f"{row['student']}: cells outside the tests failed: {errors}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_runs_top_to_bottom_in_one_kernel(name, tmp_path, zoo_home, mnist_baseline, monkeypatch):
    """As an instructor checks it in Jupyter: solutions and hidden tests, probes and checks in one kernel."""
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_DATA_HOME", str(zoo_home))
    monkeypatch.setenv("COURSE_PROGRESS", "0")
    for path in (KIT_ASSIGNMENTS / name).glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        resources = {"metadata": {"path": str(tmp_path)}}
        NotebookClient(nb, timeout=120, kernel_name="python3", resources=resources).execute()
