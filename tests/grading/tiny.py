"""A two-question assignment without torch, for the grader's tests: kernels start in about a second."""
from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def meta(grade_id: str, *, grade=False, solution=False, locked=False, points=None) -> dict:
    m = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
         "solution": solution, "task": False}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


SETUP = "import numpy as np\nfrom course_lib.grading.record import record, recorded\n"
ANSWER_ADD = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n"
ANSWER_MEAN = ("def mean(xs):\n    \"\"\"Mean of a list or 1-D array.\"\"\"\n    ### BEGIN SOLUTION\n"
               "    return float(np.sum(xs)) / len(xs)\n    ### END SOLUTION\n")
TEST_ADD = """record("add", [add(1, 2), add(-1, 1)])
# CHECK
assert recorded("add") == [3, 0], recorded("add")
### BEGIN HIDDEN TESTS
# PROBE
record("add_hidden", add(10.5, 5))
# CHECK
assert recorded("add_hidden") == 15.5
### END HIDDEN TESTS
"""
TEST_MEAN = """record("mean", mean([1, 2, 3]))
# CHECK
assert abs(recorded("mean") - 2) < 1e-9
### BEGIN HIDDEN TESTS
# PROBE
record("mean_hidden", mean(np.random.default_rng(7).normal(size=50)))
# CHECK
assert abs(recorded("mean_hidden") - np.random.default_rng(7).normal(size=50).mean()) < 1e-9
### END HIDDEN TESTS
"""


def source_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# Tiny\nWrite `add` and `mean`. Only the answer cells are graded."),
        new_code_cell(SETUP, metadata={**meta("setup", locked=True), "tags": ["check-setup"]}),
        new_code_cell(ANSWER_ADD, metadata=meta("answer_add", solution=True)),
        new_code_cell(TEST_ADD, metadata=meta("test_add", grade=True, locked=True, points=1)),
        new_code_cell(ANSWER_MEAN, metadata=meta("answer_mean", solution=True)),
        new_code_cell(TEST_MEAN, metadata=meta("test_mean", grade=True, locked=True, points=2)),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb
