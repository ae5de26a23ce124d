"""One loaded model version: its signatures, their tensor specs, and how to run them.

Every SavedModel, TF1 or TF2, is loaded and run the way TF Serving does it
(servables/tensorflow/saved_model_bundle_factory.cc, predict_util.cc): the
MetaGraph tagged "serve" is imported into a graph of its own, its variables are
restored and its init ops run in a TF1 session, and a signature runs as one
session call that feeds the signature's input tensor names and fetches its
output tensor names.

Why not `tf.saved_model.load`: it can't load TF1 graphs with reference variables
("Output 0 ... has a reference type float_ref") or some ParseExample-based
signatures ("Shape must be rank 1 but is rank 0"), which TF Serving serves; and
its signature functions refuse inputs whose shape differs from the signature's,
which TF Serving leaves to the model. A session call is also faster (the taxi
model, one row: 0.14 ms for `Servable.run`, checks included, against 0.27 ms for
the `tf.saved_model.load` signature; 64 rows: 0.31 against 0.45 ms).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfxp.serving.errors import Code, ServingError, from_tensorflow_error, tensorflow_message
from tfxp.serving.signature_def import STRING, Signature, TensorInfo, UnsupportedDtypeError
from tfxp.serving.tensors import to_ndarray

log = logging.getLogger(__name__)

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
SERVE_TAG = "serve"  # tag_constants.SERVING: the MetaGraph TF Serving loads
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit
_MAX_PREPARED_CALLS = 256  # per version: (signature, output filter) pairs
_REF_DTYPE_OFFSET = 100  # DT_FLOAT_REF = DT_FLOAT + 100, ... (tensorflow/core/framework/types.proto)


def is_complete_version(path: str) -> bool:
    """A SavedModel directory that has finished being written.

    TF Serving's users see half-copied versions load too early; we refuse them
    instead: `saved_model.pb` must be there, and so must `variables/variables.index`
    unless the SavedModel has no variables to restore (a TF1 graph without
    variables has an empty `variables/`; TF2 always writes the index). TFX's Pusher
    and pipeline/publish.py write `saved_model.pb` last or rename whole versions.
    """
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(pb):
        return False
    if os.path.isfile(os.path.join(path, "variables", "variables.index")):
        return True
    try:
        stat = os.stat(pb)
    except OSError:
        return False
    return not _needs_variables(pb, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _needs_variables(pb_path: str, mtime_ns: int, size: int) -> bool:
    """Whether the SavedModel restores variables (cached per file version: polls repeat this).

    A file that does not parse counts as complete, so that loading it reports the
    error (state END) instead of the version staying invisible.
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    try:
        with open(pb_path, "rb") as f:
            saved_model.ParseFromString(f.read())
    except (OSError, DecodeError):
        return False
    return any(mg.HasField("saver_def") or mg.HasField("object_graph_def") for mg in saved_model.meta_graphs)


def read_signature_defs(path: str):
    """The SignatureDef map as TF Serving reports it (from saved_model.pb, method names included).

    From the MetaGraph tagged "serve" (the one served), else the first one.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph.signature_def
    return saved_model.meta_graphs[0].signature_def


@dataclass(frozen=True)
class _Call:
    """A prepared session call of one signature: feeds in `inputs` order, fetches per wanted output."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    fetch_index: tuple[int, ...]  # outputs[i] is fetched value fetch_index[i] (aliases may share a tensor)
    run: Any


class Servable:
    """A loaded version. Counts in-flight requests so unloading can wait for them.

    Raises whatever TensorFlow raises when the SavedModel can't be loaded (e.g.
    RuntimeError for a missing "serve" MetaGraph, OSError, DecodeError); the
    repository reports it as the version's error.
    """

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        self._session, meta_graph = _load_session(path)
        self.signature_defs = meta_graph.signature_def
        self.signatures: dict[str, Signature] = {}
        self._unservable: dict[str, str] = {}  # signature name -> why it can't be run
        for key, sig_def in self.signature_defs.items():
            if key.startswith("__"):  # e.g. __saved_model_init_op
                continue
            try:
                self.signatures[key] = _signature(key, sig_def)
            except UnsupportedDtypeError as exc:
                log.warning("%s version %d: signature '%s' can't be served: %s", name, version, key, exc)
                self._unservable[key] = str(exc)
        self._calls: dict[tuple[str, tuple[str, ...]], _Call] = {}
        self._calls_lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition()

    # -- request accounting -------------------------------------------------
    def acquire(self) -> None:
        with self._idle:
            self._in_flight += 1

    def release(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self) -> None:
        """Frees the session (variables, tables). Only after `wait_idle`: later calls fail."""
        with self._calls_lock:
            self._calls.clear()
        self._session.close()

    # -- inference ------------------------------------------------------------
    def signature(self, name: str) -> Signature:
        """The named signature; INVALID_ARGUMENT if there is none (or it can't be served)."""
        if name in self._unservable:
            raise ServingError(
                Code.INVALID_ARGUMENT, f'Serving signature name: "{name}" can\'t be served: {self._unservable[name]}'
            )
        try:
            return self.signatures[name]
        except KeyError:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f'Serving signature name: "{name}" not found in signature def. Available: {sorted(self.signatures)}',
            ) from None

    def validate(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: tuple[str, ...] = ()
    ) -> dict[str, np.ndarray]:
        """Checks input names and dtypes; returns one array per signature input, of its dtype.

        Inputs the request leaves out take the signature's default value when it
        has one (SignatureDef.defaults, TF2 `input_signature` defaults), as TF
        Serving's GetInputValues does. Shapes are not checked: like TF Serving
        (predict_util.cc feeds the tensors as sent), the model decides. Raises
        ServingError(INVALID_ARGUMENT) naming the problem.
        """
        signature = self.signature(signature_name)
        defaults = self.signature_defs[signature_name].defaults
        missing = sorted(set(signature.inputs) - set(inputs) - set(defaults))
        extra = sorted(set(inputs) - set(signature.inputs))
        if missing or extra:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"input names {sorted(inputs)} do not match signature '{signature_name}': "
                f"missing {missing}, unexpected {extra}; expected inputs: {sorted(signature.inputs)}",
            )
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise ServingError(Code.INVALID_ARGUMENT, f"output_filter names unknown outputs {unknown}")
        return {
            key: _to_array(key, inputs[key] if key in inputs else to_ndarray(defaults[key]), spec)
            for key, spec in signature.inputs.items()
        }

    def execute(
        self, signature_name: str, arrays: Mapping[str, np.ndarray], output_filter: tuple[str, ...] = ()
    ) -> dict[str, np.ndarray]:
        """Runs the signature on arrays from `validate`; returns the wanted outputs by alias.

        A model's own error keeps its TensorFlow status code (TF Serving returns
        the session's status), e.g. INVALID_ARGUMENT for a tf.Example that lacks a
        required feature.
        """
        wanted = tuple(output_filter) or tuple(self.signatures[signature_name].outputs)
        call = self._call(signature_name, tuple(sorted(set(wanted))))
        try:
            values = call.run(*(arrays[key] for key in call.inputs))
        except (ValueError, TypeError) as exc:  # a value numpy/TF can't turn into the tensor
            raise ServingError(Code.INVALID_ARGUMENT, tensorflow_message(exc)) from None
        except Exception as exc:
            error = from_tensorflow_error(exc)  # tf.errors.OpError, with its status code
            if error is None:
                raise
            raise error from None
        fetched = dict(zip(call.outputs, call.fetch_index, strict=True))
        # np.asarray: a 0-d result comes back as a numpy scalar.
        return {alias: np.asarray(values[fetched[alias]]) for alias in wanted}

    def run(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: tuple[str, ...] = ()
    ) -> dict[str, np.ndarray]:
        return self.execute(signature_name, self.validate(signature_name, inputs, output_filter), output_filter)

    def _call(self, signature_name: str, outputs: tuple[str, ...]) -> _Call:
        """The prepared call for these (sorted) outputs; kept for reuse, up to a bound (output
        filters are the client's choice, and each call holds TensorFlow resources)."""
        key = (signature_name, outputs)
        call = self._calls.get(key)
        if call is None:
            with self._calls_lock:
                call = self._calls.get(key) or self._prepare(signature_name, outputs)
                if len(self._calls) < _MAX_PREPARED_CALLS:
                    self._calls[key] = call
        return call

    def _prepare(self, signature_name: str, outputs: tuple[str, ...]) -> _Call:
        from tensorflow.core.protobuf import config_pb2

        sig_def = self.signature_defs[signature_name]
        inputs = tuple(sorted(sig_def.inputs))
        feeds = [_tensor_name(sig_def.inputs[k], "input", k, signature_name) for k in inputs]
        wanted = [_tensor_name(sig_def.outputs[k], "output", k, signature_name) for k in outputs]
        fetches = list(dict.fromkeys(wanted))
        options = config_pb2.CallableOptions(feed=feeds, fetch=fetches)
        try:
            # Session::MakeCallable, as TF Serving's Session::Run: no Python-side
            # feed shape check (Session.run/make_callable refuse shapes that differ
            # from the placeholder's), and no per-call feed dict to build.
            run = self._session._make_callable_from_options(options)
        except Exception as exc:  # noqa: BLE001 - e.g. a signature naming a tensor not in the graph
            raise ServingError(Code.INVALID_ARGUMENT, tensorflow_message(exc)) from None
        return _Call(inputs, outputs, tuple(fetches.index(n) for n in wanted), run)

    def warm_up(self) -> int:
        """Replays assets.extra/tf_serving_warmup_requests (PredictionLog TFRecord); returns the count."""
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
            log_record = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            kind = log_record.WhichOneof("log_type")
            if kind == "predict_log":
                request = log_record.predict_log.request
                inputs = {k: to_ndarray(v) for k, v in request.inputs.items()}
                self.run(request.model_spec.signature_name or "serving_default", inputs)
                count += 1
        return count


def _session_config():
    """The ConfigProto every servable's session runs with.

    Soft placement: a graph pinned to /gpu:0 (e.g. TF Serving's half_plus_two_gpu) runs on CPU.
    inter_op_parallelism_threads=-1 (config.proto: "negative means all operations are performed in caller's
    thread"): a request's ops run in the request's own thread instead of being handed to TF's inter-op pool and
    waited for. Each request (or merged batch) is one small graph run, so there is nothing to run side by side,
    and the hand-off and wake-up cost more than the model: a 1-row call of the taxi model took about half the
    time in process (docs/benchmarks.md, "Serving"). Ops that parallelize inside (intra-op, e.g. a large batch's
    matmul) still use TF's intra-op pool.
    """
    import tensorflow as tf

    return tf.compat.v1.ConfigProto(allow_soft_placement=True, inter_op_parallelism_threads=-1)


def _load_session(path: str):
    """(session, MetaGraphDef): the "serve" MetaGraph loaded as TF Serving's LoadSavedModel does."""
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=_session_config())
    try:
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.load(session, [SERVE_TAG], path)
    except BaseException:
        session.close()
        raise
    graph.finalize()  # requests only run it; nothing may add ops from other threads
    return session, meta_graph


def _signature(key: str, sig_def) -> Signature:
    return Signature(
        inputs={k: _tensor_info(v) for k, v in sig_def.inputs.items()},
        outputs={k: _tensor_info(v) for k, v in sig_def.outputs.items()},
        method_name=sig_def.method_name or PREDICT_METHOD,
        name=key,
    )


def _tensor_info(proto) -> TensorInfo:
    """TensorInfo of a SignatureDef entry; a reference dtype (TF1 variables, DT_FLOAT_REF) as its value dtype."""
    if proto.dtype > _REF_DTYPE_OFFSET:
        proto = type(proto)(dtype=proto.dtype - _REF_DTYPE_OFFSET, tensor_shape=proto.tensor_shape, name=proto.name)
    return TensorInfo.from_proto(proto)


def _tensor_name(proto, kind: str, alias: str, signature_name: str) -> str:
    if proto.WhichOneof("encoding") != "name":
        # TF Serving feeds/fetches TensorInfo.name only; it fails the same way, less clearly.
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"{kind} '{alias}' of signature '{signature_name}' is a sparse or composite "
            "tensor; only dense tensors can be fed and fetched",
        )
    return proto.name


def _to_array(key: str, value, spec: TensorInfo) -> np.ndarray:
    """The input as an array of exactly the signature's dtype; like TF Serving, no casting.

    Any shape passes (TF Serving does not compare request shapes with the
    SignatureDef's). Raises ServingError(INVALID_ARGUMENT) on a dtype mismatch,
    as TF's session does ("Expects arg[0] to be float but double is provided").
    """
    value = np.asarray(value)
    dtype = spec.numpy_dtype
    if dtype == STRING:
        # An object array may hold anything; TF's session takes only bytes and str
        # (else INTERNAL "Unsupported object type int", a 500 for a client's mistake).
        if value.dtype.kind not in ("O", "S", "U") or (
            value.dtype.kind == "O" and not all(isinstance(v, (bytes, str)) for v in value.flat)
        ):
            raise ServingError(
                Code.INVALID_ARGUMENT, f"input '{key}' expects string but {_provided(value)} is provided"
            )
        return value.astype(object)
    if value.dtype != dtype:
        raise ServingError(Code.INVALID_ARGUMENT, f"input '{key}' expects {dtype} but {_provided(value)} is provided")
    return value


def _provided(value: np.ndarray) -> str:
    if value.dtype.kind == "O":
        kinds = sorted({type(v).__name__ for v in value.flat} - {"bytes", "str"})
        return "object (" + ", ".join(kinds) + ")" if kinds else "string"
    return "string" if value.dtype.kind in ("S", "U") else str(value.dtype)
