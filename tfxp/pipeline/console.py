"""Keeping the console for our own output: what libraries print goes to a log file.

TensorFlow's C++ logger prints CUDA-registration errors on every import on a
CPU-only machine, the TFLite converter's MLIR passes log through absl's C++
logger (which ignores TF_CPP_MIN_LOG_LEVEL), Beam's worker processes inherit
the descriptor, and google-cloud packages emit FutureWarnings at import. Every
command that loads TensorFlow runs inside `library_output_to(log_file)`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path


def quiet_libraries() -> None:
    """TF's C++ log level to errors only; Python warnings into logging (and so the log file)."""
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.captureWarnings(True)
    warnings.simplefilter("default")


def route_library_logs(log_file: Path) -> logging.Handler:
    """Sends TF/TFX/Beam logging to a file; the console only gets our progress lines."""
    import absl.logging

    log_file.parent.mkdir(parents=True, exist_ok=True)
    logging.captureWarnings(True)
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    absl.logging.set_verbosity(absl.logging.INFO)
    absl.logging.get_absl_handler().setLevel(logging.CRITICAL + 1)
    return handler


@contextlib.contextmanager
def stderr_to_log(log_file: Path) -> Iterator[None]:
    """Sends file descriptor 2 to `log_file` for the body; `sys.stderr` stays the console.

    TensorFlow's C++ logger, the TFLite converter's MLIR passes and Beam's worker
    processes write to descriptor 2 directly, past Python's logging and
    TF_CPP_MIN_LOG_LEVEL. Our progress lines go through `sys.stderr`, which is
    pointed at a duplicate of the original descriptor.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    previous = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = previous
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def library_output_to(log_file: Path) -> Iterator[Path]:
    """Python logging, warnings and descriptor 2 go to `log_file` for the body; yields its path."""
    quiet_libraries()
    root = logging.getLogger()
    previous = (list(root.handlers), root.level)
    handler = route_library_logs(log_file)
    try:
        with stderr_to_log(log_file):
            yield log_file
    finally:
        # Give the process its logging back (matters when a command runs in-process, e.g. in tests).
        root.removeHandler(handler)
        handler.close()
        for existing in previous[0]:
            root.addHandler(existing)
        root.setLevel(previous[1])
