"""The notebook runner: parameters, failure reports, and selection by name."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_lib.cli import main
from course_lib.runner import run_notebooks, select_notebooks


def _notebook(path, body: str):
    nb = new_notebook()
    params = new_code_cell('PROFILE = "quick"\nSEED = 0\nDATA_HOME = None\nDEVICE = "auto"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_runner_injects_parameters_and_reports_failures(tmp_path):
    good = _notebook(tmp_path / "a_good.ipynb", "import os\nprint(SEED, os.environ['COURSE_DATA_HOME'])")
    bad = _notebook(tmp_path / "b_bad.ipynb", "raise ValueError('boom')")
    out = tmp_path / "executed"
    runs = run_notebooks([good, bad], out, parameters={"SEED": 7}, data_home=tmp_path / "home")
    assert [r.ok for r in runs] == [True, False]
    assert "ValueError: boom" in runs[1].error
    text = "".join(o.get("text", "") for c in nbformat.read(out / "a_good.ipynb", 4).cells
                   for o in c.get("outputs", []))
    assert text.strip() == f"7 {tmp_path / 'home'}"
    failed = nbformat.read(out / "b_bad.ipynb", 4)  # kept, with the traceback, for inspection
    assert any(o.output_type == "error" for c in failed.cells for o in c.get("outputs", []))
    report = json.loads((out / "report.json").read_text())
    assert [r["ok"] for r in report["runs"]] == [True, False] and report["parameters"] == {"SEED": 7}


def test_select_notebooks_by_prefix(tmp_path):
    for name in ("01_a", "02_b", "03_c"):
        _notebook(tmp_path / f"{name}.ipynb", "pass")
    assert [p.stem for p in select_notebooks(["02", "01"], tmp_path)] == ["02_b", "01_a"]
    assert len(select_notebooks([], tmp_path)) == 3
    with pytest.raises(ValueError, match="no notebook matches '09'; available: 01_a, 02_b, 03_c"):
        select_notebooks(["09"], tmp_path)


def test_course_data_faces_prints_the_dataset_folder(quick_data_home, capsys):
    assert main(["data", "faces", "--data-home", str(quick_data_home)]) == 0
    root = capsys.readouterr().out.strip()
    assert root.startswith(str(quick_data_home))
    assert (Path(root) / "fakes_dataset" / "test" / "fake").is_dir()
