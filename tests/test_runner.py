"""The notebook runner: parameters, failure reports, and selection by name."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_lib.cli import main
from course_lib.runner import notebook_chains, run_notebooks, select_notebooks


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


def test_notebooks_that_share_a_zoo_model_form_one_chain(tmp_path):
    zoo = ["mnist_pgd", "mnist_dunet", "faces_net"]
    a = _notebook(tmp_path / "01_a.ipynb", 'trained_model("mnist_pgd")')
    b = _notebook(tmp_path / "02_b.ipynb", "build('faces_net')  # no mnist_pgd here")
    c = _notebook(tmp_path / "03_c.ipynb", 'names = ["mnist_dunet", "mnist_pgd"]')
    d = _notebook(tmp_path / "04_d.ipynb", 'trained_model("mnist_dunet")')
    e = _notebook(tmp_path / "05_e.ipynb", 'print("mnist_pgd_plus", "other")')
    chains = notebook_chains([a, b, c, d, e], zoo)
    assert sorted(chains) == sorted([[a, c, d], [b], [e]])  # a-c share mnist_pgd, c-d mnist_dunet


def test_one_at_a_time_each_kernel_gets_the_threads_asked_for(tmp_path):
    body = "import os\nprint(os.environ.get('OMP_NUM_THREADS'))"
    path = _notebook(tmp_path / "01_n.ipynb", body)
    (run,) = run_notebooks([path], tmp_path / "executed", data_home=tmp_path / "home", threads=3)
    assert run.ok and nbformat.read(run.output, 4).cells[1].outputs[0].text.split() == ["3"]


@pytest.mark.parametrize("threads", [None, 3])
def test_notebooks_run_side_by_side_with_cores_over_jobs_threads_each_or_as_many_as_asked(tmp_path, threads):
    body = "import os\nprint(os.environ.get('OMP_NUM_THREADS'), os.getpid())"
    paths = [_notebook(tmp_path / f"0{i}_n.ipynb", body) for i in range(1, 4)]
    out = tmp_path / "executed"
    runs = run_notebooks(paths, out, data_home=tmp_path / "home", jobs=2, threads=threads)
    assert [r.name for r in runs] == ["01_n", "02_n", "03_n"] and all(r.ok for r in runs)
    printed = [nbformat.read(out / f"{r.name}.ipynb", 4).cells[1].outputs[0].text.split() for r in runs]
    from course_lib.runner import usable_cpus
    assert {p[0] for p in printed} == {str(threads or max(1, usable_cpus() // 2))}
    assert len({p[1] for p in printed}) == 3  # a kernel per notebook
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["runs"]] == ["01_n", "02_n", "03_n"]


def test_killing_a_side_by_side_run_ends_its_workers_and_kernels(tmp_path):
    """``kill PID`` of ``course notebooks run --jobs 2``: nothing of it keeps running or waiting."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    body = "import os, time\nopen(os.path.join({!r}, str(os.getpid())), 'w').close()\ntime.sleep(300)"
    started = tmp_path / "kernels"
    started.mkdir()
    paths = [_notebook(tmp_path / f"0{i}_n.ipynb", body.format(str(started))) for i in (1, 2)]
    script = (f"from course_lib.runner import run_notebooks\n"
              f"run_notebooks({[str(p) for p in paths]!r}, {str(tmp_path / 'out')!r}, jobs=2)")
    parent, family = subprocess.Popen([sys.executable, "-c", script]), []
    try:
        deadline = time.monotonic() + 120
        while len(list(started.iterdir())) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
        assert len(list(started.iterdir())) == 2, "the two kernels did not start"
        family = psutil.Process(parent.pid).children(recursive=True)
        kernels = {int(p.name) for p in started.iterdir()}
        assert kernels <= {p.pid for p in family}
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        _, alive = psutil.wait_procs(family, timeout=20)
        assert not alive, [(p.pid, p.cmdline()[:3]) for p in alive]
    finally:
        parent.kill()
        for process in family:  # what a failed run left
            try:
                process.kill()
            except psutil.NoSuchProcess:
                continue


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
