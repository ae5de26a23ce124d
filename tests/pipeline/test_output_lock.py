"""One run per output folder: a second holder is refused at once, and a dead holder's lock is gone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tfxp.pipeline.output_lock import OutputBusyError, hold_output


def test_second_holder_is_refused_naming_the_first(tmp_path):
    with hold_output(tmp_path / "out"):
        with pytest.raises(OutputBusyError) as info:
            with hold_output(tmp_path / "out"):
                pass
    message = str(info.value)
    assert str(tmp_path / "out") in message and "pid" in message and "--output" in message
    with hold_output(tmp_path / "out"):  # released on exit
        pass


def test_a_killed_holder_leaves_no_lock(tmp_path):
    code = (
        "import os, signal, sys; from pathlib import Path; from tfxp.pipeline.output_lock import hold_output\n"
        f"with hold_output(Path({str(tmp_path / 'out')!r})):\n    os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    with hold_output(tmp_path / "out"):
        pass
