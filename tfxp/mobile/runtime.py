"""Reference on-device inference in Python: raw rows -> tip probabilities, with TFLite only.

This is what an app does, in Python: read `model_spec.json`, turn each raw row
into one tensor per input (named as the CSV column, missing values written as
the spec's markers; rows are read by `tfxp.rows`, as the serving clients read
them), run the `serving_default` signature, read `probability`.
The TFLite model does all preprocessing itself, and answers NaN for a row the
server refuses (a required input missing, an infinite float): the same
missing-value contract in every variant, checked by the converter's parity gate.

`serving_bytes` is the same model for runtimes without string tensors
(TensorFlowLiteSwift): string inputs are UTF-8 bytes, uint8 [batch, width],
cut to `width` and zero-padded (`encode_bytes`). Both give identical results.

No TensorFlow here: the interpreter comes from `ai_edge_litert` (LiteRT), or from
`tflite_runtime` (its predecessor) when LiteRT is not installed (`RUNTIMES`;
$TFXP_TFLITE_RUNTIME or `runtime=` picks one).
An interpreter is not thread-safe; use one `MobileModel` per thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tfxp import rows as R
from tfxp.rows import RowError  # noqa: F401  (raised by MobileModel.predict; importable from here)

SPEC_FILE = "model_spec.json"
SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
SIGNATURES = (SIGNATURE, BYTES_SIGNATURE)
FLOAT = "float"
QUANT = "quant"
VARIANT_FILES = {FLOAT: "model.tflite", QUANT: "model_quant.tflite"}
# Rows per interpreter call: bounds memory for big row files (the batch dim is dynamic).
CHUNK_ROWS = 4096
# serving_bytes compares [rows, keys, width] bytes: smaller chunks bound that.
BYTES_CHUNK_ROWS = 256

_NUMPY_DTYPES = {R.DT_INT64: np.int64, R.DT_FLOAT: np.float32, R.DT_STRING: object}


class ModelSpecError(ValueError):
    """model_spec.json is missing, malformed, or does not match the .tflite file."""


# The TFLite interpreters this module runs on, in the order it prefers them: LiteRT (tflite-runtime's
# successor: wheels for Python >= 3.12 and macOS arm64), then tflite-runtime (2.14 was its last release),
# then TensorFlow's own (TensorFlow is a dependency of the pipeline, so a wheel installed without the
# `mobile` extra still converts, gates and pushes TFLite models; only slower to import). All three have
# the same Interpreter API. Name -> (module, distribution).
RUNTIMES = {
    "ai-edge-litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow.lite.python.interpreter", "tensorflow"),
}
# Set to one of RUNTIMES' names to run everything (mobile-predict, the parity gate) on that interpreter.
RUNTIME_ENV = "TFXP_TFLITE_RUNTIME"


def interpreter_class(runtime: str | None = None) -> type:
    """The TFLite `Interpreter` class of `runtime` (a name in RUNTIMES), of $TFXP_TFLITE_RUNTIME when
    `runtime` is None, else of the first of RUNTIMES installed (LiteRT first).

    Raises ValueError for an unknown name, ImportError when the named runtime (or, unnamed, every
    runtime) is not installed.
    """
    import importlib
    import os

    runtime = runtime or os.environ.get(RUNTIME_ENV) or None
    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"unknown TFLite runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    for name in [runtime] if runtime else RUNTIMES:
        try:
            return importlib.import_module(RUNTIMES[name][0]).Interpreter
        except ImportError:
            continue
    if runtime:
        raise ImportError(f"the TFLite runtime {runtime!r} is not installed (pip install {RUNTIMES[runtime][1]})")
    raise ImportError("no TFLite interpreter: install ai-edge-litert or tflite-runtime (the `mobile` extra)")


def runtime_of(interpreter_cls: type) -> dict[str, str]:
    """{"package", "version"} of the distribution an Interpreter class comes from (recorded with the
    parity gate's results and printed by mobile-predict, so a number says which runtime measured it)."""
    from importlib import metadata

    module = interpreter_cls.__module__
    for name, (module_name, distribution) in RUNTIMES.items():
        if module == module_name or module.startswith(module_name.split(".")[0] + "."):
            try:
                return {"package": name, "version": metadata.version(distribution)}
            except metadata.PackageNotFoundError:
                return {"package": name, "version": "unknown"}
    return {"package": module, "version": "unknown"}


def boundary_details(content: bytes) -> dict:
    """A .tflite file's boundary tensors as the TFLite interpreter reports them (its detail dicts: name,
    index, dtype, shape, shape_signature): {"signatures": {key: {"inputs": {input: detail}, "outputs":
    {output: detail}}}, "primary_inputs": [detail], "primary_outputs": [detail], "primary": key or None}.
    The primary subgraph (0) is what a runtime without signatures sees, in positional order; `primary`
    is the signature owning exactly its tensors. One reader for model_spec.tensor_map and web.model_tensors.
    """
    interpreter = interpreter_class()(model_content=content)
    signatures = {}
    for key in sorted(interpreter.get_signature_list()):
        runner = interpreter.get_signature_runner(key)
        signatures[key] = {
            side: dict(sorted(details.items()))
            for side, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details()))
        }
    primary_inputs, primary_outputs = interpreter.get_input_details(), interpreter.get_output_details()

    def tensors(details) -> list[tuple[str, int]]:
        return sorted((d["name"], int(d["index"])) for d in details)

    primary = next(
        (
            key
            for key, sides in signatures.items()
            if tensors(sides["inputs"].values()) == tensors(primary_inputs)
            and tensors(sides["outputs"].values()) == tensors(primary_outputs)
        ),
        None,
    )
    return {
        "signatures": signatures,
        "primary_inputs": primary_inputs,
        "primary_outputs": primary_outputs,
        "primary": primary,
    }


def missing_marker_json(dtype: str) -> Any:
    """The missing-value marker of a spec dtype as written in model_spec.json (NaN as the string "NaN")."""
    marker = R.missing_marker(dtype)
    return "NaN" if isinstance(marker, float) and math.isnan(marker) else marker


def columns(rows: Sequence[Mapping[str, Any]], inputs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Raw rows -> one numpy array per input, absent values ("", None, NaN, no key) as markers.

    `inputs`: model_spec.json's [{"name", "dtype": "int64" | "float32" | "string"}, ...].
    Arrays: int64, float32, or object (UTF-8 bytes) [len(rows)]. Values are read as
    the serving clients read them (`tfxp.rows.raw_columns`). Raises RowError naming
    the row and column, ValueError for a dtype rows don't hold.
    """
    dtypes = {spec["name"]: R.dtype_name(spec["dtype"]) for spec in inputs}
    out: dict[str, np.ndarray] = {}
    for name, values in R.raw_columns(rows, dtypes).items():
        if dtypes[name] == R.DT_STRING:
            values = [value.encode("utf-8") for value in values]
        out[name] = np.array(values, dtype=_NUMPY_DTYPES[dtypes[name]])
    return out


def encode_bytes(values: Sequence[bytes] | np.ndarray, width: int) -> np.ndarray:
    """Strings (UTF-8 bytes) as `serving_bytes` takes them: uint8 [n, width], cut to width, zero-padded."""
    out = np.zeros([len(values), width], np.uint8)
    for i, value in enumerate(values):
        value = value[:width]
        out[i, : len(value)] = np.frombuffer(value, np.uint8)
    return out


class TFLiteModel:
    """One signature of a .tflite file: input columns -> probabilities.

    `run` takes `columns(...)` output for either signature: for `serving_bytes`
    the string columns are encoded to the byte width the model declares.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model_content: bytes | None = None,
        num_threads: int = 1,
        output: str | None = None,
        signature: str = SIGNATURE,
        runtime: str | None = None,
    ):
        if (model_path is None) == (model_content is None):
            raise ValueError("give model_path or model_content")
        Interpreter = interpreter_class(runtime)
        self.runtime = runtime_of(Interpreter)  # {"package", "version"}
        if model_path is not None:
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        else:
            self.interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        self.signatures = self.interpreter.get_signature_list()
        if signature not in self.signatures:
            raise ModelSpecError(f"the model has no {signature!r} signature (it has {sorted(self.signatures)})")
        self.signature = signature
        self.runner = self.interpreter.get_signature_runner(signature)
        outputs = sorted(self.runner.get_output_details())
        if output is None:  # the signature's one output (probability, probabilities or prediction)
            if len(outputs) != 1:
                raise ModelSpecError(f"the {signature!r} signature has outputs {outputs}: name one")
            output = outputs[0]
        elif output not in outputs:
            raise ModelSpecError(f"the {signature!r} signature has no output {output!r} (it has {outputs})")
        self.output = output
        self._byte_widths = {name: d["shape"][1] for name, d in self.input_details().items() if d["dtype"] == "uint8"}
        self._allocated_for: tuple | None = None  # input shapes the tensors are allocated for
        self._wrapper = getattr(self.runner, "_interpreter_wrapper", None)
        if self._wrapper is not None:
            self._subgraph = self.runner._subgraph_index
            self._input_index = dict(self.runner._inputs)
            self._output_index = dict(self.runner._outputs)[output]

    def _invoke(self, chunk: Mapping[str, np.ndarray]) -> np.ndarray:
        """One interpreter call. The signature runner resizes and re-allocates every
        tensor on each call (~half of a single-row call here); when the shapes are
        those of the previous call, only set the inputs and invoke, as Android's
        Interpreter.runSignature does. Uses the runner's interpreter handle, which
        tflite-runtime and ai-edge-litert both have; without it, every call goes
        through the runner."""
        shapes = tuple((name, value.shape) for name, value in chunk.items())
        if shapes != self._allocated_for or self._wrapper is None:
            result = self.runner(**chunk)[self.output]
            self._allocated_for = shapes
            return result
        wrapper, subgraph = self._wrapper, self._subgraph
        for name, value in chunk.items():
            wrapper.SetTensor(self._input_index[name], value, subgraph)
        wrapper.Invoke(subgraph)
        return wrapper.GetTensor(self._output_index, subgraph)

    def input_details(self) -> dict[str, dict]:
        """name -> {"dtype": "int64"|"float32"|"string", "shape": [-1, ...]} of the signature's inputs."""
        return {name: _describe(d) for name, d in self.runner.get_input_details().items()}

    def output_details(self) -> dict[str, dict]:
        return {name: _describe(d) for name, d in self.runner.get_output_details().items()}

    def run(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's output for one batch of input columns: float32 [batch] (binary probability,
        regression prediction) or [batch, K] (multiclass probabilities), as model_spec.json's `output`.

        NaN for a row the model has no answer for (a required input at its missing
        marker, an infinite float). Raises ValueError when the columns differ in
        length (the model itself refuses them too, less readably: RESHAPE fails).
        """
        _check_lengths(cols)
        batch = len(next(iter(cols.values())))
        if batch == 0:
            return np.zeros([0], np.float32)
        step = BYTES_CHUNK_ROWS if self._byte_widths else CHUNK_ROWS
        if batch <= step and not self._byte_widths:
            return _per_row(self._invoke(cols))
        parts = []
        for start in range(0, batch, step):
            chunk = {}
            for name, values in cols.items():
                values = values[start : start + step]
                if name in self._byte_widths and values.dtype == object:
                    values = encode_bytes(values, self._byte_widths[name])
                chunk[name] = values
            parts.append(_per_row(self._invoke(chunk)))
        return np.concatenate(parts, axis=0)


def _per_row(output) -> np.ndarray:
    """[batch] for one value per row ([batch, 1] flattened), [batch, K] for K values per row."""
    output = np.asarray(output)
    return output.reshape(-1) if output.ndim != 2 or output.shape[1] == 1 else output


def _check_lengths(cols: Mapping[str, np.ndarray]) -> None:
    """One value per row in every input, as `predict_raw` checks (models.signatures.check_raw_inputs)."""
    lengths = {name: len(values) for name, values in cols.items()}
    if len(set(lengths.values())) > 1:
        first = next(iter(lengths))
        other = next(name for name, n in lengths.items() if n != lengths[first])
        raise ValueError(
            f"input {other} has {lengths[other]} values but input {first} has {lengths[first]}: "
            "every input needs one value per row"
        )


def _describe(detail: Mapping[str, Any]) -> dict:
    dtype = np.dtype(detail["dtype"])
    name = "string" if dtype.kind in "SUO" else dtype.name
    shape = detail.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = detail["shape"]
    return {"dtype": name, "shape": [int(d) for d in shape]}


def read_spec(model_dir: str | Path) -> dict:
    path = Path(model_dir) / SPEC_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelSpecError(f"{path}: not found (a converted model folder holds {SPEC_FILE})") from None
    except json.JSONDecodeError as exc:
        raise ModelSpecError(f"{path}: invalid JSON ({exc.msg})") from None
    for key in ("inputs", "output", "variants"):
        if key not in spec:
            raise ModelSpecError(f"{path}: no {key!r}")
    return spec


class MobileModel:
    """A converted model folder (model_spec.json + .tflite files): `predict(rows) -> probabilities`.

    `variant`: "float" or "quant"; default: the spec's `default_variant`.
    `signature`: "serving_default" (string tensors) or "serving_bytes" (strings as bytes).
    `runtime`: a name in RUNTIMES; default: $TFXP_TFLITE_RUNTIME, else LiteRT, else tflite-runtime.
    Checks that the interpreter's signatures match the spec's inputs and output.
    """

    def __init__(
        self,
        model_dir: str | Path,
        variant: str | None = None,
        *,
        signature: str = SIGNATURE,
        num_threads: int = 1,
        runtime: str | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.spec = read_spec(self.model_dir)
        available = {name: v for name, v in self.spec["variants"].items() if v.get("file")}
        self.variant = variant or self.spec.get("default_variant") or next(iter(available), None)
        if self.variant not in available:
            raise ModelSpecError(f"variant {self.variant!r} is not in {self.model_dir} (there: {sorted(available)})")
        self.path = self.model_dir / available[self.variant]["file"]
        self.inputs: list[dict] = self.spec["inputs"]
        self.model = TFLiteModel(
            self.path, num_threads=num_threads, output=self.spec["output"]["name"], signature=signature, runtime=runtime
        )
        _check_matches(self.model, self.spec, self.path)

    @property
    def version(self) -> Any:
        return self.spec.get("model_version")

    def predict(self, rows: Iterable[Mapping[str, Any]]) -> list[float] | list[list[float]]:
        """One result per raw row (CSV strings or JSON values; blanks are missing): a float (binary
        probability, regression prediction) or a list of K floats (multiclass probabilities).

        NaN for a row without an answer (a required input missing, an infinite
        float). Raises RowError on a value its input's dtype cannot hold.
        """
        rows = list(rows)
        out = self.model.run(columns(rows, self.inputs))
        if out.ndim == 2:
            return [[float(p) for p in row] for row in out]
        return [float(p) for p in out]


def _check_matches(model: TFLiteModel, spec: Mapping[str, Any], path: Path) -> None:
    """The spec's inputs (per signature) and output are the interpreter's, names, dtypes and shapes."""
    declared_signatures = spec.get("signatures") or {SIGNATURE: {"inputs": spec["inputs"]}}
    top = [{"name": i["name"], "dtype": i["dtype"], "shape": i["shape"]} for i in spec["inputs"]]
    if SIGNATURE not in declared_signatures or top != [
        {"name": i["name"], "dtype": i["dtype"], "shape": i["shape"]} for i in declared_signatures[SIGNATURE]["inputs"]
    ]:
        raise ModelSpecError(f"{path}: {SPEC_FILE} inputs do not match its {SIGNATURE} signature")
    if set(declared_signatures) != set(model.signatures):
        raise ModelSpecError(
            f"{path}: signatures {sorted(model.signatures)} do not match {SPEC_FILE} {sorted(declared_signatures)}"
        )
    declared = {
        i["name"]: {"dtype": i["dtype"], "shape": i["shape"]} for i in declared_signatures[model.signature]["inputs"]
    }
    actual = model.input_details()
    if declared != actual:
        raise ModelSpecError(f"{path}: {model.signature} inputs {actual} do not match {SPEC_FILE} {declared}")
    if spec["output"]["name"] not in model.output_details():
        raise ModelSpecError(f"{path}: no output {spec['output']['name']!r}")
    _check_tensors(model, spec, path)


def _check_tensors(model: TFLiteModel, spec: Mapping[str, Any], path: Path) -> None:
    """The tensor names and indices the spec states for this file (format 2, issue 18) are the interpreter's:
    an app mapping positions to names through them would otherwise feed the wrong inputs."""
    variant = next((v for v in spec.get("variants", {}).values() if v.get("file") == path.name), None)
    declared = ((variant or {}).get("tensors") or {}).get("signatures", {}).get(model.signature)
    if declared is None:  # a spec written before issue 18: nothing stated, nothing to check
        return
    for side, details in (("inputs", model.runner.get_input_details()), ("outputs", model.runner.get_output_details())):
        actual = {name: {"tensor": d["name"], "tensor_index": int(d["index"])} for name, d in details.items()}
        if declared.get(side) != actual:
            raise ModelSpecError(f"{path}: {SPEC_FILE} {model.signature} {side} tensors do not match the model's")
