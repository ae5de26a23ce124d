"""tfxp.serving.batching's scheduling contract (TF Serving's basic_batch_scheduler.h), with a stand-in
servable (our layer) that records the batches it runs. A real model batched through real servers:
test_batching_and_logging.py."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tfxp.serving.batching import BatchingRunner
from tfxp.serving.config import BatchingSettings
from tfxp.serving.errors import Code, ServingError


class _Recorder:
    """A servable doubling its input `x`, recording each batch's rows; `gate` holds every run."""

    name, version = "m", 1

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set once a run has started

    def validate(self, signature, inputs):
        return {k: np.asarray(v) for k, v in inputs.items()}

    def execute(self, signature, arrays):
        self.entered.set()
        self.gate.wait(30)
        self.batches.append(len(arrays["x"]))
        return {"y": arrays["x"] * 2}


def _rows(*values: float) -> dict:
    return {"x": np.array(values, np.float32)}


def test_a_full_batch_runs_without_waiting_for_the_timeout():
    servable = _Recorder()
    runner = BatchingRunner(BatchingSettings(max_batch_size=4, batch_timeout_micros=30_000_000, num_batch_threads=1))
    started = time.monotonic()
    futures = [runner.submit(servable, "s", _rows(i)) for i in range(4)]
    outputs = [f.result(10)["y"] for f in futures]
    assert time.monotonic() - started < 5  # the 30 s timeout was not waited out
    assert servable.batches == [4]
    assert [list(o) for o in outputs] == [[0.0], [2.0], [4.0], [6.0]]  # split back in order


def test_a_lone_request_runs_at_its_timeout_and_an_overflowing_one_opens_the_next_batch():
    servable = _Recorder()
    runner = BatchingRunner(BatchingSettings(max_batch_size=4, batch_timeout_micros=200_000, num_batch_threads=1))
    started = time.monotonic()
    first = runner.submit(servable, "s", _rows(1, 2, 3))
    second = runner.submit(servable, "s", _rows(4, 5))  # 5 rows would overflow 4
    np.testing.assert_array_equal(first.result(10)["y"], [2, 4, 6])
    np.testing.assert_array_equal(second.result(10)["y"], [8, 10])
    assert servable.batches == [3, 2]
    assert time.monotonic() - started >= 0.2  # the second batch waited out its timeout, alone


def test_a_full_queue_is_resource_exhausted_and_what_was_queued_still_runs():
    servable = _Recorder()
    servable.gate.clear()  # the first batch blocks in the model; the rest wait in the queue
    settings = BatchingSettings(max_batch_size=2, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=2)
    runner = BatchingRunner(settings)
    running = runner.submit(servable, "s", _rows(0, 0))
    assert servable.entered.wait(10)  # off the queue, held in the model
    queued = [runner.submit(servable, "s", _rows(i)) for i in range(4)]  # 2 batches x 2 rows, in requests
    with pytest.raises(ServingError) as info:
        runner.submit(servable, "s", _rows(9))
    assert info.value.code is Code.RESOURCE_EXHAUSTED and "queue is full" in info.value.message
    servable.gate.set()
    assert running.result(10)["y"].tolist() == [0, 0]
    assert [f.result(10)["y"].tolist() for f in queued] == [[0], [2], [4], [6]]


def test_requests_it_does_not_batch_run_as_they_are():
    servable = _Recorder()
    runner = BatchingRunner(BatchingSettings(max_batch_size=4))
    assert runner.submit(servable, "s", _rows(1), output_filter=("y",)) is None
    assert runner.submit(servable, "s", {"x": np.float32(1)}) is None  # no dimension 0
    with pytest.raises(ServingError) as info:
        runner.submit(servable, "s", _rows(*range(5)))
    assert info.value.code is Code.INVALID_ARGUMENT and "larger than maximum input batch size 4" in info.value.message
