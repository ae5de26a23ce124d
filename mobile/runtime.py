"""Reference on-device inference in Python: raw rows -> tip probabilities, with TFLite only.

This is what an app does, in Python: read `model_spec.json`, turn each raw row
into one tensor per input (named as the CSV column, missing values written as
the spec's markers), run the `serving_default` signature, read `probability`.
The TFLite model does all preprocessing itself.

No TensorFlow here: the interpreter comes from `tflite_runtime`, or from
`ai_edge_litert` (its successor) when `tflite_runtime` is not installed.
An interpreter is not thread-safe; use one `MobileModel` per thread.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from models import features as F
from serving.client import RowError, parse_value

SPEC_FILE = "model_spec.json"
SIGNATURE = "serving_default"
FLOAT = "float"
QUANT = "quant"
VARIANT_FILES = {FLOAT: "model.tflite", QUANT: "model_quant.tflite"}
# Rows per interpreter call: bounds memory for big row files (the batch dim is dynamic).
CHUNK_ROWS = 4096

_NUMPY_DTYPES = {"int64": np.int64, "float32": np.float32, "string": object}


class ModelSpecError(ValueError):
    """model_spec.json is missing, malformed, or does not match the .tflite file."""


def interpreter_class() -> type:
    """tflite_runtime's Interpreter, else ai_edge_litert's (same API)."""
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError("no TFLite interpreter: install tflite-runtime or ai-edge-litert") from None
    return Interpreter


def missing_marker_json(dtype: str) -> Any:
    """The missing-value marker of a spec dtype as written in model_spec.json (NaN as the string "NaN")."""
    marker = F.missing_value(F.DType(dtype))
    return "NaN" if isinstance(marker, float) and math.isnan(marker) else marker


def input_spec_for_features() -> list[dict]:
    """name/dtype/marker of each model input, from `models.features` (before a spec file exists)."""
    return [{"name": f.name, "dtype": f.dtype.value, "missing_marker": missing_marker_json(f.dtype.value)}
            for f in F.FEATURES]


def columns(rows: Sequence[Mapping[str, Any]], inputs: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Raw rows -> one numpy array per input, absent values ("", None, NaN, no key) as markers.

    Values are read exactly as the serving client reads them for `predict_raw`
    (`serving.client.parse_value`). Raises RowError naming the row and column.
    """
    out: dict[str, np.ndarray] = {}
    for spec in inputs:
        name, dtype = spec["name"], F.DType(spec["dtype"])
        marker = F.missing_value(dtype)
        values = []
        for index, row in enumerate(rows):
            try:
                value = parse_value(row.get(name), dtype)
            except (TypeError, ValueError) as exc:
                raise RowError(f"row {index}: {name}: cannot read {row.get(name)!r} as {dtype.value} ({exc})") from None
            if value is None:
                value = marker
            if dtype is F.DType.STRING:
                value = value.encode("utf-8")
            elif dtype is F.DType.INT and not -(2**63) <= value < 2**63:
                raise RowError(f"row {index}: {name}: {value} is out of int64 range")
            values.append(value)
        out[name] = np.array(values, dtype=_NUMPY_DTYPES[dtype.value])
    return out


class TFLiteModel:
    """One .tflite file's `serving_default` signature: input columns -> probabilities."""

    def __init__(self, model_path: str | Path | None = None, *, model_content: bytes | None = None,
                 num_threads: int = 1, output: str = F.OUTPUT):
        if (model_path is None) == (model_content is None):
            raise ValueError("give model_path or model_content")
        Interpreter = interpreter_class()
        if model_path is not None:
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        else:
            self.interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE not in signatures:
            raise ModelSpecError(f"the model has no {SIGNATURE!r} signature (it has {sorted(signatures)})")
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.output = output

    def input_details(self) -> dict[str, dict]:
        """name -> {"dtype": "int64"|"float32"|"string", "shape": [-1, ...]} of the signature's inputs."""
        return {name: _describe(d) for name, d in self.runner.get_input_details().items()}

    def output_details(self) -> dict[str, dict]:
        return {name: _describe(d) for name, d in self.runner.get_output_details().items()}

    def run(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities (float32 [batch]) for one batch of input columns."""
        batch = len(next(iter(cols.values())))
        if batch == 0:
            return np.zeros([0], np.float32)
        parts = []
        for start in range(0, batch, CHUNK_ROWS):
            chunk = {name: values[start:start + CHUNK_ROWS] for name, values in cols.items()}
            parts.append(np.asarray(self.runner(**chunk)[self.output]).reshape(-1))
        return np.concatenate(parts)


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
    Checks that the interpreter's signature matches the spec's inputs and output.
    """

    def __init__(self, model_dir: str | Path, variant: str | None = None, *, num_threads: int = 1):
        self.model_dir = Path(model_dir)
        self.spec = read_spec(self.model_dir)
        available = {name: v for name, v in self.spec["variants"].items() if v.get("file")}
        self.variant = variant or self.spec.get("default_variant") or next(iter(available), None)
        if self.variant not in available:
            raise ModelSpecError(f"variant {self.variant!r} is not in {self.model_dir} (there: {sorted(available)})")
        self.path = self.model_dir / available[self.variant]["file"]
        self.inputs: list[dict] = self.spec["inputs"]
        self.model = TFLiteModel(self.path, num_threads=num_threads, output=self.spec["output"]["name"])
        _check_matches(self.model, self.spec, self.path)

    @property
    def version(self) -> Any:
        return self.spec.get("model_version")

    def predict(self, rows: Iterable[Mapping[str, Any]]) -> list[float]:
        """Tip probabilities, one per raw row (CSV strings or JSON values; blanks are missing)."""
        rows = list(rows)
        return [float(p) for p in self.model.run(columns(rows, self.inputs))]


def _check_matches(model: TFLiteModel, spec: Mapping[str, Any], path: Path) -> None:
    actual = model.input_details()
    declared = {i["name"]: i["dtype"] for i in spec["inputs"]}
    if declared != {name: d["dtype"] for name, d in actual.items()}:
        raise ModelSpecError(f"{path}: inputs {actual} do not match {SPEC_FILE} {declared}")
    if spec["output"]["name"] not in model.output_details():
        raise ModelSpecError(f"{path}: no output {spec['output']['name']!r}")
