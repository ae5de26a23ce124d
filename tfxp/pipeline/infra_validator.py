"""InfraValidator without Docker that compares answers (issue 22).

TFX's InfraValidator (tfx/components/infra_validator) starts TF Serving in Docker or Kubernetes and only
checks that requests don't raise. This one stages the candidate exactly as the Pusher will push it
(SavedModel + warmup file), serves it with the project's own server (`python -m tfxp.cli serve`, a real
subprocess on free loopback ports), waits until GetModelStatus says AVAILABLE, replays K eval rows over
REST and gRPC to every Predict signature — the tf.Example ones and `predict_raw` (each row's features as raw
columns) — and compares each answer with the SavedModel's in-process answer on that row alone.

The `infra_validation` JSON it records: status ("passed" | "failed" | "skipped"), reason, load_seconds
(process start to AVAILABLE), p50_ms / p99_ms (per request, REST and gRPC together), rss_bytes (the
server's peak resident set, /proc VmHWM), requests, compared (answers compared), max_abs_diff,
signatures (the names replayed).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from tfxp.pipeline import failpoints

# float32 has a 24-bit mantissa (~6e-8 relative); the server and the in-process call run the same graph
# but may batch differently (different kernels' summation order): 1e-4 absolute leaves room for that
# and still catches a different model or a corrupted input.
TOLERANCE = 1e-4
LOAD_TIMEOUT_SECONDS = 120.0
# Signatures fed serialized tf.Examples, with their input key (models/signatures.py).
EXAMPLE_SIGNATURES = {"serving_default": "examples", "classification": "inputs", "regression": "inputs"}
# Fed one dense tensor per raw feature (models/signatures.py PREDICT_RAW): rows as JSON apps and TFLite send them.
PREDICT_RAW = "predict_raw"
# TFXP_FAILPOINT values that make the staged copy (only it) unservable: its warmup file is garbled, or its
# variables are truncated (failpoints.py lists them).
FAILPOINT_CORRUPT_WARMUP = "infra_validator:corrupt_warmup"
FAILPOINT_GARBLE_VARIABLES = "infra_validator:garble_variables"


class InfraValidationError(Exception):
    """A named failure of the candidate in the server (the reason recorded)."""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss(pid: int) -> int:
    """The process's peak resident set in bytes (/proc/PID/status VmHWM), 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def stage(model_dir: str, examples_uri: str, model_name: str, base: str, warmup_records: int) -> str:
    """Copies the SavedModel and writes the Pusher's warmup file to `<base>/<model_name>/1/`; returns the base path."""
    from tfxp.pipeline.components import WARMUP_FILE, _write_warmup

    base_path = os.path.join(base, model_name)
    version_dir = os.path.join(base_path, "1")
    shutil.copytree(model_dir, version_dir)
    warmup = os.path.join(version_dir, WARMUP_FILE)
    _write_warmup(examples_uri, model_name, warmup, warmup_records)
    if os.environ.get(failpoints.ENV) == FAILPOINT_CORRUPT_WARMUP:
        with open(warmup, "wb") as f:
            f.write(b"\x00garbled warmup record\xff" * 4)
    if os.environ.get(failpoints.ENV) == FAILPOINT_GARBLE_VARIABLES:
        import glob

        for path in glob.glob(os.path.join(version_dir, "variables", "variables.data-*")):
            with open(path, "r+b") as f:
                f.truncate(16)
    return base_path


def _wait_available(proc: subprocess.Popen, rest_url: str, model_name: str, stderr_path: str) -> None:
    import requests

    deadline = time.monotonic() + LOAD_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfraValidationError(f"server exited with {proc.returncode} before AVAILABLE: {_tail(stderr_path)}")
        try:
            status = requests.get(f"{rest_url}/v1/models/{model_name}", timeout=2).json()
            states = [v.get("state") for v in status.get("model_version_status", [])]
            if "AVAILABLE" in states:
                return
            if states and all(s == "END" for s in states):
                raise InfraValidationError(f"model failed to load: {status} {_tail(stderr_path)}")
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.2)
    raise InfraValidationError(f"not AVAILABLE within {LOAD_TIMEOUT_SECONDS:.0f} s: {_tail(stderr_path)}")


def _tail(path: str, size: int = 1500) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - size))
        return f.read().decode(errors="replace").strip()


def _expected(model_dir: str, records: list[bytes]) -> dict[str, list[dict | str]]:
    """{signature: per row, {output: np.ndarray} or the refusal's message}, computed in-process one row at a
    time, as the replay asks (a refused row must not make its batch's other rows refusals)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(model_dir)
    feeds: dict[str, list[dict]] = {}
    for name, key in EXAMPLE_SIGNATURES.items():
        if name in loaded.signatures:
            feeds[name] = [{key: tf.constant([record])} for record in records]
    if PREDICT_RAW in loaded.signatures:
        specs = loaded.signatures[PREDICT_RAW].structured_input_signature[1]
        inputs = {name: spec.dtype.name for name, spec in specs.items()}
        feeds[PREDICT_RAW] = [
            {n: tf.constant(values, specs[n].dtype) for n, values in column.items()}
            for column in _raw_columns(records, inputs)
        ]
    answers: dict[str, list[dict | str]] = {}
    for name, rows in feeds.items():
        answers[name] = []
        for feed in rows:
            try:
                out = loaded.signatures[name](**feed)
                answers[name].append({k: v.numpy()[0] for k, v in out.items()})
            except tf.errors.InvalidArgumentError as exc:
                answers[name].append(exc.message)
    return answers


def _raw_columns(records: list[bytes], inputs: dict[str, str]) -> list[dict[str, list]]:
    """Each serialized tf.Example as one row of `predict_raw` columns (tfxp.rows: missing as the dtype's marker)."""
    from tfxp import rows as R

    return [R.raw_columns([R.example_row(record)], inputs) for record in records]


def _compare(name: str, got: dict[str, list], want: dict, row: int, protocol: str) -> float:
    import numpy as np

    worst = 0.0
    for output, expected in want.items():
        value = np.asarray(got.get(output))
        expected = np.asarray(expected)
        if expected.dtype.kind in "SUO":
            equal = [str(a if not isinstance(a, bytes) else a.decode()) for a in np.ravel(value)] == [
                a.decode() if isinstance(a, bytes) else str(a) for a in np.ravel(expected)
            ]
            diff = 0.0 if equal else float("inf")
        else:
            diff = float(np.max(np.abs(value.astype(np.float64) - expected.astype(np.float64)), initial=0.0))
        if not diff <= TOLERANCE:
            raise InfraValidationError(
                f"{protocol} {name} row {row} output {output!r}: got {value.tolist()} expected {expected.tolist()}"
            )
        worst = max(worst, diff)
    return worst


def _ask(client, raw_client, name: str, record: bytes, metadata) -> dict[str, list]:
    """One row's answer from the server: the tf.Example to `name`, or its raw columns to predict_raw."""
    signature = metadata.signature(name)
    if name == PREDICT_RAW:
        inputs = metadata.raw_inputs()
        return raw_client._predict_raw(_raw_columns([record], inputs)[0], inputs, signature)
    return client._predict_examples([record], EXAMPLE_SIGNATURES[name], signature, name)


def _replay(rest_url: str, grpc_target: str, model_name: str, records: list[bytes], expected: dict, out: dict) -> None:
    from tfxp.serving.client import GrpcClient, RestClient, ServingClientError

    latencies: list[float] = []
    worst, compared = 0.0, 0
    clients = [
        ("REST", RestClient(rest_url, model_name), RestClient(rest_url, model_name, signature=PREDICT_RAW)),
        ("gRPC", GrpcClient(grpc_target, model_name), GrpcClient(grpc_target, model_name, signature=PREDICT_RAW)),
    ]
    try:
        for protocol, client, raw_client in clients:
            metadata = client.model_metadata()
            for name, answers in expected.items():
                for row, (record, want) in enumerate(zip(records, answers, strict=True)):
                    start = time.perf_counter()
                    try:
                        got, refused = _ask(client, raw_client, name, record, metadata), None
                    except ServingClientError as exc:
                        got, refused = None, str(exc)
                    latencies.append(time.perf_counter() - start)
                    if isinstance(want, str) or refused is not None:
                        if refused is None or isinstance(want, dict):  # a refusal must match a refusal
                            raise InfraValidationError(
                                f"{protocol} {name} row {row}: got {refused or got} expected {want}"
                            )
                        continue
                    worst = max(worst, _compare(name, got, want, row, protocol))
                    compared += 1
    finally:
        for _, client, raw_client in clients:
            client.close()
            raw_client.close()
        out.update(requests=len(latencies), compared=compared, max_abs_diff=worst)
        if latencies:
            ordered = sorted(latencies)
            out["p50_ms"] = round(1000 * ordered[len(ordered) // 2], 3)
            out["p99_ms"] = round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3)


def validate(model_dir: str, examples_uri: str, model_name: str, rows: int = 50, warmup_records: int = 10) -> dict:
    """Serves the staged candidate of `model_dir` (a SavedModel) and compares its answers; never raises for a
    failure of the candidate: returns the `infra_validation` dict (module docstring) with status "failed"
    and a reason naming the signature, row, got and expected."""
    from tfxp.pipeline.components import _eval_records

    result: dict = {"status": "failed", "reason": "", "requests": 0, "compared": 0, "signatures": []}
    with tempfile.TemporaryDirectory(prefix="tfxp-infra-") as tmp:
        records = _eval_records(examples_uri, rows)
        base_path = stage(model_dir, examples_uri, model_name, tmp, warmup_records)
        rest_port, grpc_port = _free_port(), _free_port()
        stderr_path = os.path.join(tmp, "server.log")
        command = [
            sys.executable,
            "-m",
            "tfxp.cli",
            "serve",
            "--model-name",
            model_name,
            "--model-base-path",
            base_path,
        ]
        command += ["--grpc-port", str(grpc_port), "--rest-port", str(rest_port), "--log-file", f"{tmp}/tf.log"]
        started = time.monotonic()
        with open(stderr_path, "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            # The in-process answers are computed while the server process starts and loads (a second core's
            # work instead of waiting for it).
            try:
                expected = _expected(model_dir, records)
            except Exception as exc:  # noqa: BLE001 - a candidate that doesn't even load in-process
                result["reason"] = f"the SavedModel does not load in-process: {type(exc).__name__}: {exc}"
                return result
            result["signatures"] = sorted(expected)
            rest_url = f"http://127.0.0.1:{rest_port}"
            _wait_available(proc, rest_url, model_name, stderr_path)
            result["load_seconds"] = round(time.monotonic() - started, 3)
            _replay(rest_url, f"127.0.0.1:{grpc_port}", model_name, records, expected, result)
            result.update(status="passed", reason="")
        except InfraValidationError as exc:
            result["reason"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure of the candidate is a refusal, named
            result["reason"] = f"{type(exc).__name__}: {exc}"
        finally:
            result["rss_bytes"] = _peak_rss(proc.pid)
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result


@component
def InfraValidator(
    model: InputArtifact[standard_artifacts.Model],
    model_blessing: InputArtifact[standard_artifacts.ModelBlessing],
    examples: InputArtifact[standard_artifacts.Examples],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    model_name: Parameter[str],
    rows: Parameter[int] = 50,
    warmup_records: Parameter[int] = 10,
) -> None:
    """Blesses the candidate (InfraBlessing `blessed` 1/0 and the INFRA_BLESSED / INFRA_NOT_BLESSED marker file,
    as tfx/components/infra_validator/executor.py) when the served candidate answers as in-process;
    `infra_validation` string property: the JSON of `validate`."""
    if model_blessing.get_int_custom_property("blessed") != 1:
        result = {"status": "skipped", "reason": "model not blessed by the Evaluator", "requests": 0}
    else:
        result = validate(os.path.join(model.uri, "Format-Serving"), examples.uri, model_name, rows, warmup_records)
    blessed = int(result["status"] == "passed")
    import tensorflow as tf

    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "INFRA_BLESSED" if blessed else "INFRA_NOT_BLESSED"), "w"):
        pass
    blessing.set_int_custom_property("blessed", blessed)
    blessing.set_string_custom_property("infra_validation", json.dumps(result, sort_keys=True))
