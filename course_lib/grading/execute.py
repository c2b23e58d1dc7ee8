"""Run one notebook with nbclient and turn every way it can fail into a status.

Used by ``course grade`` inside the sandbox (``python -m
course_lib.grading.execute IN OUT STATUS ...``). Errors in a cell are kept
as that cell's output and the next cells still run (a broken answer to one
question costs that question only). The run stops, and says why, when a cell
exceeds its time (``timeout``: CPU seconds of the kernel and every process it
started, or, for a cell that waits, ``--wall-factor`` times as many seconds
of wall clock), the outputs exceed their cap or the files in the working
folder theirs (``output``),
the kernel dies (``crashed``) or a cell runs out of memory (``memory``: the
kernel survives a ``MemoryError``, so the run goes on and reports it).

nbclient raises ``CellTimeoutError`` and ``DeadKernelError`` outside
papermill's ``PapermillExecutionError``, keeps every output in memory
without a cap, and times cells by the wall clock only; all three are
handled here.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # jsonschema (under nbformat) imports rfc3987_syntax when installed, which
    # builds a grammar for 0.75 s at import; the runner validates no IRIs, and
    # it starts twice per submission, so it goes without.
    sys.modules.setdefault("rfc3987_syntax", None)

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellTimeoutError, DeadKernelError  # noqa: E402

from course_lib.grading.cputime import CpuClock  # noqa: E402
from course_lib.grading.sandbox import folder_exceeds  # noqa: E402

MEMORY_MARKS = ("MemoryError", "can't allocate memory", "Cannot allocate memory", "std::bad_alloc")


class OutputLimitExceeded(RuntimeError):
    """The cell's outputs passed the cap given to ``CappedClient``."""


def _size(content: dict) -> int:
    size = len(content.get("text", ""))
    for value in (content.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(json.dumps(value))
    size += sum(len(line) for line in content.get("traceback", []))
    return size


class CappedClient(NotebookClient):
    """An nbclient that stops a cell past ``cell_cpu_seconds`` of CPU, ``max_output_bytes`` of output, or files.

    Output past the cap is dropped (so the runner's memory stays bounded)
    and the kernel is interrupted; the run then stops with ``OutputLimitExceeded``.
    A kernel that ignores the interrupt runs on until a time limit stops it.
    A cell whose kernel tree used more CPU seconds than its limit has its
    kernel killed (``cpu_exceeded_cell`` says which), as has a cell after
    which ``folder`` holds more than ``max_disk_bytes`` or ``max_files``
    (``disk_exceeded_cell``; read every ``DISK_POLL_SECONDS``); nbclient's
    own ``timeout`` stays the wall-clock backstop.
    """

    DISK_POLL_SECONDS = 0.25

    def __init__(self, nb, max_output_bytes: int, cell_cpu_seconds: float | None = None, folder: str | None = None,
                 max_disk_bytes: int | None = None, max_files: int | None = None, **kwargs):
        super().__init__(nb, **kwargs)
        self.max_output_bytes = max_output_bytes
        self.cell_cpu_seconds = cell_cpu_seconds
        self.folder, self.max_disk_bytes, self.max_files = folder, max_disk_bytes, max_files
        self.output_bytes = 0
        self.flooded_cell: int | None = None
        self.cpu_exceeded_cell: int | None = None
        self.disk_exceeded_cell: int | None = None

    def process_message(self, msg, cell, cell_index):
        if msg.get("msg_type") in ("stream", "display_data", "execute_result", "update_display_data"):
            self.output_bytes += _size(msg.get("content", {}))
        if self.output_bytes <= self.max_output_bytes:
            return super().process_message(msg, cell, cell_index)
        if self.flooded_cell is None:
            self.flooded_cell = cell_index
            interrupted = self.km.interrupt_kernel()
            if asyncio.iscoroutine(interrupted):
                asyncio.ensure_future(interrupted)
        return None

    def _kernel_pid(self) -> int:
        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        if pid is None:
            raise RuntimeError("the kernel's pid is unknown (not a local kernel): cannot watch its limits")
        return pid

    @staticmethod
    def _kill_tree(pid: int) -> None:
        import psutil

        try:
            kernel = psutil.Process(pid)
            for process in [*kernel.children(recursive=True), kernel]:
                process.kill()
        except psutil.NoSuchProcess:
            pass  # it died on its own meanwhile; nbclient reports the dead kernel either way

    async def _watch_cpu(self, cell_index: int) -> None:
        """Kill the kernel's tree once this cell has used more than its CPU seconds."""
        pid = self._kernel_pid()
        clock = CpuClock(pid)
        while clock.seconds() <= self.cell_cpu_seconds:
            await asyncio.sleep(0.1)
        self.cpu_exceeded_cell = cell_index
        self._kill_tree(pid)

    async def _watch_disk(self, cell_index: int) -> None:
        """Kill the kernel's tree once the working folder holds more than its bytes or files."""
        pid = self._kernel_pid()
        while not folder_exceeds(Path(self.folder), self.max_disk_bytes, self.max_files):
            await asyncio.sleep(self.DISK_POLL_SECONDS)
        self.disk_exceeded_cell = cell_index
        self._kill_tree(pid)

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        watches = []
        if cell.cell_type == "code" and cell.source.strip():
            if self.cell_cpu_seconds is not None:
                watches.append(asyncio.ensure_future(self._watch_cpu(cell_index)))
            if self.folder is not None:
                watches.append(asyncio.ensure_future(self._watch_disk(cell_index)))
        try:
            result = await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            for watch in watches:
                watch.cancel()
        if self.flooded_cell is not None:
            raise OutputLimitExceeded(
                f"cell {self.flooded_cell} printed more than {self.max_output_bytes / 2**20:.1f} MB")
        return result


def memory_error_in(nb) -> int | None:
    """Index of the first cell whose outputs say memory ran out, or None.

    Looks at the cell's error and at its stderr: when a cell floods its output,
    the kernel's output thread can be the one to run out of memory, and its
    traceback (ending in ``MemoryError``) reaches only stderr.
    """
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                said = [f"{out.get('ename')}: {out.get('evalue')}"]
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out.get("text", "")
                lines = ("".join(text) if isinstance(text, list) else text).splitlines()
                said = [line for line in lines if line.strip().startswith(MEMORY_MARKS)  # a traceback's last line
                        or "[Errno 12]" in line]  # ENOMEM
            else:
                continue
            if any(mark in line for line in said for mark in MEMORY_MARKS):
                return i
    return None


def run(nb, cell_timeout: float, max_output_bytes: int, cwd: str, wall_factor: float = 3.0,
        max_disk_bytes: int | None = None, max_files: int | None = None) -> dict:
    """Execute ``nb`` in place; returns ``{"status": ..., "reason": ..., "clock": ...}``.

    ``cell_timeout``: CPU seconds per cell; ``clock`` is "cpu" or "wall" for
    a ``timeout`` (which limit stopped it), else "". ``max_disk_bytes`` and
    ``max_files``: what ``cwd`` may hold (None: not watched).
    """
    watched = cwd if max_disk_bytes is not None and max_files is not None else None
    client = CappedClient(nb, max_output_bytes, cell_cpu_seconds=cell_timeout, folder=watched,
                          max_disk_bytes=max_disk_bytes, max_files=max_files,
                          timeout=cell_timeout * wall_factor, allow_errors=True,
                          kernel_name="python3", resources={"metadata": {"path": cwd}},
                          record_timing=False, shutdown_kernel="immediate")
    status, reason, clock = "ok", "", ""
    try:
        client.execute()
    except CellTimeoutError:
        if client.flooded_cell is not None:
            status, reason = "output", f"cell {client.flooded_cell} printed more than the output cap"
        else:
            status, reason, clock = "timeout", (f"a cell ran longer than {cell_timeout * wall_factor:g} s of "
                                                f"wall clock (the backstop for code that waits)"), "wall"
    except OutputLimitExceeded as err:
        status, reason = "output", str(err)
    except DeadKernelError as err:
        if client.flooded_cell is not None:
            status, reason = "output", f"cell {client.flooded_cell} printed more than the output cap"
        elif client.cpu_exceeded_cell is not None:
            status, reason, clock = "timeout", (f"cell {client.cpu_exceeded_cell} used more than "
                                                f"{cell_timeout:g} s of CPU time"), "cpu"
        elif client.disk_exceeded_cell is not None:
            status, reason = "output", (f"cell {client.disk_exceeded_cell} left more than "
                                        f"{max_disk_bytes / 2**20:g} MiB or {max_files} files in the folder")
        else:
            status, reason = "crashed", f"the kernel died ({err})"
    if status == "ok":
        cell = memory_error_in(nb)
        if cell is not None:
            status, reason = "memory", f"cell {cell} ran out of memory"
    return {"status": status, "reason": reason, "clock": clock}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("output")
    parser.add_argument("status")
    parser.add_argument("--cell-timeout", type=float, default=60)
    parser.add_argument("--max-output-bytes", type=int, default=10 * 2**20)
    parser.add_argument("--wall-factor", type=float, default=3.0)
    parser.add_argument("--max-disk-bytes", type=int, default=None)
    parser.add_argument("--max-files", type=int, default=None)
    args = parser.parse_args(argv)
    nb = nbformat.read(args.notebook, as_version=4)
    result = run(nb, args.cell_timeout, args.max_output_bytes, os.getcwd(), args.wall_factor,
                 args.max_disk_bytes, args.max_files)
    nbformat.write(nb, args.output)
    Path(args.status).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
