"""Server-side batching with TF Serving's parameters (max_batch_size, batch_timeout_micros,
num_batch_threads, max_enqueued_batches).

Concurrent requests for the same model version and signature are merged along
dimension 0, run once, and split back. A merged batch holds whole requests only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tfxp.serving.config import BatchingSettings
from tfxp.serving.errors import Code, ServingError
from tfxp.serving.servable import Servable


@dataclass
class _Task:
    servable: Servable
    inputs: Mapping[str, np.ndarray]
    size: int
    future: Future
    enqueued: float = field(default_factory=time.monotonic)


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int | None:
    sizes = {np.asarray(v).shape[0] if np.ndim(v) else None for v in inputs.values()}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


class _Queue:
    """One batching queue (model, version, signature) with its own batch-forming thread.

    A batch opens with the oldest waiting task and closes when it holds max_batch_size rows or
    batch_timeout_micros after that task was enqueued (TF Serving's contract, basic_batch_scheduler.h);
    a task that would overflow it opens the next one. The forming thread is woken only for a batch's
    first task and when max_batch_size rows wait, not once per request: on a busy server each wake-up
    is a thread switch competing for the interpreter with the requests' own work.
    """

    def __init__(self, signature: str, params: BatchingSettings, pool: ThreadPoolExecutor, on_batch):
        self._signature = signature
        self._on_batch = on_batch
        self._params = params
        self._pool = pool
        self._tasks: deque[_Task] = deque()
        self._rows = 0  # rows of the waiting tasks
        self._changed = threading.Condition()
        # Bounded in requests: max_enqueued_batches full batches' worth.
        self._limit = params.max_enqueued_batches * params.max_batch_size
        threading.Thread(target=self._form_batches, daemon=True, name=f"batcher-{signature}").start()

    def submit(self, task: _Task) -> None:
        with self._changed:
            if len(self._tasks) >= self._limit:
                raise ServingError(Code.RESOURCE_EXHAUSTED, "The batch scheduling queue is full")
            self._tasks.append(task)
            self._rows += task.size
            if len(self._tasks) == 1 or self._rows >= self._params.max_batch_size:
                self._changed.notify()

    def _form_batches(self) -> None:
        while True:
            self._pool.submit(self._run, self._next_batch())

    def _next_batch(self) -> list[_Task]:
        """Waits for the next batch to close and takes its tasks off the queue."""
        timeout = self._params.batch_timeout_micros / 1e6
        limit = self._params.max_batch_size
        with self._changed:
            self._changed.wait_for(lambda: self._tasks)
            deadline = self._tasks[0].enqueued + timeout
            while self._rows < limit and (remaining := deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            batch = [self._tasks.popleft()]
            size = batch[0].size
            while self._tasks and size + self._tasks[0].size <= limit:
                batch.append(self._tasks.popleft())
                size += batch[-1].size
            self._rows -= size
        return batch

    def _run(self, batch: list[_Task]) -> None:
        if len(batch) > 1:
            try:
                merged = {k: np.concatenate([t.inputs[k] for t in batch]) for k in batch[0].inputs}
            except ValueError:  # non-batch dimensions differ: run the requests one by one
                for task in batch:
                    self._run([task])
                return
        else:
            merged = batch[0].inputs
        try:
            outputs = batch[0].servable.execute(self._signature, merged)
            total = sum(t.size for t in batch)
            self._on_batch(batch[0].servable.name, total)
            offset = 0
            for task in batch:
                part = {}
                for name, value in outputs.items():
                    if np.ndim(value) == 0 or value.shape[0] != total:
                        raise ServingError(Code.INTERNAL, f"output '{name}' has no batch dimension to split")
                    part[name] = value[offset : offset + task.size]
                task.future.set_result(part)
                offset += task.size
        except ServingError as exc:
            if len(batch) > 1 and exc.code == Code.INVALID_ARGUMENT:
                # A request the model itself refuses (predict_raw's in-graph checks) must
                # not fail its batch mates: run each request alone so only it gets the 400.
                for task in batch:
                    if not task.future.done():
                        self._run([task])
                return
            self._fail(batch, exc)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
            self._fail(batch, exc)

    @staticmethod
    def _fail(batch: list[_Task], exc: BaseException) -> None:
        for task in batch:
            if not task.future.done():
                task.future.set_exception(exc)


class BatchingRunner:
    """A data-plane runner that batches; requests it can't batch run directly."""

    def __init__(self, params: BatchingSettings, on_batch=lambda model, rows: None):
        self._params = params
        self._on_batch = on_batch
        self._pool = ThreadPoolExecutor(max_workers=params.num_batch_threads, thread_name_prefix="batch")
        self._queues: dict[tuple, _Queue] = {}
        self._lock = threading.Lock()

    def __call__(
        self, servable: Servable, signature: str, inputs: Mapping[str, np.ndarray], output_filter: tuple = ()
    ) -> dict:
        future = self.submit(servable, signature, inputs, output_filter)
        return servable.run(signature, inputs, output_filter) if future is None else future.result()

    def submit(
        self, servable: Servable, signature: str, inputs: Mapping[str, np.ndarray], output_filter: tuple = ()
    ) -> Future | None:
        """Queues the request for its batch: the Future of its outputs, or None for a request this runner
        does not batch (an output_filter, or inputs without one shared dimension 0), which the caller runs
        as is. Raises ServingError: INVALID_ARGUMENT for more rows than max_batch_size or inputs the
        signature refuses (validated here, so a bad request never fails its batch mates),
        RESOURCE_EXHAUSTED when the queue is full."""
        size = _batch_size(inputs)
        if output_filter or size is None:
            return None
        if size > self._params.max_batch_size:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Task size {size} is larger than maximum input batch size {self._params.max_batch_size}",
            )
        arrays = servable.validate(signature, inputs)
        key = (servable.name, servable.version, signature)
        with self._lock:
            if key not in self._queues:
                self._queues[key] = _Queue(signature, self._params, self._pool, self._on_batch)
            batch_queue = self._queues[key]
        future: Future = Future()
        batch_queue.submit(_Task(servable, arrays, size, future))
        return future
