"""A server-wide memory budget for in-flight requests, and freed memory handed back to the OS (issue 26).

`--max-request-bytes` bounds one request; nothing bounded all of them: 16 concurrent 60 MB REST bodies
grew the server by 1.9 GB. The budget is a byte semaphore shared by REST and gRPC: a request is charged
the memory its body takes at its peak, from before the body is read until the answer is written: the
body's size (REST: its Content-Length, or `--max-request-bytes` for a body sent without one; gRPC: the
serialized message) times what decoding makes of it (REST_JSON_EXPANSION, GRPC_EXPANSION, measured). A
request that does not fit waits up to `WAIT_SECONDS` (or its deadline) for others to finish, then is
refused with RESOURCE_EXHAUSTED (REST 429), as TF Serving's batching queue refuses a task when it is full.
A request larger than the whole budget is charged the whole budget: it runs alone rather than never.

glibc's malloc keeps freed memory in its arenas (one per thread that allocated, up to 8 per core), so
after a burst the process stays at its peak; `MemoryTrimmer` calls `malloc_trim(0)` off the request
path once enough memory has been released, which hands the free pages back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

WAIT_SECONDS = 1.0  # how long a request may wait for budget before RESOURCE_EXHAUSTED
POLL_SECONDS = 0.01  # an event-loop waiter re-checks the budget this often
# Peak memory per body byte. Measured (bench/hostile_load.py, one request at a time, RSS peak - start):
# a 60 MB JSON body of numbers (`1.25,` each) took 2.2 GB, 36x: every number is a Python object in the
# decoder before it is a tensor element; rounded up. A gRPC message is held serialized, parsed and as an
# ndarray (a tensor's packed values are copied, not expanded).
REST_JSON_EXPANSION = 40
GRPC_EXPANSION = 4
# The default budget: this fraction of the machine's (or the container's) memory, the rest being the
# models', TensorFlow's and the machine's.
DEFAULT_FRACTION = 1 / 4
TRIM_AFTER_BYTES = 64 * 2**20  # malloc_trim once this much budget has been released since the last trim
TRIM_DELAY_SECONDS = 0.2  # the answer's objects are freed after the budget is released: trim a bit later


def total_memory_bytes() -> int:
    """Physical memory, or the cgroup's memory limit when the server runs in a container with a lower one."""
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            limit = int(Path(limit_file).read_text().strip())  # "max" (no limit) is a ValueError
            return min(physical, limit)
    return physical


def default_budget_bytes(max_request_bytes: int) -> int:
    """DEFAULT_FRACTION of total_memory_bytes(), and at least one REST request of `max_request_bytes`."""
    return max(max_request_bytes * REST_JSON_EXPANSION, int(total_memory_bytes() * DEFAULT_FRACTION))


class MemoryBudget:
    """A byte semaphore for in-flight requests, safe from threads (gRPC) and the event loop (REST)."""

    def __init__(self, capacity: int, trimmer: MemoryTrimmer | None = None):
        if capacity <= 0:
            raise ValueError(f"a memory budget must be positive, got {capacity}")
        self.capacity = capacity
        self._used = 0
        self._changed = threading.Condition()
        self._trimmer = trimmer

    @property
    def in_use(self) -> int:
        return self._used

    def charge(self, nbytes: int) -> int:
        """What a request of `nbytes` is charged: all of it, at most the whole budget."""
        return min(max(nbytes, 0), self.capacity)

    def try_acquire(self, charge: int) -> bool:
        with self._changed:
            if self._used + charge > self.capacity:
                return False
            self._used += charge
            return True

    def acquire(self, charge: int, timeout: float) -> bool:
        """Blocks (a worker thread) up to `timeout` seconds for `charge` bytes; False if they never fit."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._used + charge <= self.capacity, max(timeout, 0)):
                return False
            self._used += charge
            return True

    async def acquire_async(self, charge: int, timeout: float) -> bool:
        """`acquire` for the event loop: polls every POLL_SECONDS instead of blocking it."""
        deadline = time.monotonic() + max(timeout, 0)
        while not self.try_acquire(charge):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

    def release(self, charge: int) -> None:
        with self._changed:
            self._used -= charge
            self._changed.notify_all()
        if self._trimmer is not None:
            self._trimmer.released(charge)

    @contextlib.contextmanager
    def reserved(self, nbytes: int, timeout: float) -> Iterator[bool]:
        """Holds the charge for `nbytes` while the block runs; yields whether it was granted."""
        charge = self.charge(nbytes)
        granted = self.acquire(charge, timeout)
        try:
            yield granted
        finally:
            if granted:
                self.release(charge)

    @contextlib.asynccontextmanager
    async def reserved_async(self, nbytes: int, timeout: float) -> AsyncIterator[bool]:
        charge = self.charge(nbytes)
        granted = await self.acquire_async(charge, timeout)
        try:
            yield granted
        finally:
            if granted:
                self.release(charge)

    def refusal(self, nbytes: int) -> str:
        """The RESOURCE_EXHAUSTED message for a request charged `nbytes` that did not fit."""
        return (
            f"Server is at its memory budget for in-flight requests ({self._used} of {self.capacity} bytes in "
            f"use; this request needs {self.charge(nbytes)}); retry later"
        )


def _malloc_trim() -> ctypes._CFuncPtr | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    name = ctypes.util.find_library("c")
    with contextlib.suppress(OSError, AttributeError):
        trim = ctypes.CDLL(name).malloc_trim
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
        return trim
    return None


class MemoryTrimmer:
    """Calls malloc_trim(0) in its own thread after TRIM_AFTER_BYTES of budget have been released."""

    def __init__(self, after_bytes: int = TRIM_AFTER_BYTES):
        self._trim = _malloc_trim()
        self._after = after_bytes
        self._released = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.trims = 0
        if self._trim is not None:
            threading.Thread(target=self._loop, name="malloc-trim", daemon=True).start()

    def released(self, nbytes: int) -> None:
        with self._lock:
            self._released += nbytes
            due = self._released >= self._after
            if due:
                self._released = 0
        if due:
            self._wake.set()

    def _loop(self) -> None:
        assert self._trim is not None
        while True:
            self._wake.wait()
            time.sleep(TRIM_DELAY_SECONDS)
            self._wake.clear()
            started = time.monotonic()
            self._trim(0)
            self.trims += 1
            log.debug("malloc_trim(0) took %.3f s", time.monotonic() - started)
