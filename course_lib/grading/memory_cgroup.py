"""A whole run's memory limit: one Linux memory cgroup per sandboxed run.

``RLIMIT_DATA`` (``sandbox._set_limits``) bounds each process of a run, not
their sum: a submission that starts many processes, or fills its own tmpfs
``/tmp``, can still exhaust the machine. A memory cgroup bounds them all
together. Past its limit the kernel reclaims what it can, then kills a
process of the run (never one outside it) and counts the kill, so the grade
can say ``memory``. The cgroup also knows every process of the run, however
it detached, so none outlives it.

Written by hand: the kit needs four files of one folder, and the Python
libraries for cgroups (cgroupspy, libcgroup's bindings) are unmaintained or
v1-only. Version 1 (the ``memory`` controller's own hierarchy) and version 2
(a unified hierarchy whose cgroup lists ``memory`` in
``cgroup.subtree_control``) differ only in file names (``Layout``). Runs'
cgroups are made below the grader's own cgroup, or below ``COURSE_GRADE_CGROUP``
when set (an administrator's delegated folder). Where none can be made
(no root, v2 without delegation), ``probe()`` says why and the sandbox
reports that the total is not limited.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ENV = "COURSE_GRADE_CGROUP"
PREFIX = "course-grade-"  # + the grader's pid + "-" + a random tag


@dataclass(frozen=True)
class Layout:
    """The file names of one cgroup version."""

    version: int
    limit: str  # bytes the run's processes may hold
    swap: str  # v1: memory + swap (set to the limit); v2: swap alone (set to 0)
    events: str  # holds the line "oom_kill <count>"


V1 = Layout(1, "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control")
V2 = Layout(2, "memory.max", "memory.swap.max", "memory.events")


class CgroupUnavailable(RuntimeError):
    """No memory cgroup can be made here; the message says why and what would allow one."""


def own_cgroup(proc_cgroup: str, mountinfo: str) -> tuple[Path, Layout]:
    """The folder of this process's memory cgroup, and its version.

    Args:
        proc_cgroup: the text of ``/proc/self/cgroup``.
        mountinfo: the text of ``/proc/self/mountinfo``.

    A v1 ``memory`` hierarchy wins over v2 (on a hybrid machine the memory
    controller is in only one of them, and it is v1's when v1 mounts it).
    """
    paths = {}  # controller list ("" for v2) -> path inside the hierarchy
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in (parts[1].split(",") if parts[1] else [""]):
                paths[controller] = parts[2]
    mounts = []  # (version, mount root inside the hierarchy, mount point)
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup" and "memory" in tail[2].split(","):
            mounts.append((1, fields[3], fields[4]))
        elif tail[0] == "cgroup2":
            mounts.append((2, fields[3], fields[4]))
    for version, root, point in sorted(mounts):
        inside = paths.get("memory" if version == 1 else "")
        if inside is None:
            continue
        relative = os.path.relpath(inside, root)
        if relative.startswith(".."):
            continue  # this mount shows another part of the hierarchy
        folder = Path(_unescape(point)) / ("" if relative == "." else relative)
        return folder, (V1 if version == 1 else V2)
    raise CgroupUnavailable("no cgroup memory controller is mounted (a v1 'memory' hierarchy or cgroup2)")


def _unescape(path: str) -> str:
    """mountinfo writes a space as \\040 (and tab, newline, backslash likewise)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _layout_of(folder: Path) -> Layout:
    return V1 if (folder / V1.limit).exists() else V2


@functools.lru_cache(maxsize=1)
def probe() -> tuple[Path, Layout] | str:
    """(the folder runs' cgroups go in, its layout), or why there is none. Tried once per process."""
    if not sys.platform.startswith("linux"):
        return "memory cgroups are Linux's"
    try:
        configured = os.environ.get(CGROUP_ENV)
        if configured:
            parent = Path(configured)
            if not parent.is_dir():
                raise CgroupUnavailable(f"{CGROUP_ENV}={configured} is not a folder; point it at a cgroup "
                                        "folder the grader may create cgroups in, or unset it")
            layout = _layout_of(parent)
        else:
            parent, layout = own_cgroup(Path("/proc/self/cgroup").read_text(),
                                        Path("/proc/self/mountinfo").read_text())
        if layout is V2 and "memory" not in (parent / "cgroup.subtree_control").read_text().split():
            raise CgroupUnavailable(
                f"cgroup v2: the grader's cgroup {parent} does not give the memory controller to cgroups "
                f"below it; set {CGROUP_ENV} to a folder whose cgroup.subtree_control lists memory "
                "(e.g. one that systemd delegates: systemd-run -p Delegate=yes ...)")
        test = RunCgroup.create(parent, layout, 64 << 20)
        test.remove()
        return parent, layout
    except (CgroupUnavailable, OSError) as err:
        return str(err)


@dataclass
class RunCgroup:
    """One run's memory cgroup: made before the run, joined by its first process, removed after it."""

    folder: Path
    layout: Layout

    @classmethod
    def create(cls, parent: Path, layout: Layout, limit_bytes: int) -> "RunCgroup":
        """A new cgroup below ``parent`` that lets its processes hold ``limit_bytes`` in all (swap included)."""
        folder = parent / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        run = cls(folder, layout)
        try:
            (folder / layout.limit).write_text(str(limit_bytes))
            swap = folder / layout.swap
            if swap.exists():  # (absent when the kernel keeps no swap accounting: then there is none to bound)
                swap.write_text(str(limit_bytes if layout is V1 else 0))
        except OSError:
            run.remove()
            raise
        return run

    def join(self) -> None:
        """Move the calling process in (its children inherit it). Call in the child before exec."""
        with open(self.folder / "cgroup.procs", "w") as procs:
            procs.write(str(os.getpid()))

    def pids(self) -> list[int]:
        text = (self.folder / "cgroup.procs").read_text()
        return [int(p) for p in text.split()]

    def oom_kills(self) -> int:
        """How many of the run's processes the kernel killed for passing the limit."""
        text = (self.folder / self.layout.events).read_text()
        match = re.search(r"^oom_kill (\d+)$", text, flags=re.M)
        return int(match.group(1)) if match else 0

    def kill_all(self, patience: float = 5.0) -> None:
        """SIGKILL every process in the cgroup until none is left (a fork racing the kill is caught next round)."""
        deadline = time.monotonic() + patience
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill what is left in it and remove it (a cgroup folder is removed with rmdir, its files with it)."""
        if self.folder.exists():
            self.kill_all()
            self.folder.rmdir()


def left_by_a_gone_grader(name: str, prefix: str = PREFIX) -> bool:
    """Whether ``name`` is ``prefix`` + a pid + "-" + a tag, and that pid is not alive.

    A grader names its work folders and cgroups so; a reused pid keeps its
    leftovers until the sweep after that process ends.
    """
    import psutil

    match = re.fullmatch(rf"{re.escape(prefix)}(\d+)-\w+", name)
    return bool(match) and not psutil.pid_exists(int(match.group(1)))


def remove_abandoned(parent: Path | None = None) -> list[str]:
    """Remove the runs' cgroups of graders that are gone (a killed grader cannot). Returns what it removed."""
    if parent is None:
        found = probe()
        if isinstance(found, str):
            return []
        parent = found[0]
    removed = []
    for folder in parent.glob(f"{PREFIX}*-*"):
        if folder.is_dir() and left_by_a_gone_grader(folder.name):
            try:
                RunCgroup(folder, _layout_of(folder)).remove()
            except OSError as err:  # a process of it not dead yet: the next grader's sweep tries again
                logging.getLogger("course-grade").warning("could not remove %s: %s", folder, err)
                continue
            removed.append(str(folder))
    return removed
