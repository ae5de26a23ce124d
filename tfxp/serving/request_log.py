"""Sampled request logging as `PredictionLog` TFRecords (TF Serving's format).

Open-source TF Serving registers no log collector, so its logging config is
inert; here a sampled fraction of Predict/Classify/Regress requests (with
responses) is written to rotating TFRecord files for skew and drift analysis.
"""

from __future__ import annotations

import os
import random
import threading
import time


class RequestLogger:
    def __init__(self, directory: str, sampling_rate: float, max_records_per_file: int = 10_000):
        if not 0.0 <= sampling_rate <= 1.0:
            raise ValueError("sampling rate must be within [0, 1]")
        self._dir = directory
        self._rate = sampling_rate
        self._max = max_records_per_file
        self._lock = threading.Lock()
        self._writer = None
        self._count = 0
        self._random = random.Random()
        os.makedirs(directory, exist_ok=True)

    def sampled(self) -> bool:
        return self._rate > 0 and self._random.random() < self._rate

    def write(self, prediction_log) -> None:
        """Writes one `prediction_log_pb2.PredictionLog`."""
        import tensorflow as tf

        record = prediction_log.SerializeToString()
        with self._lock:
            if self._writer is None or self._count >= self._max:
                self._rotate(tf)
            self._writer.write(record)
            self._writer.flush()
            self._count += 1

    def _rotate(self, tf) -> None:
        if self._writer is not None:
            self._writer.close()
        name = f"prediction_log-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}.tfrecord"
        self._writer = tf.io.TFRecordWriter(os.path.join(self._dir, name))
        self._count = 0

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
