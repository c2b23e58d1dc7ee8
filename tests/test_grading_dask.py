"""Grading on a Dask LocalCluster: the hostile corpus under a CPU hog per core, a worker killed midway.

One batch on 2 worker processes grades the corpus (plus a submission whose
job kills its worker) while one busy process per core competes for the CPU;
one worker is killed by its pid once 8 rows are written, and its replacement
takes 20 s to start (longer than Dask's default lost-worker timeout, which
once closed both nannies of a loaded CI machine and left a batch waiting
forever). Its grades must equal the local grader's on an idle machine
(``hostile_batch``), each submission recorded exactly once.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import types
from pathlib import Path

import psutil
import pytest

from course_lib.grading.sandbox import FIRST_SANDBOX_UID, Limits, isolation

from .grading.corpus import CASE_NAMES, Case, read_rows, write_course
from .grading.faults import KILLS_WORKER

SLOW_RESTART = Path(__file__).parent / "grading" / "slow_restart.py"

LIMITS = Limits(cell_timeout=4, timeout=40, memory_mb=1024, max_output_mb=1, disk_mb=64)  # as the hostile batch's


def _dask_processes() -> list[psutil.Process]:
    """The workers a LocalCluster spawned and still running (not multiprocessing's resource tracker).

    A LocalCluster's nannies live in this process and spawn its workers as this
    process's own children, so only those are looked at: the suite's background
    book run (conftest's ``_book_run``) spawns its notebook workers the same way,
    as grandchildren, and a CI run once found two of them here. A zombie (any
    child of the session that has ended and is not reaped yet: a fresh clone's run
    once met one) or a process gone since the listing is not running.
    """
    running = []
    for process in psutil.Process().children(recursive=False):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(process.cmdline()):
                running.append(process)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):  # it ended between the listing and the look
            continue
    return running


@pytest.fixture(scope="module")
def dask_batch(tmp_path_factory):
    from course_lib.grading.batch import grade
    from course_lib.grading.cluster import DaskExecutor

    from .grading.faults import grade_or_kill_worker

    course = tmp_path_factory.mktemp("dask_course")
    server = socket.create_server(("127.0.0.1", 0))
    corpus = write_course(course, server.getsockname()[1], (Case(KILLS_WORKER),))
    marker = course.parent / "slow_restart.marker"  # the victim's restart outlasts Dask's lost-worker timeout
    os.environ["COURSE_TEST_SLOW_RESTART"] = str(marker)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    log, outcome = [], {}
    executor = DaskExecutor.local(2, task=grade_or_kill_worker, worker_options={"preload": [str(SLOW_RESTART)]})
    try:
        first_workers = executor.client.run(os.getpid)
        grading = threading.Thread(target=lambda: outcome.update(rows=grade(
            "tiny", course, limits=LIMITS, log=log.append, executor=executor)))
        grading.start()
        deadline = time.monotonic() + 300
        while len(read_rows(course)) < 8 and grading.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        victim = sorted(executor.client.run(os.getpid).items())[0]
        marker.write_text(str(executor.client.scheduler_info()["workers"][victim[0]]["name"]))
        os.kill(victim[1], signal.SIGKILL)
        rows_at_kill = len(read_rows(course))
        grading.join(600)
        workers_after = executor.client.run(os.getpid)
        if grading.is_alive():  # all that can tell why, for a run that cannot be repeated at will (CI)
            stack = "".join(traceback.format_stack(sys._current_frames()[grading.ident]))
            pytest.fail(f"the Dask batch did not finish in 10 minutes; workers now {workers_after}; waiting "
                        f"for:\n" + "\n".join(executor.describe_pending()) + f"\nthe batch's thread is at:\n"
                        f"{stack}\nthe workers' tasks are at: {executor.client.call_stack()}\nits log:\n"
                        + "\n".join(log))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        executor.close()
        server.close()
        del os.environ["COURSE_TEST_SLOW_RESTART"]
    assert "rows" in outcome, "\n".join(log[-20:])
    print("the Dask batch's log:", *log, sep="\n")  # (pytest -s or -rP shows it: a job sent again says why)
    return {"course": course, "corpus": {c.name: c for c in corpus}, "rows": read_rows(course), "log": log,
            "rows_at_kill": rows_at_kill, "victim": victim, "first_workers": first_workers,
            "workers_after": workers_after, "slow_restart": marker.with_suffix(".slept").is_file()}


def _row(rows, name):
    (row,) = [r for r in rows if r["student"] == name]
    return row


@pytest.mark.slow
@pytest.mark.parametrize("name", CASE_NAMES)
def test_dask_under_load_grades_as_the_local_grader_without_hogs(dask_batch, hostile_batch, name):
    # The local batch is not graded on an idle machine: in the suite the book builds beside it (conftest's
    # _book_run). What makes it the reference is test_grading's check that it gives every case its fair grade.
    case = dask_batch["corpus"][name]
    if case.isolated and not isolation().namespaces:
        pytest.skip("needs namespaces and a sandbox uid (root with unshare, setpriv and ip)")
    dask, local = _row(dask_batch["rows"], name), _row(hostile_batch["rows"], name)
    if len(case.status) == 1 and not isinstance(case.score, tuple):  # one fair outcome: the same one
        assert (dask["status"], dask["score"]) == (local["status"], local["score"]), (dask, local)
    else:  # fork_bomb and print_gigabytes: which limit trips first is a race on either grader
        assert dask["status"] in case.status and case.fair(float(dask["score"])), dask


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_nothing_is_recorded_twice(dask_batch):
    course = dask_batch["course"]
    assert 8 <= dask_batch["rows_at_kill"] < len(dask_batch["corpus"]), "the kill came halfway"
    address, pid = dask_batch["victim"]
    assert not psutil.pid_exists(pid) and pid not in dask_batch["workers_after"].values()
    assert dask_batch["slow_restart"], "the victim's replacement slept past Dask's lost-worker timeout"
    assert len(dask_batch["workers_after"]) == 2, "the nanny replaced the killed worker, however slowly"
    assert sorted(r["student"] for r in dask_batch["rows"]) == sorted(dask_batch["corpus"])
    log = (course / ".course-grade" / "tiny" / "executions.log").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in log) == sorted(dask_batch["corpus"]), "each recorded once"
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM submitted_notebook").fetchone() == (len(dask_batch["corpus"]),)


@pytest.mark.slow
def test_the_workers_scores_are_the_gradebooks(dask_batch):
    for row in dask_batch["rows"]:
        result = json.loads((dask_batch["course"] / ".course-grade" / "tiny" / row["student"] /
                             "tiny.result.json").read_text())
        assert sum(score for score, _ in result["scores"].values()) == pytest.approx(float(row["score"])), row


@pytest.mark.slow
def test_a_job_that_kills_its_worker_every_time_ends_crashed(dask_batch):
    row = _row(dask_batch["rows"], KILLS_WORKER)
    assert row["status"] == "crashed" and "died 3 times" in row["reason"], row
    assert float(row["score"]) == 0.0


@pytest.mark.slow
def test_a_wall_clock_timeout_is_run_again_on_another_worker(dask_batch):
    row = _row(dask_batch["rows"], "sleep_forever")
    result = json.loads((dask_batch["course"] / ".course-grade" / "tiny" / "sleep_forever" /
                         "tiny.result.json").read_text())
    assert result["attempts"] == 2 and "also hit a wall-clock timeout" in row["reason"], (row, result)
    first = row["reason"].split("the first run (on ")[1].split(")")[0]
    assert first.startswith("tls://") and result["worker"] != first, (result, first)


@pytest.mark.slow
def test_nothing_of_the_cluster_is_left_running(dask_batch):
    assert not _dask_processes()
    left = [p.pid for p in psutil.process_iter(["uids"])
            if FIRST_SANDBOX_UID <= p.info["uids"].real < FIRST_SANDBOX_UID + 64]
    assert not left


def test_a_batch_with_no_worker_left_stops_with_an_error_that_says_how_to_resume(monkeypatch):
    from distributed import Client, LocalCluster

    from course_lib.grading import cluster

    monkeypatch.setattr(cluster, "POLL_SECONDS", 0.2)
    job = types.SimpleNamespace(student="ada", stem="tiny", attempt=1)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as local, Client(local) as client:
        executor = cluster.DaskExecutor(client, patience=1.0, task=len)
        executor.submit(job)
        outcome = {}
        waiting = threading.Thread(target=lambda: outcome.update(error=pytest.raises(
            cluster.NoWorkers, executor.next_done)))
        waiting.start()
        waiting.join(60)
        assert not waiting.is_alive(), "next_done waited for a worker past its patience"
    message = str(outcome["error"].value)
    assert "has had no worker for" in message and "run the same command again to resume" in message
    assert "1 submissions waiting" in message


def test_a_scheduler_without_tls_is_refused_unless_the_instructor_insists(tmp_path):
    from course_lib.grading.cluster import check_address, tls_security

    check_address("tls://grader.example.org:8786")
    for address in ("tcp://10.0.0.5:8786", "10.0.0.5:8786", "ws://10.0.0.5:8786"):
        with pytest.raises(ValueError, match="--insecure-scheduler"):
            check_address(address)
        check_address(address, insecure=True)
    with pytest.raises(ValueError, match="unknown scheme"):
        check_address("ucx://10.0.0.5:8786")
    with pytest.raises(ValueError, match="--tls-key"):
        tls_security("ca.pem", "client.pem", None)
    command = [sys.executable, "-m", "course_lib.cli", "grade", "tiny", "--course-dir", str(tmp_path),
               "--scheduler", "tcp://10.0.0.5:8786"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "has no TLS" in refused.stderr, refused.stderr[-2000:]
    assert not (tmp_path / "grades.csv").exists() and not (tmp_path / "release").exists()


@pytest.mark.slow
def test_grading_on_a_running_scheduler_by_its_address(tmp_path):
    from distributed import LocalCluster

    write_course(tmp_path, extra=(Case("honest"),), corpus=False)
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        command = [sys.executable, "-m", "course_lib.cli", "grade", "tiny", "--course-dir", str(tmp_path),
                   "--scheduler", cluster.scheduler_address, "--insecure-scheduler"]
        graded = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert graded.returncode == 0, graded.stderr[-3000:]
    (row,) = read_rows(tmp_path)
    assert (row["status"], float(row["score"])) == ("graded", 3.0), row
    assert f"on Dask scheduler {cluster.scheduler_address}" in graded.stderr
    result = json.loads((tmp_path / ".course-grade" / "tiny" / "honest" / "tiny.result.json").read_text())
    assert result["worker"].startswith("tcp://127.0.0.1:")


_HANGS: list[threading.Event] = []  # one per call of `_hangs`, set to let it return


def _hangs(job, times: int):
    """A Dask task (in-process workers) whose first ``times`` calls hang until the test sets their event."""
    release = threading.Event()
    _HANGS.append(release)
    if len(_HANGS) <= times:
        release.wait(120)
    return {"status": "graded", "call": len(_HANGS)}


@pytest.mark.parametrize("times", [1, 2])
def test_a_job_stuck_on_a_worker_is_sent_again_once_then_failed(monkeypatch, times):
    import functools

    import nbformat
    from distributed import Client, LocalCluster

    from course_lib.grading import cluster
    from course_lib.grading.job import Job

    monkeypatch.setattr(cluster, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(cluster, "STARTUP_SECONDS", 1.0)
    _HANGS.clear()
    job = Job("ada", "tiny", "tiny.ipynb", nbformat.writes(nbformat.v4.new_notebook()), None, None, False,
              Limits(cell_timeout=0.1, timeout=0.1, wall_factor=1.0))
    log = []
    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=None) as local, \
            Client(local) as client:
        executor = cluster.DaskExecutor(client, task=functools.partial(_hangs, times=times), log=log.append)
        executor.submit(job)
        try:
            done, result = executor.next_done()
        finally:
            for release in _HANGS:
                release.set()
    assert done.student == "ada" and len(_HANGS) == 2, _HANGS
    assert log and "stuck on Dask (running on" in log[0] and "sending it again" in log[0], log
    if times == 1:
        assert result == {"status": "graded", "call": 2}
    else:
        assert result["status"] == "grader-error" and "lost this submission 2 times" in result["reason"], result


def test_on_the_kits_cluster_a_worker_stuck_in_a_job_is_replaced_and_the_job_runs_again(monkeypatch, tmp_path):
    import nbformat

    from course_lib.grading import cluster
    from course_lib.grading.job import Job

    from .grading.faults import hangs_once

    monkeypatch.setattr(cluster, "POLL_SECONDS", 0.5)
    monkeypatch.setattr(cluster, "STARTUP_SECONDS", 2.0)
    monkeypatch.setenv("COURSE_TEST_HANG_MARKER", str(tmp_path / "hung"))  # (workers inherit it)
    job = Job("ada", "tiny", "tiny.ipynb", nbformat.writes(nbformat.v4.new_notebook()), None, None, False,
              Limits(cell_timeout=0.5, timeout=0.5, wall_factor=1.0))
    log = []
    executor = cluster.DaskExecutor.local(1, task=hangs_once)
    executor.log = log.append
    try:
        executor.submit(job)
        done, result = executor.next_done()
    finally:
        executor.close()
    hung = int((tmp_path / "hung").read_text())
    assert done.student == "ada" and result["status"] == "graded", result
    assert result["pid"] != hung and not psutil.pid_exists(hung), "the stuck worker was replaced"
    assert len(log) == 1 and "running on tls://" in log[0] and "sending it again" in log[0], log


def _answers(job):
    return {"status": "graded", "student": job.student}


def test_on_the_kits_cluster_a_nanny_closed_for_good_is_started_again(monkeypatch):
    """Dask's SpecCluster forgets a nanny whose worker did not come back: the kit starts a new one."""
    import nbformat

    from course_lib.grading import cluster
    from course_lib.grading.job import Job

    monkeypatch.setattr(cluster, "POLL_SECONDS", 0.5)
    monkeypatch.setattr(cluster, "LOCAL_NO_WORKER_PATIENCE", 20.0)
    job = Job("ada", "tiny", "tiny.ipynb", nbformat.writes(nbformat.v4.new_notebook()), None, None, False, LIMITS)
    log = []
    executor = cluster.DaskExecutor.local(1, task=_answers)
    executor.log = log.append
    try:
        (name,) = list(executor.cluster.workers)

        async def close_for_good():  # what SpecCluster does past distributed.deploy.lost-worker-timeout
            await executor.cluster.workers[name].close()
            del executor.cluster.workers[name]

        executor.cluster.sync(close_for_good)
        deadline = time.monotonic() + 30
        while executor.client.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not executor.client.scheduler_info()["workers"], "the worker did not leave"
        executor.submit(job)
        done, result = executor.next_done()
    finally:
        executor.close()
    assert (done.student, result) == ("ada", {"status": "graded", "student": "ada"})
    assert any("closed the nanny of worker 0 for good" in line for line in log), log


def _set_status(status: str, dask_worker=None):
    from distributed.core import Status

    dask_worker.status = Status[status]  # (on the worker's event loop: Client.run calls it there)


def test_a_job_kept_for_workers_that_are_gone_is_sent_to_the_workers_there_are(monkeypatch):
    """Stop 34's CI hang (and fresh-clone run 18): a job re-run away from one worker waited in no-worker."""
    import nbformat
    from distributed import Client, LocalCluster

    from course_lib.grading import cluster
    from course_lib.grading.job import Job

    monkeypatch.setattr(cluster, "POLL_SECONDS", 0.2)
    job = Job("ada", "tiny", "tiny.ipynb", nbformat.writes(nbformat.v4.new_notebook()), None, None, False, LIMITS)
    log, outcome = [], {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local, \
            Client(local) as client:
        first, second = sorted(client.scheduler_info()["workers"])
        client.run(_set_status, "paused")  # no worker runs: the job waits in `no-worker`, for `second` only
        executor = cluster.DaskExecutor(client, task=_answers, log=log.append)
        executor.submit(job, avoid=first)
        (key,) = executor.pending
        deadline = time.monotonic() + 30
        while (executor._scheduler_view()[key] or ("",))[0] != "no-worker" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert executor._scheduler_view()[key][:1] == ("no-worker",), executor.describe_pending()
        client.retire_workers([second], close_workers=True)
        client.run(_set_status, "running", workers=[first])
        waiting = threading.Thread(target=lambda: outcome.update(done=executor.next_done()), daemon=True)
        waiting.start()
        waiting.join(60)
        pending = executor.describe_pending() if waiting.is_alive() else []
        for future in executor.pending.values():
            future.cancel()
    assert not pending, f"still waiting after 60 s: {pending}"
    done, result = outcome["done"]
    assert done.student == "ada" and result == {"status": "graded", "student": "ada"}, result
    assert len(log) == 1 and "workers that are gone; sending it to any worker" in log[0], log
