"""Grading: probe/check cells, rebuilt submissions, and a hostile batch killed halfway and resumed."""
from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest

from course_lib.grading import cells as nbcells
from course_lib.grading import record as rec
from course_lib.grading.sandbox import FIRST_SANDBOX_UID, Limits, isolation

from .grading.corpus import ADD, CASE_NAMES, HOSTILE_WORKERS, MEAN, Case, digest, write_course
from .grading.tiny import TEST_ADD, source_notebook


# -- cells and records (no sandbox) ------------------------------------------------------------

def test_split_test_separates_probe_from_check_and_keeps_line_numbers():
    probe, check = nbcells.split_test(TEST_ADD)
    assert "assert" not in probe and "record(" in probe and "add_hidden" in probe
    assert "record(" not in check and check.count("assert") == 2
    lines = TEST_ADD.splitlines()
    for part in (probe, check):  # a traceback's line number points at the cell's own line
        assert all(line == lines[i] for i, line in enumerate(part.splitlines()) if line)
    with pytest.raises(ValueError, match="no '# CHECK' line"):
        nbcells.split_test("record('x', 1)\nassert True\n")
    with pytest.raises(ValueError, match="must start its line"):
        nbcells.split_test("if True:\n    # CHECK\n    pass\n")


def test_source_checks_name_the_cell_to_fix():
    nb = source_notebook()
    nb.cells[3].metadata.nbgrader["locked"] = False
    with pytest.raises(ValueError, match="test_add.*lock test cells"):
        nbcells.check_source_notebook(nb, "tiny.ipynb")
    nb = source_notebook()
    nb.cells[5].metadata.nbgrader["grade_id"] = "test_add"
    with pytest.raises(ValueError, match="grade_id used twice: test_add"):
        nbcells.check_source_notebook(nb, "tiny.ipynb")


def test_rebuild_takes_only_the_answers_from_the_submission():
    source = source_notebook()
    theirs = nbformat.from_dict(source)
    theirs.cells[2].source = "def add(a, b):\n    return 42\n"  # their answer
    theirs.cells[3].source = "record('add', [3, 0])\n# CHECK\nassert True\n"  # a weakened test
    theirs.cells[3].metadata.nbgrader["points"] = 100
    del theirs.cells[5]  # a deleted test
    theirs.cells.append(nbformat.v4.new_code_cell("add = None"))  # an added cell
    rebuilt = nbcells.rebuild(source, theirs, release=source)
    sources = [c.source for c in rebuilt.notebook.cells]
    assert sources[2] == "def add(a, b):\n    return 42\n"
    assert sources[3] == TEST_ADD and sources[5] == source.cells[5].source and "add = None" not in sources
    assert rebuilt.notebook.cells[3].metadata.nbgrader["points"] == 1
    assert rebuilt.tampering == ["changed the nbgrader metadata of test_add", "edited test_add",
                                 "deleted test_mean"]
    assert nbcells.student_phase(rebuilt.notebook).cells[3].source == nbcells.split_test(TEST_ADD)[0]
    checks = nbcells.check_phase(rebuilt.notebook, {"test_mean"})
    assert [c.source for c in checks.cells] == [source.cells[1].source, nbcells.split_test(source.cells[5].source)[1]]


def test_records_round_trip_as_plain_data_in_both_modes(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    value = {"t": torch.arange(3.0, requires_grad=True) * 2, "n": [1, 2.5, "s", None, True], "a": np.eye(2)}
    monkeypatch.delenv(rec.RECORDS_ENV, raising=False)
    rec.record("v", value)
    in_memory = rec.recorded("v")
    monkeypatch.setenv(rec.RECORDS_ENV, str(tmp_path))
    rec.record("v", value)
    on_disk = rec.recorded("v")
    for got in (in_memory, on_disk):
        assert type(got["t"]) is np.ndarray and got["t"].tolist() == [0.0, 2.0, 4.0]
        assert got["n"] == [1, 2.5, "s", None, True] and np.array_equal(got["a"], np.eye(2))
    with pytest.raises(TypeError, match="cannot store a object"):
        rec.record("bad", object())
    with pytest.raises(TypeError, match="dtype object"):
        rec.record("bad", np.array([object()]))
    with pytest.raises(KeyError, match="did not finish"):
        rec.recorded("never")
    np.save(tmp_path / "evil.0.npy", np.array([object()]), allow_pickle=True)  # a forged pickled array
    (tmp_path / "evil.json").write_text('{"value": {"array": 0}, "arrays": 1}')
    with pytest.raises(ValueError, match="allow_pickle"):
        rec.recorded("evil")


def test_grading_commands_import_no_ml_code():
    code = ("import sys\nfrom course_lib.cli import main\n"
            "try:\n    main(['grade', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'timm', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]"), out


def test_memory_is_found_in_an_error_or_at_the_end_of_a_stderr_traceback():
    from course_lib.grading.execute import memory_error_in

    def notebook(*outputs):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("y = 2")]
        nb.cells[1].outputs = list(outputs)
        return nb

    flush_failed = "ERROR:tornado.application:Exception in callback\nTraceback (most recent call last):\n" \
                   "  File \"iostream.py\", line 804, in _flush_buffers\n    data = buffer.getvalue()\nMemoryError\n"
    assert memory_error_in(notebook(nbformat.v4.new_output("stream", name="stderr", text=flush_failed))) == 1
    assert memory_error_in(notebook(nbformat.v4.new_output("error", ename="MemoryError", evalue="", traceback=[]))) == 1
    assert memory_error_in(notebook(nbformat.v4.new_output(
        "stream", name="stderr", text="OSError: [Errno 12] Cannot allocate memory\n"))) == 1
    assert memory_error_in(notebook(nbformat.v4.new_output("stream", name="stdout", text=flush_failed))) is None
    assert memory_error_in(notebook(nbformat.v4.new_output(
        "stream", name="stderr", text="warning: a MemoryError is likely with this batch size\n"))) is None


def test_limits_reject_nonsense():
    with pytest.raises(ValueError, match="memory_mb must be positive"):
        Limits(memory_mb=0)
    with pytest.raises(ValueError, match="wall_factor must be at least 1"):
        Limits(wall_factor=0.5)


# -- time limits count CPU seconds ----------------------------------------------------------

BURN = "while True: pass"


def _sandboxed(tmp_path, code: str, limits: Limits):
    from course_lib.grading.sandbox import prepare_folder, run_sandboxed, sandbox_env

    folder = prepare_folder(tmp_path / f"run-{len(list(tmp_path.iterdir()))}", 0)
    return run_sandboxed([sys.executable, "-c", code], folder, 0, limits, [], sandbox_env(folder, {}))


def test_a_run_is_stopped_by_the_cpu_time_of_its_whole_tree_and_by_the_wall_clock_only_when_waiting(tmp_path):
    # the parent only waits; its child burns: the child's CPU seconds must count
    parent = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN!r}])"
    busy = _sandboxed(tmp_path, parent, Limits(timeout=1, wall_factor=60))
    assert (busy.timed_out, busy.clock) == (True, "cpu") and busy.cpu_seconds >= 1, busy
    sleeper = _sandboxed(tmp_path, "import time\ntime.sleep(1000)", Limits(timeout=1, wall_factor=2))
    assert (sleeper.timed_out, sleeper.clock) == (True, "wall") and sleeper.cpu_seconds < 1, sleeper
    quick = _sandboxed(tmp_path, "print(sum(range(1000)))", Limits(timeout=1, wall_factor=60))
    assert not quick.timed_out and quick.returncode == 0, quick


@pytest.mark.parametrize("code", [
    # 60 files of 5 MiB each (each under the per-file limit), 300 MiB in all, over 3 s
    "import time\nfor i in range(60):\n    open(f'part{i}', 'wb').write(bytes(5 << 20))\n    time.sleep(0.05)",
    # 30,000 empty files in nested folders: no space, but an inode each
    "import os\nfor i in range(300):\n    os.makedirs(f'd{i}/e', exist_ok=True)\n"
    "    for j in range(100):\n        open(f'd{i}/e/{j}', 'w').close()",
])
def test_a_run_that_fills_its_folder_is_stopped(tmp_path, code):
    """The sandbox's backstop: past DISK_BACKSTOP times the limits the whole run is killed (the runner stops cells)."""
    from course_lib.grading.sandbox import folder_usage

    outcome = _sandboxed(tmp_path, code + "\nimport time\ntime.sleep(3)",
                         Limits(timeout=60, disk_mb=20, max_files=1000))
    assert outcome.clock == "disk" and not outcome.timed_out, outcome
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("run-")]
    used, _ = folder_usage(folder, 1 << 40, 1 << 30)
    assert used < 200 << 20, f"stopped late: {used >> 20} MiB"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="oom_score_adj is Linux's")
def test_a_run_is_the_first_the_out_of_memory_killer_takes(tmp_path):
    """Many processes can each stay under RLIMIT_DATA: if memory runs out, the submission must go, not the grader."""
    code = ("import subprocess, sys\nprint('run', open('/proc/self/oom_score_adj').read().strip(), file=sys.stderr)\n"
            "child = subprocess.run(['cat', '/proc/self/oom_score_adj'], capture_output=True, text=True)\n"
            "print('child', child.stdout.strip(), file=sys.stderr)")
    outcome = _sandboxed(tmp_path, code, Limits(timeout=30))
    assert "run 1000" in outcome.stderr and "child 1000" in outcome.stderr, outcome
    assert Path("/proc/self/oom_score_adj").read_text().strip() != "1000", "the grader must not be first"


def _memory_cgroups_or_skip():
    from course_lib.grading import memory_cgroup

    found = memory_cgroup.probe()
    if isinstance(found, str):
        pytest.skip(f"no memory cgroup can be made here: {found}")
    return found


# A parent that starts four children holding 100 MiB each for 3 s (each far under RLIMIT_DATA) and
# prints their exit codes.
HOLDERS = ("import subprocess, sys\n"
           "hold = 'b = bytearray(100 << 20); b[::4096] = bytes(len(b) // 4096); import time; time.sleep(3)'\n"
           "children = [subprocess.Popen([sys.executable, '-c', hold]) for _ in range(4)]\n"
           "print('codes', *[c.wait() for c in children], file=sys.stderr)")


def test_a_runs_processes_are_held_to_a_total_memory_limit_together(tmp_path):
    """RLIMIT_DATA bounds each process; the run's memory cgroup bounds their sum, and counts its kills."""
    _memory_cgroups_or_skip()
    over = _sandboxed(tmp_path, HOLDERS, Limits(timeout=30, memory_mb=1024, total_memory_mb=300))
    assert over.memory_kills >= 1 and "-9" in over.stderr, over
    under = _sandboxed(tmp_path, HOLDERS, Limits(timeout=30, memory_mb=1024, total_memory_mb=2048))
    assert under.memory_kills == 0 and "codes 0 0 0 0" in under.stderr, under


def test_a_kernel_killed_for_the_runs_total_memory_is_graded_memory_and_says_why(tmp_path):
    from course_lib.grading.job import Job, _Run

    _memory_cgroups_or_skip()
    limits = Limits(timeout=30, cell_timeout=20, memory_mb=4096, total_memory_mb=400)
    job = Job("ada", "tiny", "tiny.ipynb", "", None, None, False, limits)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(
        "hoard = bytearray(600 << 20)\nhoard[::4096] = bytes(len(hoard) // 4096)")])  # under 4096, over 400
    result = _Run(job, 0, tmp_path).phase(nb, "student")
    assert result.status == "memory", result
    assert "more than 400 MiB together" in result.reason and "killed 1" in result.reason, result.reason


def test_a_process_that_left_the_group_dies_with_the_runs_memory_cgroup(tmp_path, monkeypatch):
    """Without namespaces only the process group is killed; the run's cgroup finds every process it started."""
    from course_lib.grading import sandbox

    _memory_cgroups_or_skip()
    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.Isolation(False, False, memory_cgroup=""))
    tag = f"left-{os.getpid()}-{tmp_path.name}"
    escape = (f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', "
              f"{tag!r}], start_new_session=True, stderr=subprocess.DEVNULL)\nprint('parent done', file=sys.stderr)")
    run = _sandboxed(tmp_path, escape, Limits(timeout=10))
    time.sleep(0.2)
    left = [p for p in psutil.process_iter(["cmdline"]) if tag in (p.info["cmdline"] or [])]
    for process in left:
        process.kill()
    assert run.returncode == 0 and "parent done" in run.stderr, run
    assert not left, "a process that called setsid outlived its run"


def test_memory_cgroups_of_killed_graders_are_removed_and_a_living_graders_are_not():
    from course_lib.grading import memory_cgroup

    parent, layout = _memory_cgroups_or_skip()
    gone = subprocess.Popen(["true"])
    gone.wait()
    abandoned = memory_cgroup.RunCgroup(parent / f"{memory_cgroup.PREFIX}{gone.pid}-k1ll3d", layout)
    living = memory_cgroup.RunCgroup.create(parent, layout, 64 << 20)  # named after this process
    abandoned.folder.mkdir()
    try:
        removed = memory_cgroup.remove_abandoned()  # (with any an earlier killed grader left)
        assert str(abandoned.folder) in removed and str(living.folder) not in removed, removed
        assert not abandoned.folder.exists() and living.folder.is_dir()
    finally:
        living.remove()
        if abandoned.folder.exists():
            abandoned.remove()


@pytest.mark.parametrize("cgroup, mountinfo, expected", [
    # v1: the memory controller's own hierarchy, mounted at its root
    ("4:memory:/process_api/abc\n0::/\n", "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
     ("/sys/fs/cgroup/memory/process_api/abc", 1)),
    # v1 with memory joined to another controller, the mount showing only a part of the hierarchy
    ("5:cpu,memory:/docker/x/grader\n", "40 1 0:33 /docker/x /sys/fs/cgroup/cpu,memory rw - cgroup cg rw,cpu,memory\n",
     ("/sys/fs/cgroup/cpu,memory/grader", 1)),
    # v2 only (a space in the path is written \040 in mountinfo)
    ("0::/user.slice/grade\n", "29 1 0:26 / /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n",
     ("/sys/fs/cgroup x/user.slice/grade", 2)),
    # hybrid: v1 holds the memory controller, so v1 is used
    ("3:memory:/a\n0::/b\n", "30 1 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
     "31 1 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", ("/sys/fs/cgroup/memory/a", 1)),
])
def test_the_graders_own_memory_cgroup_is_found_from_proc(cgroup, mountinfo, expected):
    from course_lib.grading.memory_cgroup import own_cgroup

    folder, layout = own_cgroup(cgroup, mountinfo)
    assert (str(folder), layout.version) == expected


def test_no_memory_cgroup_says_why(tmp_path, monkeypatch):
    from course_lib.grading import memory_cgroup

    with pytest.raises(memory_cgroup.CgroupUnavailable, match="no cgroup memory controller is mounted"):
        memory_cgroup.own_cgroup("1:cpu:/\n", "35 31 0:32 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
    # a v2 cgroup that does not hand the memory controller down
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "cgroup.subtree_control").write_text("cpu io\n")
    monkeypatch.setenv(memory_cgroup.CGROUP_ENV, str(tmp_path))
    memory_cgroup.probe.cache_clear()
    try:
        assert "does not give the memory controller" in memory_cgroup.probe()
        monkeypatch.setenv(memory_cgroup.CGROUP_ENV, str(tmp_path / "nowhere"))
        memory_cgroup.probe.cache_clear()
        assert "is not a folder" in memory_cgroup.probe()
    finally:
        monkeypatch.undo()
        memory_cgroup.probe.cache_clear()


def test_a_run_reads_the_data_home_and_cannot_change_it(tmp_path):
    """Every submission loads the zoo from the data home: none may change it, whatever its permissions."""
    from course_lib.grading.sandbox import prepare_folder, run_sandboxed, sandbox_env

    if not isolation().namespaces:
        pytest.skip("read-only mounts need root, unshare and setpriv (mount namespaces)")
    shared = tmp_path / "data_home"
    (shared / "models").mkdir(parents=True)
    shared.chmod(0o777)
    (shared / "models").chmod(0o777)
    (shared / "models" / "weights.pt").write_text("the instructor's")
    (shared / "models" / "weights.pt").chmod(0o666)
    code = ("import sys\nfrom pathlib import Path\nmodels = Path(sys.argv[1]) / 'models'\n"
            "print('read', (models / 'weights.pt').read_text(), file=sys.stderr)\n"
            "for attempt in (lambda: (models / 'weights.pt').write_text('poisoned'),\n"
            "                lambda: (models / 'planted.pt').write_text('poisoned')):\n"
            "    try:\n        attempt()\n        print('WROTE', file=sys.stderr)\n"
            "    except OSError as err:\n        print('refused', err.errno, file=sys.stderr)\n")
    folder = prepare_folder(tmp_path / "run", 0)
    outcome = run_sandboxed([sys.executable, "-c", code, str(shared)], folder, 0, Limits(timeout=30), [],
                            sandbox_env(folder, {}), expose=[shared])
    assert outcome.returncode == 0 and "read the instructor's" in outcome.stderr, outcome
    assert outcome.stderr.count("refused 30") == 2 and "WROTE" not in outcome.stderr, outcome.stderr  # EROFS
    assert sorted(p.name for p in (shared / "models").iterdir()) == ["weights.pt"]
    assert (shared / "models" / "weights.pt").read_text() == "the instructor's"


def test_a_run_has_temporary_folders_of_its_own(tmp_path):
    """What a submission writes to /tmp, /var/tmp or /dev/shm goes with it; it sees nothing kept there."""
    if not isolation().namespaces:
        pytest.skip("private temporary folders need root, unshare and setpriv (mount namespaces)")
    tag = f"course-test-{uuid.uuid4().hex}"
    kept = Path(tempfile.gettempdir()) / f"{tag}-host"
    kept.write_text("the machine's")
    kept.chmod(0o644)
    code = (f"import os, sys\nprint('sees the machine', os.path.exists({str(kept)!r}), file=sys.stderr)\n"
            f"for folder in ('/tmp', '/var/tmp', '/dev/shm'):\n"
            f"    open(os.path.join(folder, {tag!r}), 'w').write('planted')\n"
            f"open('in-folder', 'w').write('kept')\nimport course_lib\n")
    try:
        outcome = _sandboxed(tmp_path, code + "print('done', file=sys.stderr)", Limits(timeout=30))
        assert outcome.returncode == 0 and "done" in outcome.stderr, outcome
        assert "sees the machine False" in outcome.stderr, "the machine's /tmp shows in the sandbox"
        planted = [folder for folder in ("/tmp", "/var/tmp", "/dev/shm") if Path(folder, tag).exists()]
        assert not planted, f"the submission's files outlived it in {planted}"
    finally:
        kept.unlink()
        for folder in ("/tmp", "/var/tmp", "/dev/shm"):
            Path(folder, tag).unlink(missing_ok=True)
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("run-")]
    assert (folder / "in-folder").read_text() == "kept", "the working folder must stay the real one"


def test_work_left_by_a_killed_grader_is_removed_and_a_living_graders_is_not(tmp_path):
    from course_lib.grading.job import WORK_PREFIX, remove_abandoned_work

    gone = subprocess.Popen(["true"])
    gone.wait()
    abandoned = tmp_path / f"{WORK_PREFIX}{gone.pid}-k1ll3d"
    living = tmp_path / f"{WORK_PREFIX}{os.getpid()}-al1ve"
    other = tmp_path / f"{WORK_PREFIX}slots-0"  # the slot locks: not a work folder
    for folder in (abandoned / "student" / ".stage", living / "student", other):
        folder.mkdir(parents=True)
    (abandoned / "student" / "hidden_tests.ipynb").write_text("{}")
    if isolation().unprivileged_user:  # as the sandbox leaves it: files of a sandbox uid
        os.chown(abandoned / "student" / "hidden_tests.ipynb", FIRST_SANDBOX_UID, FIRST_SANDBOX_UID)
    assert remove_abandoned_work(str(tmp_path)) == [str(abandoned)]
    assert not abandoned.exists() and living.is_dir() and other.is_dir()


def test_a_run_whose_stderr_is_held_by_a_process_that_left_its_group_still_returns(tmp_path, monkeypatch):
    # without namespaces nothing kills a process that called setsid; the run must not wait for its pipe
    from course_lib.grading import sandbox

    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.Isolation(False, False))
    tag = f"held-{os.getpid()}-{tmp_path.name}"
    escape = (f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', "
              f"{tag!r}], start_new_session=True)\nprint('parent done', file=sys.stderr)")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(run=_sandboxed(
        tmp_path, escape, Limits(timeout=1, wall_factor=3))))
    runner.start()
    runner.join(120)
    escaped = [p for p in psutil.process_iter(["cmdline"]) if tag in (p.info["cmdline"] or [])]
    for process in escaped:
        process.kill()
    assert escaped, f"the test's escaping process did not start: {outcome}"
    assert not runner.is_alive(), "run_sandboxed waited for a pipe held by a process outside its group"
    run = outcome["run"]
    assert not run.timed_out and run.returncode == 0 and "held it open" in run.stderr, run


@pytest.mark.parametrize("code, factor, clock", [
    (f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN!r}])", 60, "cpu"),  # the kernel's child
    ("import time\ntime.sleep(1000)", 3, "wall"),
])
def test_a_cell_is_stopped_by_its_kernels_cpu_time_or_by_the_wall_clock_when_it_waits(tmp_path, code, factor,
                                                                                         clock):
    from course_lib.grading.execute import run

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(code),
                                         nbformat.v4.new_code_cell("y = 2")])
    result = run(nb, cell_timeout=1, max_output_bytes=1 << 20, cwd=str(tmp_path), wall_factor=factor)
    assert (result["status"], result["clock"]) == ("timeout", clock), result
    assert ("cell 1 used more than 1 s of CPU" if clock == "cpu" else "3 s of wall clock") in result["reason"]
    assert nb.cells[0].execution_count == 1 and nb.cells[2].execution_count is None


@pytest.mark.parametrize("code, what", [
    ("import time\nfor i in range(60):\n    open(f'part{i}', 'wb').write(bytes(2 << 20))\n    time.sleep(0.02)",
     "MiB"),
    ("import os\nos.makedirs('many')\nfor i in range(3000):\n    open(f'many/{i}', 'w').close()", "files"),
])
def test_a_cell_that_fills_the_folder_is_stopped_and_the_cells_before_it_count(tmp_path, code, what):
    from course_lib.grading.execute import run

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell(code + "\nimport time\ntime.sleep(30)"),
                                         nbformat.v4.new_code_cell("y = 2")])
    result = run(nb, cell_timeout=20, max_output_bytes=1 << 20, cwd=str(tmp_path), max_disk_bytes=20 << 20,
                 max_files=1000)
    assert (result["status"], result["clock"]) == ("output", ""), result
    assert "cell 1 left more than 20 MiB or 1000 files" in result["reason"], result
    assert nb.cells[0].execution_count == 1 and nb.cells[2].execution_count is None


def test_a_slot_is_never_shared_nor_given_while_its_uid_still_has_processes():
    from course_lib.grading.sandbox import claim_slot, slot_uid

    with claim_slot() as first, claim_slot() as second:
        assert first != second
    if not isolation().unprivileged_user:
        pytest.skip("slots map to uids only as root with namespaces")
    # a process of the lowest free slot's uid outlives its sandbox (a fork bomb being torn down)
    with claim_slot() as lowest:
        pass
    uid = slot_uid(lowest)
    straggler = subprocess.Popen(["sleep", "30"], preexec_fn=lambda: (os.setgid(uid), os.setuid(uid)))
    try:
        with claim_slot() as slot:
            assert slot != lowest
    finally:
        straggler.kill()
        straggler.wait()
    with claim_slot() as slot:
        assert slot == lowest


def _waits_once(marker: Path) -> str:
    """``add``'s answer, after a wait past the wall-clock backstop the first time it runs only."""
    return (f"import os, time\nif not os.path.exists({str(marker)!r}):\n"
            f"    open({str(marker)!r}, 'w').close()\n    time.sleep(10**6)\n" + ADD)


@pytest.mark.slow
def test_a_wall_clock_timeout_is_graded_once_more_and_the_row_says_so(tmp_path, monkeypatch):
    from course_lib.grading import sandbox
    from course_lib.grading.batch import grade

    # the marker must outlive the first run: the data home is shared with every run (the course
    # folder, hidden from the submission, is not; nor is /tmp, the sandbox's own), and made writable
    # here (every run sees it read-only)
    monkeypatch.setattr(sandbox, "read_only_script", lambda paths, folder: [])
    course, shared = tmp_path / "course", tmp_path / "data_home"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    marker = shared / "waits-once"
    write_course(course, extra=(Case("waits_once", answers=(_waits_once(marker), MEAN)),), corpus=False)
    (row,) = grade("tiny", course, limits=Limits(cell_timeout=2, timeout=30, wall_factor=3),
                   data_home=shared, log=lambda message: None)
    assert (row["status"], row["score"]) == ("graded", 3.0), row
    assert "graded on a re-run: the first run (on local) hit a wall-clock timeout" in row["reason"], row
    log = (course / ".course-grade" / "tiny" / "executions.log").read_text().split("\t")
    assert log[-1].strip() == "2", "recorded once, after two runs"


def test_jobs_go_out_a_few_at_a_time_and_each_is_recorded_once(tmp_path, monkeypatch):
    """Each job holds a submission's bytes: at most twice the workers' capacity are out at once."""
    from course_lib.grading import batch
    from course_lib.grading.job import failure

    write_course(tmp_path, extra=tuple(Case(f"s{i:02d}") for i in range(10)), corpus=False)
    most = []

    class Counting(batch.LocalExecutor):
        def submit(self, job, avoid=""):
            super().submit(job, avoid)
            most.append(len(self))

    monkeypatch.setattr(batch, "grade_job", lambda job: failure(job, "invalid", "not run: a fake grader"))
    executor = Counting(1)
    try:
        rows = batch.grade("tiny", tmp_path, executor=executor, log=lambda message: None)
    finally:
        executor.close()
    assert sorted(r["student"] for r in rows) == [f"s{i:02d}" for i in range(10)]
    assert max(most) == 4 and len(most) == 10, most


@pytest.mark.slow
def test_a_grader_failure_on_one_notebook_is_recorded_and_the_batch_goes_on(tmp_path, monkeypatch):
    from course_lib.grading import job as grading_job
    from course_lib.grading.batch import grade
    from course_lib.grading.course import assign

    (tmp_path / "source" / "tiny").mkdir(parents=True)
    nbformat.write(source_notebook(), tmp_path / "source" / "tiny" / "tiny.ipynb")
    release = nbformat.read(assign("tiny", tmp_path) / "tiny.ipynb", as_version=4)
    for student in ("a", "b"):
        (tmp_path / "submitted" / student / "tiny").mkdir(parents=True)
        nbformat.write(release, tmp_path / "submitted" / student / "tiny" / "tiny.ipynb")
    original = grading_job._grade

    def flaky(job, run):
        if job.student == "b":
            raise RuntimeError("disk full")
        return original(job, run)

    monkeypatch.setattr(grading_job, "_grade", flaky)
    rows = {r["student"]: r for r in grade("tiny", tmp_path, log=lambda message: None)}
    assert rows["a"]["status"] == "graded"
    assert rows["b"]["status"] == "grader-error" and "disk full" in rows["b"]["reason"]
    assert float(rows["b"]["score"]) == 0.0


# -- the hostile batch ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", CASE_NAMES)
def test_each_submission_gets_the_grade_it_deserves(hostile_batch, name):
    case = hostile_batch["corpus"][name]
    if case.isolated and not isolation().namespaces:
        pytest.skip("needs namespaces and a sandbox uid (root with unshare, setpriv and ip); "
                    "the batch log says which limits were in force")
    (row,) = [r for r in hostile_batch["rows"] if r["student"] == name]
    assert row["status"] in case.status and case.fair(float(row["score"])), row
    assert float(row["max_score"]) == 3.0
    if row["status"] != "graded":
        assert row["reason"], "every failure says why"


@pytest.mark.slow
def test_killed_batch_resumes_without_grading_anything_twice(hostile_batch):
    course = hostile_batch["course"]
    assert 8 <= hostile_batch["rows_at_kill"] < len(CASE_NAMES), "the kill came halfway"
    assert sorted(r["student"] for r in hostile_batch["rows"]) == sorted(CASE_NAMES)
    log = (course / ".course-grade" / "tiny" / "executions.log").read_text().splitlines()
    finished = [line.split("\t")[0] for line in log]
    assert sorted(finished) == sorted(CASE_NAMES), "each submission is graded exactly once"


@pytest.mark.slow
def test_gradebook_is_intact_and_agrees_with_the_csv(hostile_batch):
    from nbgrader.api import Gradebook

    from course_lib.grading.course import nbgrader_path

    course = hostile_batch["course"]
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with nbgrader_path(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for row in hostile_batch["rows"]:
            nb = gb.find_submission_notebook("tiny", "tiny", row["student"])
            assert nb.score == pytest.approx(float(row["score"])), row
    for path, expected in hostile_batch["secrets"].items():
        assert digest(path) == expected, f"{path} was changed by a submission"
    # nbgrader's own CSV export reads the same scores (written elsewhere than the kit's grades.csv)
    nbgrader = Path(sys.executable).parent / "nbgrader"
    env = dict(os.environ, PATH=f"{nbgrader.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run([str(nbgrader), "export", "--to", "nbgrader_export.csv"], cwd=course, env=env,
                   capture_output=True, text=True, check=True)
    with open(course / "nbgrader_export.csv", newline="") as handle:
        exported = {r["student_id"]: float(r["raw_score"]) for r in csv.DictReader(handle)}
    assert exported == {r["student"]: float(r["score"]) for r in hostile_batch["rows"]}


@pytest.mark.slow
def test_nothing_is_left_running(hostile_batch):
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        if FIRST_SANDBOX_UID <= uid < FIRST_SANDBOX_UID + HOSTILE_WORKERS or "sleep 1000" in cmdline:
            left.append((pid, uid, cmdline))
    assert not left


@pytest.mark.slow
def test_feedback_is_written_for_every_graded_student(hostile_batch):
    course = hostile_batch["course"]
    result = subprocess.run([sys.executable, "-m", "course_lib.cli", "feedback", "tiny", "--course-dir",
                             str(course)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    pages = {p.parent.parent.name for p in (course / "feedback").glob("*/tiny/tiny.html")}
    assert pages == set(CASE_NAMES)
    page = (course / "feedback" / "partial_1" / "tiny" / "tiny.html").read_text()
    assert "Score: 1.0" in page or "1.0 / 3.0" in page


def _python_importing(tmp_path: Path, kit: Path | None, exit_code: int = 0) -> str:
    """An interpreter (a wrapper script) that imports course_lib from ``kit``, or fails with ``exit_code``."""
    python = tmp_path / "python"
    body = f"exit {exit_code}" if exit_code else f'PYTHONPATH={kit} exec {sys.executable} "$@"'
    python.write_text(f"#!/bin/sh\n{body}\n")
    python.chmod(0o755)
    return str(python)


def test_the_assignments_of_the_kit_the_kernels_import_are_found_to_be_hidden(tmp_path):
    """A worker whose Python imports another copy of the kit (its own install): that copy's solutions are hidden."""
    from course_lib.grading.job import kernel_kit_assignments

    other = tmp_path / "other_kit"
    (other / "course_lib").mkdir(parents=True)
    (other / "course_lib" / "__init__.py").write_text("")
    (other / "assignments" / "tiny").mkdir(parents=True)
    assert kernel_kit_assignments(_python_importing(tmp_path, other)) == (str(other / "assignments"),)
    (found,) = kernel_kit_assignments()  # this interpreter's kit, wherever it is installed from
    assert (Path(found).parent / "course_lib" / "grading" / "job.py").is_file()


def test_a_worker_whose_python_cannot_say_where_the_kit_is_stops_with_the_reason(tmp_path):
    from course_lib.grading.job import kernel_kit_assignments

    with pytest.raises(RuntimeError, match="could not ask .* where it imports course_lib from .*exit 3"):
        kernel_kit_assignments(_python_importing(tmp_path, None, exit_code=3))
