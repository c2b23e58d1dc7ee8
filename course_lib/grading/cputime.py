"""CPU seconds of a process tree: the clock a grading time limit counts.

A wall-clock limit charges a student for the grader's load (other
submissions, other users of a shared worker): on a machine with a CPU hog
per core an honest notebook ran past its limit. The CPU time a process tree
uses does not depend on that load (nearly: caches and frequency scaling
move it by a few percent), so the grader limits CPU seconds and keeps a
generous wall-clock limit only as a backstop for code that waits.

psutil reads the counters (``/proc/<pid>/stat`` on Linux); a process that
leaves the tree (``setsid`` and a double fork, without a PID namespace) is
not counted after it leaves: ``sandbox.Isolation.describe`` says so.
"""
from __future__ import annotations

import psutil


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``, its live descendants and the children they reaped.

    0.0 when ``pid`` is gone. A child that exits between two reads can be
    missed by one read (its time moves to its parent's reaped total), which
    ``CpuClock`` smooths over by never going back.
    """
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in tree:
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class CpuClock:
    """CPU seconds a process tree used since this clock was made (never decreasing)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.start = tree_cpu_seconds(pid)
        self.peak = 0.0

    def seconds(self) -> float:
        self.peak = max(self.peak, tree_cpu_seconds(self.pid) - self.start)
        return self.peak
