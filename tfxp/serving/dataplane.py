"""The protocol-agnostic data plane: predict / classify / regress / multi-inference / metadata / status.

REST and gRPC front ends are thin adapters that decode their wire format into
these calls (numpy arrays and serialized tf.Examples) and encode the results.
Checks, their order, codes and messages follow TF Serving 2.16.1's
`servables/tensorflow/{predict_util,classifier,regressor,multi_inference,util}.cc`,
so a client sees the same answer from either server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from tfxp.serving import request_log
from tfxp.serving.errors import Code, ServingError
from tfxp.serving.repository import ModelRepository, VersionStatus
from tfxp.serving.servable import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, Servable
from tfxp.serving.signature_def import Signature
from tfxp.serving.tensors import dtype_name, shape_string

DEFAULT_SIGNATURE = "serving_default"
# tensorflow/cc/saved_model/signature_constants.h: the keys Classify and Regress look up.
CLASSIFY_INPUTS, CLASSIFY_OUTPUT_CLASSES, CLASSIFY_OUTPUT_SCORES = "inputs", "classes", "scores"
REGRESS_INPUTS, REGRESS_OUTPUTS = "inputs", "outputs"
_NO_SIGNATURE = "No signature was found with the name: "  # classifier.cc, regressor.cc
_NOT_IN_GRAPH = "Requested signature not found in model graph: "  # multi_inference.cc


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""

    @property
    def signature(self) -> str:
        return self.signature_name or DEFAULT_SIGNATURE


@dataclass(frozen=True)
class InferenceTask:
    """One task of a MultiInference request: a model spec and "tensorflow/serving/classify" or ".../regress"."""

    spec: ModelSpec
    method_name: str


@dataclass
class Result:
    name: str
    version: int
    signature_name: str
    # outputs dict (predict), per-example [(label, score), ...] (classify) or floats (regress)
    value: object


# A runner executes a signature; the batching layer substitutes one that merges requests.
Runner = Callable[[Servable, str, Mapping[str, np.ndarray], tuple], dict]
# Builds a request's input tensors from the signature that will run them.
Decoder = Callable[[Signature], Mapping[str, np.ndarray]]
# Serialized tf.Examples, or a function giving them (called once the signature has been checked).
Examples = Sequence[bytes] | Callable[[], Sequence[bytes]]


def direct_runner(
    servable: Servable, signature: str, inputs: Mapping[str, np.ndarray], output_filter: tuple = ()
) -> dict:
    return servable.run(signature, inputs, output_filter)


class DataPlane:
    """Requests against the repository's loaded versions.

    `signature_method_name_check` is TF Serving's `--enable_signature_method_name_check` (default
    false there too): when off, Classify and Regress run any signature shaped for them, whatever its
    method name — TF2 SavedModels (`tf.saved_model.save`) name every signature a predict method.
    When on, Classify/Regress require the classify/regress method name, and Predict one of the three.

    With a `request_logger`, each Predict/Classify/Regress/MultiInference that resolved a version is
    offered to it, answered or refused (a ServingError), as request_log.py's module docstring says.
    """

    def __init__(
        self,
        repository: ModelRepository,
        runner: Runner = direct_runner,
        request_logger: request_log.RequestLogger | None = None,
        signature_method_name_check: bool = False,
    ):
        self.repository = repository
        self._runner = runner
        self._request_logger = request_logger
        self._method_check = signature_method_name_check

    def predict(
        self,
        spec: ModelSpec,
        inputs: Mapping[str, np.ndarray] | Decoder,
        output_filter: tuple = (),
        deadline: float | None = None,
        rest: bool = False,
    ) -> Result:
        """Runs a signature of the resolved version (predict_util.cc RunPredict).

        `inputs` may be a function of that version's signature, for front ends
        that decode by the inputs' dtypes (REST's JSON) or decode after the
        signature is found (gRPC, as TF Serving): then the version that decodes
        the request is the one that runs it, even while a new one loads.
        Raises ServingError: INVALID_ARGUMENT (no model name, bad output_filter, inputs),
        NOT_FOUND (model/version), FAILED_PRECONDITION (unknown signature), INTERNAL (method check).
        `rest`: an unknown signature is INVALID_ARGUMENT with the REST handler's message instead
        (http_rest_api_handler.cc GetInfoMap looks the signature up while decoding the JSON).
        """
        with self._servable(spec) as servable:
            logged = request_log.LoggedRequest(spec.name, servable.version, spec.signature)
            with self._refusal_logged(lambda: request_log.predict_log(logged, None)):
                signature, arrays, output_filter = self._predict_inputs(
                    servable, spec, inputs, output_filter, deadline, rest, logged
                )
                outputs = self._runner(servable, signature.name, arrays, output_filter)
                result = Result(spec.name, servable.version, signature.name, outputs)
        self._log(lambda: request_log.predict_log(logged, result.value))
        return result

    async def predict_async(
        self,
        spec: ModelSpec,
        inputs: Mapping[str, np.ndarray] | Decoder,
        executor: Executor,
        output_filter: tuple = (),
        deadline: float | None = None,
        rest: bool = False,
    ) -> Result:
        """`predict` for a front end on an event loop: the same checks, answers and request log, and the
        signature never runs on the loop. With a batching runner the request joins its batch queue and
        is awaited, no thread blocked waiting for it (a request the runner does not batch runs in
        `executor`); else the run is `executor`'s. With a request log, the whole of `predict` runs in
        `executor`, so writing the log's file never blocks the loop. Raises ServingError as `predict`."""
        loop = asyncio.get_running_loop()
        if self._request_logger is not None:
            blocking = functools.partial(self.predict, spec, inputs, output_filter, deadline, rest)
            return await loop.run_in_executor(executor, blocking)
        with self._servable(spec) as servable:
            logged = request_log.LoggedRequest(spec.name, servable.version, spec.signature)
            with self._refusal_logged(lambda: request_log.predict_log(logged, None)):
                signature, arrays, output_filter = self._predict_inputs(
                    servable, spec, inputs, output_filter, deadline, rest, logged
                )
                submit = getattr(self._runner, "submit", None)
                queued = submit(servable, signature.name, arrays, output_filter) if submit is not None else None
                if queued is not None:
                    outputs = await asyncio.wrap_future(queued)
                else:
                    run = functools.partial(self._runner, servable, signature.name, arrays, output_filter)
                    outputs = await loop.run_in_executor(executor, run)
                result = Result(spec.name, servable.version, signature.name, outputs)
        self._log(lambda: request_log.predict_log(logged, result.value))
        return result

    def _predict_inputs(
        self,
        servable: Servable,
        spec: ModelSpec,
        inputs: Mapping[str, np.ndarray] | Decoder,
        output_filter: tuple,
        deadline: float | None,
        rest: bool,
        logged: request_log.LoggedRequest,
    ) -> tuple[Signature, Mapping[str, np.ndarray], tuple]:
        """Predict's checks before the run, in predict_util.cc's order: (signature, inputs, output_filter)."""
        if rest and _lookup(servable, spec.signature) is None:
            raise ServingError(
                Code.INVALID_ARGUMENT, f'Serving signature name: "{spec.signature}" not found in signature def'
            )
        signature = self._predict_signature(servable, spec.signature)
        logged.signature_name = signature.name
        if callable(inputs):
            inputs = inputs(signature)
        logged.request = inputs
        output_filter = tuple(output_filter)
        _check_output_filter(signature, output_filter)
        _check_deadline(deadline)
        return signature, inputs, output_filter

    def classify(self, spec: ModelSpec, examples: Examples, deadline: float | None = None) -> Result:
        """Classify (classifier.cc RunClassify): per example a list of (label, score).

        The signature takes serialized tf.Examples as `inputs` and returns `classes` (string
        [batch, n]) and/or `scores` (float [batch, n]); without classes every label is "",
        without scores every score is 0 — as TF Serving fills ClassificationResult.
        `examples` may be a function giving them, called once the signature has passed its checks.
        Raises ServingError INVALID_ARGUMENT for a missing or misshapen signature, no examples
        ("Input is empty."), or outputs of the wrong shape or dtype.
        """
        with self._servable(spec) as servable:
            logged = request_log.LoggedRequest(spec.name, servable.version, spec.signature)
            with self._refusal_logged(lambda: request_log.classify_log(logged, None)):
                signature = self._classification_signature(servable, spec.signature, _NO_SIGNATURE)
                logged.signature_name = signature.name
                logged.request = serialized = _serialized(examples)
                _check_deadline(deadline)
                result = Result(
                    spec.name, servable.version, signature.name, self._classify_run(servable, signature, serialized)
                )
        self._log(lambda: request_log.classify_log(logged, result.value))
        return result

    def regress(self, spec: ModelSpec, examples: Examples, deadline: float | None = None) -> Result:
        """Regress (regressor.cc RunRegress): one float per example, from the signature's `outputs`
        (float [batch] or [batch, 1]). Raises ServingError INVALID_ARGUMENT as `classify` does."""
        with self._servable(spec) as servable:
            logged = request_log.LoggedRequest(spec.name, servable.version, spec.signature)
            with self._refusal_logged(lambda: request_log.regress_log(logged, None)):
                signature = self._regression_signature(servable, spec.signature, _NO_SIGNATURE)
                logged.signature_name = signature.name
                logged.request = serialized = _serialized(examples)
                _check_deadline(deadline)
                result = Result(
                    spec.name, servable.version, signature.name, self._regress_run(servable, signature, serialized)
                )
        self._log(lambda: request_log.regress_log(logged, result.value))
        return result

    def multi_inference(
        self, tasks: Sequence[InferenceTask], examples: Examples, deadline: float | None = None
    ) -> list[Result]:
        """MultiInference (multi_inference.cc): classify/regress tasks on one model and the same examples.

        The version is the first task's (multi_inference_helper.cc). Every task must name that model,
        each signature appears once, and the method is classify or regress (else UNIMPLEMENTED).
        Returns one Result per task, in order.
        """
        first = tasks[0].spec if tasks else ModelSpec("")
        with self._servable(first) as servable:
            logged = request_log.LoggedRequest(first.name, servable.version, "")
            logged_tasks = [request_log.LoggedTask(t.spec.name, t.spec.signature, t.method_name) for t in tasks]
            with self._refusal_logged(lambda: request_log.multi_inference_log(logged, logged_tasks, None)):
                signatures = self._inference_signatures(servable, first.name, tasks)
                logged.request = serialized = _serialized(examples)
                results = []
                for task, signature in zip(tasks, signatures, strict=True):
                    _check_deadline(deadline)
                    run = self._classify_run if task.method_name == CLASSIFY_METHOD else self._regress_run
                    results.append(
                        Result(task.spec.name, servable.version, signature.name, run(servable, signature, serialized))
                    )
        self._log(lambda: request_log.multi_inference_log(logged, logged_tasks, [r.value for r in results]))
        return results

    def metadata(self, spec: ModelSpec) -> Result:
        """The SignatureDef map (TF Serving's only metadata field), keyed by signature name."""
        with self._servable(spec) as servable:
            return Result(spec.name, servable.version, "", servable.signature_defs)

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        return self.repository.status(name, version, label)

    def ready(self) -> bool:
        return self.repository.ready()

    # -- request log ----------------------------------------------------------------------
    def _log(self, build: Callable[[], bytes]) -> None:
        """Writes `build()` (a serialized PredictionLog) if this request is sampled; never raises."""
        if self._request_logger is not None:
            self._request_logger.log(build)

    @contextlib.contextmanager
    def _refusal_logged(self, build: Callable[[], bytes]) -> Iterator[None]:
        """Logs a request its resolved version refused (a ServingError inside), then re-raises it."""
        try:
            yield
        except ServingError:
            self._log(build)
            raise

    # -- resolving ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _servable(self, spec: ModelSpec) -> Iterator[Servable]:
        """ServerCore::ServableRequestFromModelSpec: a model name is required (INVALID_ARGUMENT)."""
        if not spec.name:
            raise ServingError(Code.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        with self.repository.servable(spec.name, spec.version, spec.label) as servable:
            yield servable

    def _predict_signature(self, servable: Servable, name: str) -> Signature:
        """predict_util.cc: an unknown signature is FAILED_PRECONDITION; with the method check on, a
        method other than predict/classify/regress is INTERNAL (VerifySignature)."""
        signature = _lookup(servable, name)
        if signature is None:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                f'Serving signature key "{name}" not found. Available: {sorted(servable.signatures)}',
            )
        method = _method_name(servable, signature)
        if self._method_check and method not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError(
                Code.INTERNAL,
                "Expected prediction signature method_name to be one of {"
                f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. "
                f"Was: {method}",
            )
        return signature

    def _classification_signature(self, servable: Servable, name: str, not_found: str) -> Signature:
        """GetClassificationSignatureDef + PreProcessClassification (classifier.cc)."""
        signature = _find_signature(servable, name, not_found)
        self._check_method(servable, signature, CLASSIFY_METHOD, "classification")
        sig_text = _signature_text(servable, signature)
        if len(signature.inputs) != 1:
            raise ServingError(Code.INVALID_ARGUMENT, "Expected one input Tensor.")
        if len(signature.outputs) not in (1, 2):
            raise ServingError(
                Code.INVALID_ARGUMENT, f"Expected one or two output Tensors, found {len(signature.outputs)}"
            )
        if CLASSIFY_INPUTS not in signature.inputs:
            raise ServingError(Code.INVALID_ARGUMENT, f"No classification inputs found in SignatureDef: {sig_text}")
        if CLASSIFY_OUTPUT_CLASSES not in signature.outputs and CLASSIFY_OUTPUT_SCORES not in signature.outputs:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f'Expected classification signature outputs to contain at least one of "'
                f'{CLASSIFY_OUTPUT_CLASSES}" or "{CLASSIFY_OUTPUT_SCORES}". Signature was: {sig_text}',
            )
        return signature

    def _regression_signature(self, servable: Servable, name: str, not_found: str) -> Signature:
        """GetRegressionSignatureDef + PreProcessRegression (regressor.cc)."""
        signature = _find_signature(servable, name, not_found)
        self._check_method(servable, signature, REGRESS_METHOD, "regression")
        sig_text = _signature_text(servable, signature)
        if len(signature.inputs) != 1:
            raise ServingError(Code.INVALID_ARGUMENT, "Expected one input Tensor.")
        if len(signature.outputs) != 1:
            raise ServingError(Code.INVALID_ARGUMENT, "Expected one output Tensor.")
        if REGRESS_INPUTS not in signature.inputs:
            raise ServingError(Code.INVALID_ARGUMENT, f"No regression inputs found in SignatureDef: {sig_text}")
        if REGRESS_OUTPUTS not in signature.outputs:
            raise ServingError(Code.INVALID_ARGUMENT, f"No regression outputs found in SignatureDef: {sig_text}")
        return signature

    def _check_method(self, servable: Servable, signature: Signature, expected: str, kind: str) -> None:
        method = _method_name(servable, signature)
        if self._method_check and method != expected:
            raise ServingError(
                Code.INVALID_ARGUMENT, f"Expected {kind} signature method_name to be {expected}. Was: {method}"
            )

    def _inference_signatures(self, servable: Servable, model: str, tasks: Sequence[InferenceTask]) -> list[Signature]:
        """TensorFlowMultiInferenceRunner::Infer's checks, task by task, in its order."""
        signatures, seen = [], set()
        for task in tasks:
            if not task.spec.name:
                raise ServingError(Code.INVALID_ARGUMENT, "Found ModelSpec with an empty model name.")
            if task.spec.name != model:
                raise ServingError(
                    Code.INVALID_ARGUMENT, "All ModelSpecs in a MultiInferenceRequest must access the same model name."
                )
            name = task.spec.signature
            if name in seen:
                raise ServingError(Code.INVALID_ARGUMENT, f"Duplicate evaluation of signature: {name}")
            seen.add(name)
            if task.method_name == CLASSIFY_METHOD:
                signatures.append(self._classification_signature(servable, name, _NOT_IN_GRAPH))
            elif task.method_name == REGRESS_METHOD:
                signatures.append(self._regression_signature(servable, name, _NOT_IN_GRAPH))
            else:
                _find_signature(servable, name, _NOT_IN_GRAPH)
                raise ServingError(Code.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}")
        return signatures

    # -- running ----------------------------------------------------------------------------
    def _classify_run(
        self, servable: Servable, signature: Signature, serialized: np.ndarray
    ) -> list[list[tuple[str, float]]]:
        outputs = self._runner(servable, signature.name, {CLASSIFY_INPUTS: serialized}, _classify_fetch(signature))
        return _classifications(outputs, len(serialized))

    def _regress_run(self, servable: Servable, signature: Signature, serialized: np.ndarray) -> list[float]:
        outputs = self._runner(servable, signature.name, {REGRESS_INPUTS: serialized}, ())
        return _regressions(outputs, len(serialized))


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline exceeded before the request could run")


def _lookup(servable: Servable, name: str) -> Signature | None:
    """The servable's signature of that name, or None. One the SavedModel has but that can't be served
    (e.g. a sparse input) raises the servable's INVALID_ARGUMENT saying why."""
    signature = servable.signatures.get(name)
    if signature is None and _in_saved_model(servable, name) and not name.startswith("__"):
        servable.signature(name)
    return signature


def _in_saved_model(servable: Servable, name: str) -> bool:
    try:
        return name in servable.signature_defs
    except UnicodeEncodeError:  # a protobuf map's keys are UTF-8: a name with a lone surrogate is none of them
        return False


def _find_signature(servable: Servable, name: str, not_found: str) -> Signature:
    signature = _lookup(servable, name)
    if signature is None:
        raise ServingError(Code.INVALID_ARGUMENT, f"{not_found}{name}")
    return signature


def _method_name(servable: Servable, signature: Signature) -> str:
    """The SignatureDef's method_name as written (empty included), for the method check."""
    return servable.signature_defs[signature.name].method_name


def _signature_text(servable: Servable, signature: Signature) -> str:
    """The SignatureDef as TF Serving's messages print it (its DebugString)."""
    return str(servable.signature_defs[signature.name])


def _check_output_filter(signature: Signature, output_filter: tuple) -> None:
    """predict_util.cc PreProcessPrediction: every alias names an output, once."""
    seen = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias} Outputs expected to be in "
                f"the set {{{','.join(sorted(signature.outputs))}}}.",
            )
        if alias in seen:
            raise ServingError(Code.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")
        seen.add(alias)


def _serialized(examples: Examples) -> np.ndarray:
    """util.cc InputToSerializedExampleTensor: a string [n] tensor; no examples is "Input is empty."."""
    if callable(examples):
        examples = examples()
    if len(examples) == 0:
        raise ServingError(Code.INVALID_ARGUMENT, "Input is empty.")
    array = np.empty(len(examples), dtype=object)
    array[:] = list(examples)
    return array


def _classify_fetch(signature: Signature) -> tuple:
    """The outputs Classify fetches: classes and/or scores. () (all outputs) when that is the same set,
    so the batching runner can still merge the request with others."""
    wanted = tuple(k for k in (CLASSIFY_OUTPUT_CLASSES, CLASSIFY_OUTPUT_SCORES) if k in signature.outputs)
    return () if set(wanted) == set(signature.outputs) else wanted


def _classifications(outputs: Mapping[str, np.ndarray], count: int) -> list[list[tuple[str, float]]]:
    """classifier.cc PostProcessClassificationResult: checks, then per example [(label, score), ...]."""
    classes, scores = outputs.get(CLASSIFY_OUTPUT_CLASSES), outputs.get(CLASSIFY_OUTPUT_SCORES)
    if classes is not None:
        classes = _classification_output(classes, "classes", "DT_STRING", count)
    if scores is not None:
        scores = _classification_output(scores, "scores", "DT_FLOAT", count)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}",
        )
    width = (classes if classes is not None else scores).shape[1]
    labels = [[""] * width] * count if classes is None else _labels(classes)
    values = [[0.0] * width] * count if scores is None else scores.astype(np.float64).tolist()
    return [
        list(zip(row_labels, row_scores, strict=True)) for row_labels, row_scores in zip(labels, values, strict=True)
    ]


def _classification_output(array, name: str, dtype: str, count: int) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Expected Tensor shape: [batch_size num_classes] but got {shape_string(array.shape)}",
        )
    if dtype_name(array) != dtype:
        raise ServingError(Code.INVALID_ARGUMENT, f"Expected {name} Tensor of {dtype}. Got: {dtype_name(array)}")
    if array.shape[0] != count:
        raise ServingError(
            Code.INVALID_ARGUMENT, f"Expected {name} output batch size of {count}. Got: {array.shape[0]}"
        )
    return array


def _labels(classes: np.ndarray) -> list[list[str]]:
    """Class labels as strings; ClassificationResponse.Class.label is a proto string, so UTF-8 only."""
    try:
        return [[c.decode() if isinstance(c, bytes) else str(c) for c in row] for row in classes]
    except UnicodeDecodeError:
        raise ServingError(
            Code.FAILED_PRECONDITION,
            "the model's classes output holds a label that is not valid UTF-8; "
            "ClassificationResponse labels are strings",
        ) from None


def _regressions(outputs: Mapping[str, np.ndarray], count: int) -> list[float]:
    """regressor.cc PostProcessRegressionResult: float [batch] or [batch, 1] -> one value per example."""
    array = np.asarray(outputs[REGRESS_OUTPUTS])
    if not (array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1)):
        raise ServingError(
            Code.INVALID_ARGUMENT,
            "Expected output Tensor shape to be either [batch_size] or "
            f"[batch_size, 1] but got {shape_string(array.shape)}",
        )
    if array.shape[0] != count:
        raise ServingError(
            Code.INVALID_ARGUMENT, f"Input batch size did not match output batch size: {count} vs. {array.shape[0]}"
        )
    if dtype_name(array) != "DT_FLOAT":
        raise ServingError(Code.INVALID_ARGUMENT, f"Expected output Tensor of DT_FLOAT.  Got: {dtype_name(array)}")
    return array.reshape(-1).astype(np.float64).tolist()
