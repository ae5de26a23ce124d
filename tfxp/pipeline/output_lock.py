"""One `tfxp run` per output folder at a time.

Two runs on one `--output` share the ML Metadata file, the pipeline root and the
serving base path: both would push, and both summaries would name the same
version. An exclusive `flock` on `<output>/.tfxp-run.lock` refuses the second
run at once; the kernel releases it when the holder exits, however it exits
(SIGKILL included), so a crashed run never leaves the output locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".tfxp-run.lock"


class OutputBusyError(RuntimeError):
    """Another process holds the output folder's lock."""


@contextlib.contextmanager
def hold_output(output: Path) -> Iterator[Path]:
    """Holds the output folder's lock for the body. Raises OutputBusyError naming the holder."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise OutputBusyError(
                f"{output} is in use by another tfxp run ({holder}); wait for it to finish or use another --output"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
