"""Grading on Dask: the kit's own ``LocalCluster``, or a scheduler the instructor runs.

``DaskExecutor`` sends each ``job.Job`` to a Dask worker, which runs
``job.grade_job`` in the same sandbox as the local grader (every limit of
``sandbox.py`` in force on the worker) and sends back plain data. The
coordinator (``batch.Grader``) alone writes files and the gradebook.

A worker killed mid-task (out of memory, a node lost) is replaced and its
task retried by Dask (on the kit's cluster, also when Dask gave up on its
nanny: ``DaskExecutor._keep_workers``); a task that has been on
``ALLOWED_FAILURES + 1`` dying workers is given up (Dask's ``KilledWorker``)
and recorded as ``crashed``.

Security: a Dask scheduler runs whatever any client that reaches it sends,
as the workers' user. The kit's ``LocalCluster`` speaks TLS with temporary
certificates (``Security.temporary``), so no other user of the machine can
send work to it; a scheduler address without TLS (``tcp://``, ``ws://``) is
refused unless the instructor passes ``insecure=True`` (``--insecure-scheduler``).
"""
from __future__ import annotations

import importlib.util
import logging
import time
import uuid
from typing import NamedTuple

from .job import Job, failure, grade_on_dask_worker, grader_failed

ALLOWED_FAILURES = 2  # dying workers a task may survive; the next death makes it `crashed`
# Dask's SpecCluster closes a nanny for good when its restarted worker has not registered again within
# `distributed.deploy.lost-worker-timeout` (15 s by default), which a loaded machine exceeds: once both
# nannies were closed that way, a batch waited for workers forever. The kit's LocalCluster waits longer.
LOST_WORKER_TIMEOUT = "10 minutes"
LOCAL_NO_WORKER_PATIENCE = 300.0  # seconds without a worker before a LocalCluster batch stops
POLL_SECONDS = 5.0
# A job is stuck when it runs on a worker longer than its wall-clock limit plus STARTUP_SECONDS (the
# worker's own work around it: files, kernel start), or when for LOST_SECONDS the scheduler holds it
# nowhere it can finish (unknown, finished without telling this client, sent to a worker that runs
# nothing). It is sent once more (its worker replaced, on the kit's cluster); the LOST_LIMIT-th time
# it is recorded as a grader-error, so a batch never waits forever.
STARTUP_SECONDS = 120.0
LOST_SECONDS = 60.0
LOST_LIMIT = 2
QUIET_SECONDS = 300.0  # between two "no worker" messages
# A job sent again "to a worker other than the one it timed out on" names the workers alive then, loosely
# (`allow_other_workers`). Dask honours the looseness only when it places a task: one that waited in
# `no-worker` (every worker lost for a moment) is given only to a worker of that list when workers join,
# and new workers have new addresses (dask/distributed#7346), so it waited for ever (stop 34's CI
# hang). Such a job is sent again without restriction; that is not counted as a loss.


class TaskView(NamedTuple):
    """Where the scheduler has one task (``DaskExecutor._scheduler_view``)."""

    state: str               # Dask's task state: "processing", "no-worker", "memory"...
    worker: str              # the worker it was sent to ("" when none)
    seconds: float | None    # how long that worker has been running it (None: not running yet)
    idle: bool               # that worker runs nothing at all (as of its last heartbeat)
    gone: bool               # it may run only on workers, none of which the scheduler has now


class NoWorkers(RuntimeError):
    """The scheduler has had no worker for longer than the executor's patience."""


def _describe(view: TaskView | str | None) -> str:
    """A scheduler view of one task (``DaskExecutor._scheduler_view``) in words."""
    if view is None:
        return "not held by the scheduler"
    if isinstance(view, str):
        return view
    state, worker, seconds, idle, gone = view
    where = f" on {worker}" if worker else ""
    running = f", running for {seconds:.0f} s" if seconds is not None else ", waiting" if worker else ""
    return (f"{state}{where}{running}{' (the worker runs nothing)' if idle else ''}"
            f"{' (kept for workers that are gone)' if gone else ''}")

SECURE_SCHEMES = ("tls", "wss")
PLAIN_SCHEMES = ("tcp", "ws")


def check_address(address: str, insecure: bool = False) -> None:
    """Raise ValueError for a scheduler address the kit will not send submissions to."""
    scheme = address.split("://", 1)[0] if "://" in address else "tcp"
    if scheme in SECURE_SCHEMES:
        return
    if scheme not in PLAIN_SCHEMES:
        raise ValueError(f"scheduler address {address!r}: unknown scheme {scheme!r}; use "
                         f"tls://HOST:PORT (with --tls-ca-file, --tls-cert and --tls-key)")
    if not insecure:
        raise ValueError(
            f"scheduler address {address!r} has no TLS: anyone who can reach that port can run code on "
            f"its workers, and read every submission and hidden test sent there. Start the scheduler and "
            f"workers with TLS certificates and pass tls://HOST:PORT with --tls-ca-file, --tls-cert and "
            f"--tls-key, or, on a network only you can reach, pass --insecure-scheduler")


def tls_security(ca_file: str, cert: str, key: str):
    """A ``distributed.security.Security`` from certificate files (every one required)."""
    from distributed.security import Security

    missing = [flag for flag, value in (("--tls-ca-file", ca_file), ("--tls-cert", cert), ("--tls-key", key))
               if not value]
    if missing:
        raise ValueError(f"a tls:// scheduler needs {', '.join(missing)} (the CA that signed the "
                         f"scheduler's certificate, and this client's certificate and key)")
    return Security(tls_ca_file=ca_file, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


class DaskExecutor:
    """Grading jobs on Dask workers; the same interface as ``batch.LocalExecutor``.

    ``task``: the function a worker runs on a job (default
    ``job.grade_on_dask_worker``; the tests pass one that kills its worker).
    ``patience``: seconds with no worker at all before ``next_done`` raises
    ``NoWorkers`` (None: wait, saying so every ``QUIET_SECONDS``, as a
    cluster whose workers queue on SLURM may need); the batch is resumable.
    ``settings``: a ``dask.config.set`` kept in force until ``close``.
    """

    def __init__(self, client, cluster=None, task=grade_on_dask_worker, patience: float | None = None,
                 settings=None, log=None):
        self.client, self.cluster, self.task = client, cluster, task
        self.patience, self.settings = patience, settings
        self.log = log or logging.getLogger(__name__).warning
        self.pending: dict[str, object] = {}  # key -> future
        self.jobs: dict[str, Job] = {}
        self.suspect: dict[str, tuple[str, float]] = {}  # key -> (why it may be lost, since when)
        self.lost: dict[tuple[str, str, int], int] = {}  # (student, notebook, attempt) -> times lost
        self.address = client.scheduler.address
        self.where = f"Dask scheduler {self.address}"
        workers = len(client.scheduler_info()["workers"])
        self.where += f" ({workers} worker{'s' * (workers != 1)} now)"
        if cluster is None or getattr(cluster, "dashboard_link", None):
            try:
                self.where += f"; dashboard {client.dashboard_link}"
            except (KeyError, AttributeError):  # a scheduler without the dashboard service
                pass

    @classmethod
    def local(cls, workers: int, task=grade_on_dask_worker, worker_options: dict | None = None) -> DaskExecutor:
        """A ``LocalCluster`` of ``workers`` one-thread worker processes, TLS on loopback.

        ``worker_options``: more keyword arguments for each worker (Dask's
        ``preload``, ``resources``, ``env``...).
        """
        import dask
        from distributed import Client, LocalCluster
        from distributed.security import Security

        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        dashboard = ":0" if importlib.util.find_spec("bokeh") else None  # the dashboard needs bokeh
        # One task per worker thread at a time: a dying worker takes only its own job's blame. No work
        # stealing: it would move a re-run (loosely restricted to the other workers) back to the first.
        # The lost-worker timeout is read when a worker dies, so it stays set until `close`.
        settings = dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                                    "distributed.scheduler.worker-saturation": 1.0,
                                    "distributed.scheduler.work-stealing": False,
                                    "distributed.deploy.lost-worker-timeout": LOST_WORKER_TIMEOUT})
        try:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   security=Security.temporary(), host="127.0.0.1",
                                   dashboard_address=dashboard, memory_limit=0,  # the sandbox limits memory
                                   silence_logs=logging.ERROR, **(worker_options or {}))
        except BaseException:
            settings.__exit__(None, None, None)
            raise
        return cls(Client(cluster), cluster, task, patience=LOCAL_NO_WORKER_PATIENCE, settings=settings)

    @classmethod
    def connect(cls, address: str, insecure: bool = False, security=None,
                task=grade_on_dask_worker) -> DaskExecutor:
        """A client of a running scheduler (see ``check_address``)."""
        from distributed import Client

        check_address(address, insecure)
        return cls(Client(address, security=security), None, task)

    def capacity(self) -> int:
        """Jobs that can run at once: the worker threads the scheduler knows now (a cluster may grow)."""
        return sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values())

    def submit(self, job: Job, avoid: str = "") -> None:
        """Send ``job`` to a worker, to one other than ``avoid`` where there is one.

        The restriction is loose (a job whose other workers died runs where
        it can; where Dask keeps it for them, ``next_done`` sends it to any
        worker), and a scheduler with work stealing may move it anyway; the
        kit's ``LocalCluster`` steals no work.
        """
        others = [w for w in self.client.scheduler_info()["workers"] if w != avoid] if avoid else []
        key = f"grade-{job.student}-{job.stem}-{job.attempt}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(self.task, job, key=key, pure=False, retries=0,
                                    workers=others or None, allow_other_workers=bool(others))
        self.jobs[future.key] = job
        self.pending[future.key] = future

    def __len__(self) -> int:
        return len(self.jobs)

    def _keep_workers(self) -> None:
        """On the kit's cluster, start a worker again wherever Dask closed a nanny for good.

        A ``SpecCluster`` closes a nanny whose restarted worker has not come back
        within the lost-worker timeout and forgets it, but keeps its place in
        ``worker_spec``; scaling to the same size starts a new one there. (A
        scheduler the instructor runs keeps its own workers.)
        """
        spec, running = getattr(self.cluster, "worker_spec", None), getattr(self.cluster, "workers", None)
        if spec is None or running is None:
            return
        closed = set(spec) - set(running)
        if closed:
            self.log(f"Dask closed the nanny of worker {', '.join(map(str, sorted(closed)))} for good (its "
                     f"worker did not come back); starting a new one")
            self.cluster.scale(len(spec))

    def _scheduler_view(self) -> dict:
        """Per pending key: None (the scheduler does not hold it) or its ``TaskView``."""

        def view(dask_scheduler, keys):  # (nested: pickled by value, the scheduler needs no course_lib)
            out = {}
            for key in keys:
                ts = dask_scheduler.tasks.get(key)
                ws = ts.processing_on if ts is not None else None
                out[key] = None if ts is None else (
                    ts.state, ws.address if ws else "",
                    next((s for t, s in ws.executing.items() if t is ts), None) if ws else None,
                    not ws.executing if ws else False,
                    bool(ts.worker_restrictions)
                    and not any(w in dask_scheduler.workers for w in ts.worker_restrictions))
            return out

        views = self.client.run_on_scheduler(view, keys=list(self.pending))  # plain tuples: no course_lib there
        return {key: None if v is None else TaskView(*v) for key, v in views.items()}

    def describe_pending(self) -> list[str]:
        """One line per job not yet done: its student, and where the scheduler has it now."""
        views = self._scheduler_view()
        return [f"{job.student}/{job.stem} (attempt {job.attempt}): {_describe(views.get(key, '?'))}"
                for key, job in self.jobs.items()]

    def _stuck(self, key: str, view: TaskView | None, now: float) -> str:
        """Why the job under ``key`` will not finish by itself ("" while nothing says so)."""
        job = self.jobs[key]
        if view is not None and view.state == "processing" and view.seconds is not None:
            limit = job.limits.wall(job.limits.timeout) + STARTUP_SECONDS
            return f"running on {view.worker} for {view.seconds:.0f} s, past its limits ({limit:g} s)" \
                if view.seconds > limit else ""
        if view is None:
            reason = "the scheduler does not hold it"
        elif view.state in ("memory", "erred"):
            reason = f"{view.state} on the scheduler, but no answer reached this client"
        elif view.state == "processing" and view.idle:
            reason = f"sent to {view.worker}, which runs nothing"
        else:
            self.suspect.pop(key, None)
            return ""
        first = self.suspect.setdefault(key, (reason, now))
        if first[0] != reason:
            self.suspect[key] = (reason, now)
            return ""
        return f"{reason} ({now - first[1]:.0f} s)" if now - first[1] > LOST_SECONDS else ""

    def _withdraw(self, key: str) -> Job:
        """Cancel the future of the job under ``key`` and forget it; return the job (to send again)."""
        job, future = self.jobs.pop(key), self.pending.pop(key)
        self.suspect.pop(key, None)
        future.cancel()
        return job

    def _give_up_or_resend(self, key: str, why: str, view: TaskView | None):
        """Drop a stuck job's future; send the job again, or, the second time, return its failure."""
        job = self._withdraw(key)
        worker = view.worker if view else ""
        if worker and view.seconds is not None and self.cluster is not None:  # a thread cannot be stopped: its
            restarted = self.client.restart_workers([worker], raise_for_error=False)  # process is replaced
            if restarted.get(worker) != "OK":
                self.log(f"  could not restart the Dask worker {worker}: {restarted.get(worker)}")
        times = self.lost[(job.student, job.name, job.attempt)] = self.lost.get(
            (job.student, job.name, job.attempt), 0) + 1
        if times >= LOST_LIMIT:
            return job, failure(job, "grader-error", f"the Dask cluster lost this submission {times} times "
                                                     f"(last: {why}); fix the workers and run --regrade")
        self.log(f"  {job.student}/{job.stem}: stuck on Dask ({why}); sending it again")
        self.submit(job, avoid=worker)
        return None

    def _send_anywhere(self, key: str) -> None:
        """Send a job that waits for workers that are gone again, to any worker."""
        job = self._withdraw(key)
        self.log(f"  {job.student}/{job.stem}: waited on Dask for workers that are gone; sending it to any worker")
        self.submit(job)

    def next_done(self) -> tuple[Job, dict]:
        """The next finished job and its result (a stuck or lost job is sent once more, then failed).

        Raises ``NoWorkers`` past ``patience`` with no worker at all.
        """
        from distributed import wait
        from distributed.scheduler import KilledWorker

        alone_since = said = None
        while True:
            try:
                done, _ = wait(list(self.pending.values()), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
                break
            except TimeoutError:
                pass
            now = time.monotonic()
            self._keep_workers()
            if self.client.scheduler_info()["workers"]:
                alone_since = said = None
                views = self._scheduler_view()
                for key in list(self.pending):
                    view = views.get(key)
                    if view is not None and view.state == "no-worker" and view.gone:
                        self._send_anywhere(key)
                        continue
                    why = self._stuck(key, view, now)
                    given_up = self._give_up_or_resend(key, why, view) if why else None
                    if given_up:
                        return given_up
                continue
            self.suspect.clear()
            alone_since = alone_since or now
            if self.patience is not None and now - alone_since > self.patience:
                raise NoWorkers(
                    f"the Dask scheduler {self.address} has had no worker for {now - alone_since:.0f} s with "
                    f"{len(self.pending)} submissions waiting; nothing graded so far is lost: start workers "
                    f"(or fix what stops them, in their logs) and run the same command again to resume")
            if said is None or now - said > QUIET_SECONDS:
                said = now
                self.log(f"no Dask worker for {now - alone_since:.0f} s; waiting for workers to join "
                         f"the scheduler {self.address}")
        future = next(iter(done))
        del self.pending[future.key]
        self.suspect.pop(future.key, None)
        job = self.jobs.pop(future.key)
        try:
            return job, future.result()
        except KilledWorker:
            times = f"{ALLOWED_FAILURES + 1} times" if self.cluster is not None else "each time it ran"
            return job, failure(job, "crashed", f"the Dask worker grading this submission died {times} "
                                                f"(more than the scheduler's allowed-failures); it is given up")
        except Exception as err:  # noqa: BLE001 - the task failed outside grade_job's guard: this row only
            return job, failure(job, "grader-error", grader_failed(err))
        finally:
            future.release()

    def close(self) -> None:
        try:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            if self.settings is not None:
                self.settings.__exit__(None, None, None)
                self.settings = None
