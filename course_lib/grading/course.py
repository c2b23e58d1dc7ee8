"""nbgrader's course folder, gradebook, student version and feedback, driven from Python.

The layout is nbgrader's: ``DIR/source/<assignment>/*.ipynb`` (the
instructor's notebooks), ``DIR/release/<assignment>/`` (the student version),
``DIR/submitted/<student>/<assignment>/``, ``DIR/autograded/...``,
``DIR/feedback/...`` and ``DIR/gradebook.db``. Everything here calls
nbgrader; ``batch.py`` adds the isolated execution nbgrader lacks.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import nbformat

from .cells import check_source_notebook

KIT_ASSIGNMENTS = Path(__file__).resolve().parents[2] / "assignments"


@contextlib.contextmanager
def nbgrader_path():
    """nbgrader runs ``alembic`` from PATH to open a gradebook: put this Python's bin folder first.

    (Running ``.venv/bin/python`` or ``.venv/bin/course`` without activating
    the venv leaves it off PATH.) PATH is given back as it was.
    """
    before = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), before or os.defpath])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


def _config(course_dir: Path, **sections):
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(course_dir)
    config.Exchange.root = str(course_dir / "exchange")  # never used: no release to a shared exchange
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return config


def api(course_dir: Path, **sections):
    """An ``NbGraderAPI`` on ``course_dir`` (extra config per section, e.g. ``Autograde={...}``)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = _config(course_dir, **sections)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def source_notebooks(course_dir: Path, assignment: str) -> list[Path]:
    """The instructor's notebooks of ``assignment``, checked for safe grading."""
    folder = course_dir / "source" / assignment
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        known = sorted(p.name for p in (course_dir / "source").glob("*") if p.is_dir())
        raise FileNotFoundError(
            f"no source notebooks in {folder}; assignments there: {', '.join(known) or 'none'}. "
            f"Run `course assign {assignment} --course-dir {course_dir}` to copy one of the kit's "
            f"({', '.join(kit_assignments()) or 'none'}) or put yours there")
    for path in notebooks:
        check_source_notebook(nbformat.read(path, as_version=4), path.name)
    return notebooks


def kit_assignments() -> list[str]:
    return sorted(p.name for p in KIT_ASSIGNMENTS.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def _nbgrader_result(result: dict, what: str) -> None:
    if not result.get("success"):
        raise RuntimeError(f"nbgrader {what} failed: {result.get('error') or ''}\n{result.get('log', '')[-3000:]}")


def assign(assignment: str, course_dir) -> Path:
    """Release the student version of ``assignment`` into ``DIR/release/<assignment>/``.

    The source comes from ``DIR/source/<assignment>/``, copied there from the
    kit's ``assignments/<assignment>/`` when missing. nbgrader removes the
    solutions and hidden tests, stores checksums, and records the assignment
    and its cells in the gradebook (what ``course grade`` restores tests from).
    """
    course_dir = Path(course_dir).resolve()
    source = course_dir / "source" / assignment
    if not source.is_dir() and (KIT_ASSIGNMENTS / assignment).is_dir():
        shutil.copytree(KIT_ASSIGNMENTS / assignment, source,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    source_notebooks(course_dir, assignment)
    with nbgrader_path():
        result = api(course_dir).generate_assignment(assignment, force=True, create=True)
    _nbgrader_result(result, f"generate_assignment {assignment}")
    return course_dir / "release" / assignment


def is_assigned(course_dir: Path, assignment: str) -> bool:
    """Whether the gradebook knows ``assignment`` and its student version exists."""
    from nbgrader.api import Gradebook, MissingEntry

    if not (course_dir / "release" / assignment).is_dir() or not (course_dir / "gradebook.db").is_file():
        return False
    with nbgrader_path(), Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            return False
    return True


def feedback(assignment: str, course_dir) -> list[Path]:
    """HTML feedback per graded student in ``DIR/feedback/<student>/<assignment>/``."""
    course_dir = Path(course_dir).resolve()
    if not (course_dir / "autograded").is_dir():
        raise FileNotFoundError(f"nothing graded in {course_dir}; run `course grade {assignment} "
                                f"--course-dir {course_dir}` first")
    with nbgrader_path():
        result = api(course_dir).generate_feedback(assignment, force=True)
    _nbgrader_result(result, f"generate_feedback {assignment}")
    return sorted((course_dir / "feedback").glob(f"*/{assignment}/*.html"))
