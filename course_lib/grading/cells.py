"""Test cells split into probe and check, and a submission rebuilt from the source.

A kit assignment's autograded test cell reads, top to bottom::

    x, y = fixed_inputs(seed=0)          # probe: calls the student's code
    record("q1", student_function(x, y))
    # CHECK
    assert np.allclose(recorded("q1"), reference(x, y))   # check: asserts
    ### BEGIN HIDDEN TESTS
    # PROBE
    record("q1_hidden", student_function(*other_inputs()))
    # CHECK
    assert ...
    ### END HIDDEN TESTS

In the student's notebook the whole cell runs in one kernel. When grading,
the probe lines run in the student's sandbox, after the student's answers,
and the check lines run in a fresh process that never runs student code, so
nothing a submission does to names, libraries or builtins reaches an assert.
Cells tagged ``check-setup`` (imports, reference functions) run in both.

``rebuild`` grades what the instructor wrote: every cell comes from the
source notebook except the answer (solution) cells, which come from the
submission by their nbgrader ``grade_id``. Cells a student added, edited or
deleted outside the answers change nothing, and are reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nbformat

CHECK_MARK = "# CHECK"
PROBE_MARK = "# PROBE"
SETUP_TAG = "check-setup"


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_test_cell(cell) -> bool:
    """An autograded test cell: graded, locked, not an answer."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_answer_cell(cell) -> bool:
    return cell.cell_type == "code" and bool(nbgrader_meta(cell).get("solution"))


def is_setup_cell(cell) -> bool:
    return SETUP_TAG in cell.get("metadata", {}).get("tags", [])


def split_test(source: str, where: str = "test cell") -> tuple[str, str]:
    """(probe, check) code of one test cell; the marker lines start each part.

    Raises ValueError when the cell has no ``# CHECK`` line or a marker is
    indented (the parts must be top-level code).
    """
    parts = {"probe": [], "check": []}
    mode = "probe"
    for line in source.splitlines():
        if line.strip() in (CHECK_MARK, PROBE_MARK) and line != line.lstrip():
            raise ValueError(f"{where}: '{line.strip()}' must start its line (no indentation)")
        if line in (CHECK_MARK, PROBE_MARK):
            mode = "check" if line == CHECK_MARK else "probe"
            parts["probe"].append("")
            parts["check"].append("")
        else:
            parts[mode].append(line)
            # keep line numbers readable in the other part's tracebacks
            parts["check" if mode == "probe" else "probe"].append("")
    if not any(line.strip() for line in parts["check"]):
        raise ValueError(
            f"{where} has no '{CHECK_MARK}' line: put the assertions after a line '{CHECK_MARK}' "
            f"so they run outside the student's process (see course_lib/grading/cells.py)")
    return "\n".join(parts["probe"]).rstrip() + "\n", "\n".join(parts["check"]).rstrip() + "\n"


def check_source_notebook(nb, name: str) -> None:
    """Raise ValueError naming the first cell that the grader could not grade safely."""
    ids = []
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        if meta.get("grade") or meta.get("solution"):
            if not meta.get("grade_id"):
                raise ValueError(f"{name} cell {i}: nbgrader cells need a grade_id")
            ids.append(meta["grade_id"])
        if is_test_cell(cell):
            split_test(cell.source, f"{name} cell {i} ({meta['grade_id']})")
            if not meta.get("locked"):
                raise ValueError(f"{name} cell {i} ({meta['grade_id']}): lock test cells (locked: true)")
    duplicated = sorted({g for g in ids if ids.count(g) > 1})
    if duplicated:
        raise ValueError(f"{name}: grade_id used twice: {', '.join(duplicated)}")


@dataclass
class Rebuilt:
    """A submission rebuilt from its source, and what the student changed outside the answers."""

    notebook: nbformat.NotebookNode
    tampering: list[str] = field(default_factory=list)
    missing_answers: list[str] = field(default_factory=list)


def _by_grade_id(nb) -> dict[str, object]:
    found = {}
    for cell in nb.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id and grade_id not in found:
            found[grade_id] = cell
    return found


def rebuild(source, submission, release=None) -> Rebuilt:
    """The notebook to grade: the source's cells with the submission's answers in them.

    Args:
        source: the instructor's notebook (solutions and hidden tests in it).
        submission: the student's notebook (any cells, any metadata).
        release: the student version handed out; when given, locked cells the
            student edited are reported (they are replaced either way).
    """
    nb = nbformat.from_dict(source)
    submitted = _by_grade_id(submission)
    released = _by_grade_id(release) if release is not None else {}
    result = Rebuilt(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if not grade_id:
            continue
        theirs = submitted.get(grade_id)
        if is_answer_cell(cell):
            if theirs is None or theirs.cell_type != "code":
                result.missing_answers.append(grade_id)
                cell.source = ""
            else:
                cell.source = theirs.source
            continue
        if theirs is None:
            result.tampering.append(f"deleted {grade_id}")
            continue
        their_meta = nbgrader_meta(theirs)
        if any(their_meta.get(k) != meta.get(k) for k in ("grade", "locked", "solution", "points")):
            result.tampering.append(f"changed the nbgrader metadata of {grade_id}")
        given = released.get(grade_id)
        if given is not None and theirs.source != given.source:
            result.tampering.append(f"edited {grade_id}")
    return result


def with_answers(release, source) -> nbformat.NotebookNode:
    """The student version with the source's answers in its answer cells: a perfect submission."""
    answers = {nbgrader_meta(c)["grade_id"]: c.source for c in source.cells if is_answer_cell(c)}
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        if is_answer_cell(cell):
            cell.source = answers[nbgrader_meta(cell)["grade_id"]]
    return nb


def student_phase(nb) -> nbformat.NotebookNode:
    """The notebook the sandbox runs: test cells reduced to their probes."""
    out = nbformat.from_dict(nb)
    for cell in out.cells:
        if is_test_cell(cell):
            cell.source = split_test(cell.source)[0]
    return out


def check_phase(nb, probes_ok: set[str]) -> nbformat.NotebookNode:
    """The notebook of checks: setup cells, then the checks of the probes that finished."""
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    for cell in nb.cells:
        if is_setup_cell(cell):
            out.cells.append(nbformat.v4.new_code_cell(cell.source))
        elif is_test_cell(cell) and nbgrader_meta(cell)["grade_id"] in probes_ok:
            check = nbformat.v4.new_code_cell(split_test(cell.source)[1])
            check.metadata["grade_id"] = nbgrader_meta(cell)["grade_id"]
            out.cells.append(check)
    return out
