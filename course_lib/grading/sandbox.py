"""Run one command with limits, alone: the isolation a grading run needs and nbgrader lacks.

What is in force depends on the machine; ``isolation()`` finds out once and
``Isolation.describe()`` says it plainly, so no report claims more than ran:

- always: a whole-run limit on CPU time (the process tree is killed; CPU
  seconds, not wall-clock ones, so a grade does not depend on how busy the
  machine is), a wall-clock backstop ``wall_factor`` times longer, memory
  (``RLIMIT_DATA``: allocations past it fail with MemoryError), file size
  (``RLIMIT_FSIZE``), the disk space and number of files of its working
  folder (the runner stops a cell past ``disk_mb`` and ``max_files``; the
  run is killed past ``DISK_BACKSTOP`` times them), no core dumps,
  a scrubbed environment and a fresh working folder;
- where a memory cgroup can be made (``memory_cgroup.probe``: root on cgroup
  v1, or a delegated v2 folder): the memory of all the run's processes and
  its /tmp together (``total_memory_mb``), and every process of the run
  killed at the end, however it detached;
- as root with ``unshare`` and ``setpriv`` (Linux): a new network namespace
  with only loopback up (no network), a PID namespace (every process the
  submission starts dies with it, however it detached), a mount namespace
  where the course folder and the kit's assignment sources are empty
  tmpfs mounts, the interpreter, the kit and the data home are read-only,
  and ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are the run's own (what it
  writes there goes with it; it sees nothing the machine or another
  submission keeps there), and an unprivileged uid per worker slot with a
  process limit (``RLIMIT_NPROC``);
- otherwise: a new session whose process group is killed at the end; the
  grader's own uid (so files it can read, the submission can read), no
  network or process-count isolation. ``describe()`` lists what is missing.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import memory_cgroup
from .cputime import CpuClock

FIRST_SANDBOX_UID = 61000  # slot n runs as uid 61000 + n; no file on the machine is theirs
POLL_SECONDS = 0.25  # how often the CPU time of a running submission is read
DISK_POLL_SECONDS = 1.0  # how often the sandbox reads the size of a run's working folder
# The runner (execute.py) stops a cell whose files pass the limits within a quarter of a second, so the
# tests before it keep their points; the sandbox kills the whole run (no points) only past this many
# times the limits: what a kernel writes in that quarter second comes on top of them.
DISK_BACKSTOP = 4


@dataclass(frozen=True)
class Limits:
    """Per-submission limits: CPU seconds, MiB, and processes (threads count).

    ``cell_timeout`` and ``timeout`` count CPU seconds of the submission's
    processes (per cell: the kernel's tree; in all: every process of the
    run). Code that waits (``time.sleep``, a blocking read) uses no CPU; it is
    stopped by the wall clock at ``wall_factor`` times either limit.
    """

    cell_timeout: float = 60.0
    timeout: float = 300.0
    memory_mb: int = 4096  # per process (RLIMIT_DATA)
    total_memory_mb: int = 6144  # all the run's processes and its own /tmp together (a memory cgroup)
    max_output_mb: float = 10.0
    disk_mb: float = 512.0  # files in the working folder; also the size of its own /tmp, /var/tmp, /dev/shm
    max_files: int = 20_000  # files and folders in the working folder
    processes: int = 256
    wall_factor: float = 3.0

    def wall(self, cpu_seconds: float) -> float:
        """The wall-clock backstop for a limit of ``cpu_seconds``."""
        return cpu_seconds * self.wall_factor

    def __post_init__(self):
        if not self.wall_factor >= 1:
            raise ValueError(f"wall_factor must be at least 1 (the wall clock cannot run slower than "
                             f"the CPU clock of one process), got {self.wall_factor}")
        for name in ("cell_timeout", "timeout", "memory_mb", "total_memory_mb", "max_output_mb", "disk_mb",
                     "max_files", "processes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Isolation:
    namespaces: bool  # network, PID and mount namespaces, as root
    unprivileged_user: bool
    memory_cgroup: str = "not tried"  # why no run gets a memory cgroup ("" when each does)

    def describe(self) -> list[str]:
        """One line per protection: in force, or not and why."""
        lines = ["time limit per cell and per notebook: yes, in CPU seconds (wall clock only as a backstop)",
                 "memory limit per process (RLIMIT_DATA; the out-of-memory killer takes the submission's "
                 "processes first), output cap, disk space and files of the working folder: yes",
                 "memory of the whole run (all its processes and its /tmp): " + (
                     f"NOT limited ({self.memory_cgroup})" if self.memory_cgroup else "yes (a memory cgroup)")]
        if self.namespaces:
            lines += ["network: none (new network namespace, loopback only)",
                      "processes: PID namespace, all killed at the end; process limit per slot",
                      "course folder and assignment sources: hidden (empty tmpfs mounts)",
                      "/tmp, /var/tmp, /dev/shm: the submission's own, gone with it",
                      "interpreter, kit and data home (the zoo): read-only"]
        else:
            lines += ["network: NOT isolated (needs root and unshare)",
                      ("processes: process group killed at the end; a process that calls setsid can outlive "
                       "the grading" if self.memory_cgroup else
                       "processes: every process of the run's memory cgroup killed at the end") +
                      "; one that calls setsid is not counted in CPU time; no process-count limit",
                      "course folder: NOT hidden (the submission runs as the grader's user)",
                      "/tmp: shared with the machine (a submission can leave files there)"]
        lines.append("unprivileged user: " + ("yes, one uid per worker slot" if self.unprivileged_user
                                              else "NO (runs as the grader's user)"))
        return lines


@functools.lru_cache(maxsize=1)
def isolation() -> Isolation:
    """What this machine allows (tried once per process)."""
    cgroup = memory_cgroup.probe()
    cgroup = cgroup if isinstance(cgroup, str) else ""
    tools = all(shutil.which(t) for t in ("unshare", "setpriv", "ip"))
    if os.geteuid() != 0 or not tools or not sys.platform.startswith("linux"):
        return Isolation(False, False, cgroup)
    probe = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child", "--",
         "sh", "-c", "ip link set lo up && setpriv --reuid 61000 --regid 61000 --clear-groups true"],
        capture_output=True, timeout=30)
    ok = probe.returncode == 0
    return Isolation(ok, ok, cgroup)


def slot_uid(slot: int) -> int:
    return FIRST_SANDBOX_UID + slot


def _uid_in_use(uid: int, wait: float = 2.0) -> bool:
    """Whether processes of ``uid`` are still alive after up to ``wait`` seconds."""
    import psutil

    deadline = time.monotonic() + wait
    while True:
        alive = any(p.info["uids"] and p.info["uids"].real == uid for p in psutil.process_iter(["uids"]))
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


SLOT_LOCKS = Path(tempfile.gettempdir()) / f"course-grade-slots-{os.geteuid()}"
MAX_SLOTS = 1024


@contextlib.contextmanager
def claim_slot(slot: int | None = None):
    """Yield a worker slot no other grading on this machine holds (``slot`` given: that one, unlocked).

    Every grading thread or process (the local grader's, each Dask worker's)
    takes the lowest free slot, held by an ``flock`` on a file in
    ``SLOT_LOCKS``: two sandboxes never share a uid (whose process limit
    they would share), and a killed holder frees its slot with its process.
    A slot whose uid still has processes (a killed holder's fork bomb being
    torn down) is passed over: they would count against the next sandbox's
    process limit.
    """
    if slot is not None:
        yield slot
        return
    SLOT_LOCKS.mkdir(mode=0o700, exist_ok=True)
    for candidate in range(MAX_SLOTS):
        fd = os.open(SLOT_LOCKS / f"{candidate}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if isolation().unprivileged_user and _uid_in_use(slot_uid(candidate)):
            os.close(fd)
            continue
        try:
            yield candidate
        finally:
            os.close(fd)  # (closing drops the lock)
        return
    raise RuntimeError(f"all {MAX_SLOTS} grading slots of this machine are taken ({SLOT_LOCKS}); "
                       f"run fewer graders or workers at once")


def _set_limits(limits: Limits, cgroup: memory_cgroup.RunCgroup | None = None) -> None:
    """In the child before exec: the limits, death with the grader (Linux's PR_SET_PDEATHSIG), and first
    in line for the kernel's out-of-memory killer.

    RLIMIT_DATA bounds each process, not their sum: many processes that each
    stay under it can exhaust the machine's memory. The kernel then kills the
    process with the highest ``oom_score_adj`` first: a submission's (1000,
    inherited by every process it starts), never the grader or a Dask worker.
    Where the machine allows one, the run's memory cgroup bounds the sum
    (joined here, as root, before any of the submission's code runs).
    """
    if cgroup is not None:
        cgroup.join()
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a killed grader leaves no sandbox
        with open("/proc/self/oom_score_adj", "w") as adj:  # (raising it needs no privilege)
            adj.write("1000")
    memory = int(limits.memory_mb) << 20
    files = int(limits.max_output_mb * 4 + 256) << 20
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (files, files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    # a backstop per process for the grader's CPU watch, which stops the whole tree at limits.timeout
    cpu = int(limits.timeout * 1.5) + 10
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


@dataclass
class Outcome:
    returncode: int | None
    timed_out: bool
    seconds: float  # wall clock
    stderr: str
    clock: str = ""  # which limit stopped it: "cpu" or "wall" (timed_out), "disk" (its folder grew too large)
    cpu_seconds: float = 0.0
    memory_kills: int = 0  # processes the kernel killed for passing limits.total_memory_mb


def prepare_folder(folder: Path, slot: int) -> Path:
    """A fresh working folder only this slot's uid (and root) can enter."""
    folder.mkdir(parents=True, exist_ok=False)
    os.chmod(folder, 0o700)
    if isolation().unprivileged_user:
        os.chown(folder, slot_uid(slot), slot_uid(slot))
    return folder


def sandbox_env(folder: Path, extra: dict[str, str]) -> dict[str, str]:
    """A scrubbed environment: nothing from the grader's except PATH's Python."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(folder), "TMPDIR": str(folder), "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(folder / ".matplotlib"),
        "IPYTHONDIR": str(folder / ".ipython"), "JUPYTER_RUNTIME_DIR": str(folder / ".jupyter"),
        "JUPYTER_CONFIG_DIR": str(folder / ".jupyter"), "JUPYTER_DATA_DIR": str(folder / ".jupyter"),
        "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "COURSE_PROGRESS": "0",
    }
    env.update(extra)
    return env


def _closed_ancestor(path: Path) -> Path | None:
    """The highest folder above ``path`` that other users cannot enter, or None."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & 0o001:
            return parent
    return None


def expose_script(paths: list[Path], stage: Path) -> list[str]:
    """Shell lines (run as root in the mount namespace) that let the sandbox user reach ``paths``.

    A path below a closed folder (the interpreter of a pyenv under /root, say)
    is bind-mounted aside, the closed folder is covered by an empty tmpfs (so
    nothing else in it shows), and the path is mounted back at its own name.
    """
    lines, covered = [], set()
    plan = [(Path(p), _closed_ancestor(Path(p))) for p in paths]
    plan = [(p, a) for p, a in plan if a is not None]
    for i, (path, _) in enumerate(plan):
        lines += [f"mkdir -p {shlex.quote(str(stage / str(i)))}",
                  f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(stage / str(i)))}"]
    for i, (path, closed) in enumerate(plan):
        if closed not in covered:
            lines.append(f"mount -t tmpfs -o size=1m,mode=0755 tmpfs {shlex.quote(str(closed))}")
            covered.add(closed)
        lines += [f"mkdir -p {shlex.quote(str(path))}",
                  f"mount --bind {shlex.quote(str(stage / str(i)))} {shlex.quote(str(path))}"]
    return lines


def read_only_script(paths: list[Path], folder: Path) -> list[str]:
    """Shell lines (run as root in the mount namespace) that make ``paths`` read-only for the run.

    The interpreter, the kit and the data home are shared by every
    submission: one that could write there could change what the next
    student's notebook imports or loads (a zoo model), whatever the
    folders' permissions. A path that holds ``folder`` is left alone.
    """
    lines, own = [], Path(os.path.realpath(folder))
    for path in sorted({Path(os.path.realpath(p)) for p in paths}):
        if path == own or path in own.parents:
            continue
        quoted = shlex.quote(str(path))
        lines.append(f"{{ [ ! -d {quoted} ] || {{ mount --bind {quoted} {quoted} && "
                     f"mount -o remount,bind,ro {quoted}; }}; }}")
    return lines


def interpreter_paths() -> list[Path]:
    """What a Python process needs to reach: its real prefix, the venv's, and the kit's package.

    (An editable install's package lives in the clone, outside the venv.)
    """
    kit = Path(__file__).resolve().parents[1]
    return sorted({Path(os.path.realpath(sys.base_prefix)), Path(os.path.realpath(sys.prefix)), kit})


# Folders every user of a machine shares: each sandbox gets empty ones of its own.
SHARED_TEMPORARY = ("/tmp", "/var/tmp", "/dev/shm")
KEEP_FD = 9  # the descriptor that holds a shared folder open while it is covered


def private_temporary_script(keep: list[Path], size_mb: float) -> list[str]:
    """Shell lines (run as root in the mount namespace) that cover ``SHARED_TEMPORARY`` with empty tmpfs.

    Nothing a submission writes there outlives its run or reaches another
    submission (a planted ``/tmp/sitecustomize.py``, answers left for the next
    student), and it sees nothing the machine keeps there. Paths in ``keep``
    below a covered folder (the working folder, a clone and venv under /tmp)
    are mounted back at their own name, reached through a descriptor opened
    on the folder before it was covered (``--no-canonicalize``: mount must not
    resolve that path to the new, empty folder).
    """
    lines = []
    for shared in SHARED_TEMPORARY:
        if not os.path.isdir(shared):
            continue
        real = Path(os.path.realpath(shared))
        below = {Path(os.path.realpath(p)) for p in keep} - {real}
        below = sorted(p for p in below if real in p.parents and not any(q in p.parents for q in below))
        lines += [f"exec {KEEP_FD}<{shlex.quote(str(real))}",
                  f"mount -t tmpfs -o size={int(size_mb)}m,mode=1777 tmpfs {shlex.quote(str(real))}"]
        for path in below:
            inside = f"/proc/self/fd/{KEEP_FD}/{path.relative_to(real)}"
            lines += [f"mkdir -p {shlex.quote(str(path))}",
                      f"mount --no-canonicalize --rbind {shlex.quote(inside)} {shlex.quote(str(path))}"]
        lines.append(f"exec {KEEP_FD}<&-")
    return lines


def folder_usage(folder: Path, max_bytes: int, max_entries: int) -> tuple[int, int]:
    """(bytes on disk, entries) below ``folder``, counting stopped early once either passes its maximum.

    Links are not followed; a file's blocks count (a sparse file costs what it
    holds). No recursion, so nesting depth cannot stop the count.
    """
    used, entries, stack = 0, 0, [folder]
    while stack and used <= max_bytes and entries <= max_entries:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    info = entry.stat(follow_symlinks=False)
                    used += info.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except (FileNotFoundError, NotADirectoryError):  # removed while counting: it holds nothing now
            continue
    return used, entries


def folder_exceeds(folder: Path, max_bytes: float, max_entries: int) -> bool:
    """Whether ``folder`` holds more than ``max_bytes`` on disk or more than ``max_entries`` entries."""
    used, entries = folder_usage(folder, int(max_bytes), max_entries)
    return used > max_bytes or entries > max_entries


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _drain(proc: subprocess.Popen) -> bytes:
    """The rest of a finished or killed ``proc``'s stderr, waiting at most ``POLL_SECONDS`` for it.

    Without namespaces, a process that left the group (``setsid``) can hold
    the pipe open for ever; its output is then not read.
    """
    try:
        return proc.communicate(timeout=POLL_SECONDS)[1]
    except subprocess.TimeoutExpired:
        proc.stderr.close()
        proc.wait()
        return b"(stderr not read to its end: a process that left the sandbox's group held it open)"


def run_sandboxed(command: list[str], folder: Path, slot: int, limits: Limits,
                  hide: list[Path], env: dict[str, str], expose: list[Path] = ()) -> Outcome:
    """Run ``command`` in ``folder`` under ``limits``; every process it starts is gone on return.

    ``hide``: folders that show empty inside; ``expose``: folders the
    sandbox user must reach (besides the interpreter) even below a closed one.
    """
    iso = isolation()
    if iso.namespaces:
        uid = slot_uid(slot)
        # (in the run's own /tmp: not in its folder, whose files are counted against its disk limit)
        stage = Path(SHARED_TEMPORARY[0]) / ".course-stage"
        needed = interpreter_paths() + [Path(p) for p in expose]
        lines = ["ip link set lo up", *private_temporary_script([folder, *needed], limits.disk_mb),
                 f"mkdir -m 700 -p {shlex.quote(str(stage))}"]
        lines += expose_script(needed, stage)
        lines += read_only_script(needed, folder)
        # (a hidden folder below a closed one the exposures covered is gone already)
        lines += [f"{{ [ ! -d {shlex.quote(str(p))} ] || mount -t tmpfs -o size=1m,mode=0755 tmpfs "
                  f"{shlex.quote(str(p))}; }}" for p in hide if Path(p).is_dir()]
        script = " && ".join(lines) + (f" && exec setpriv --reuid {uid} --regid {uid} --clear-groups "
                                       f"--no-new-privs --inh-caps=-all --bounding-set=-all -- "
                                       f"{shlex.join(command)}")
        argv = ["unshare", "--net", "--pid", "--fork", "--mount", "--mount-proc", "--kill-child",
                "--", "sh", "-c", script]
    else:
        argv = command
    cgroup = None
    if not iso.memory_cgroup:
        parent, layout = memory_cgroup.probe()
        cgroup = memory_cgroup.RunCgroup.create(parent, layout, int(limits.total_memory_mb) << 20)
    start = next_disk_poll = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=lambda: _set_limits(limits, cgroup), start_new_session=True)
    except BaseException:
        if cgroup is not None:
            cgroup.remove()
        raise
    clock, cpu, memory_kills = "", CpuClock(proc.pid), 0
    try:
        while True:
            try:  # (communicate may be called again after its timeout; stderr keeps draining)
                _, stderr = proc.communicate(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.perf_counter()
            if cpu.seconds() > limits.timeout:
                clock = "cpu"
            elif now - start > limits.wall(limits.timeout):
                clock = "wall"
            elif now >= next_disk_poll:
                next_disk_poll = now + DISK_POLL_SECONDS
                if folder_exceeds(folder, DISK_BACKSTOP * limits.disk_mb * 2**20, DISK_BACKSTOP * limits.max_files):
                    clock = "disk"
            if clock or proc.poll() is not None:  # (exited, its stderr held open by a process it left)
                _kill_group(proc.pid)
                stderr = _drain(proc)
                break
    finally:
        _kill_group(proc.pid)  # whatever is left of the group (without namespaces or a cgroup: all there is)
        if cgroup is not None:
            memory_kills = cgroup.oom_kills()
            try:
                cgroup.remove()  # (kills every process still in it first, however it left the group)
            except OSError as err:  # a process the kernel could not kill yet: the grade stands
                logging.getLogger("course-grade").warning(
                    "could not remove the run's memory cgroup %s (%s); remove it with rmdir once it is empty",
                    cgroup.folder, err)
    return Outcome(proc.returncode, clock in ("cpu", "wall"), time.perf_counter() - start,
                   stderr.decode(errors="replace")[-4000:], clock, cpu.peak, memory_kills)
