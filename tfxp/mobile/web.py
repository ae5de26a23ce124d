"""Which web runtimes can run a .tflite file, read off its tensors: model_spec.json's `web`.

The rules are what tests/mobile/test_web.py measures in headless Chromium with the npm
packages pinned in tests/mobile/web/package.json (see mobile/README.md, "Web"):

- LiteRT.js (@litertjs/core 2.5.3) builds a runner for every signature at load and refuses
  the whole model when any signature's input or output is not float32, int32 or uint8
  ("Element type INT64 is not supported."). A model it loads still cannot be run when an
  input has a dynamic dimension: its Tensor has a fixed shape and 2.5.3 has no resize
  ("TensorBuffer ranked tensor type Float32[1] does not match expected ranked tensor type
  Float32[-1]"); the converter keeps the row count dynamic, so no pushed model runs there.
- tfjs-tflite (@tensorflow/tfjs-tflite 0.0.1-alpha.10) has no signatures: it runs subgraph 0
  (`primary_subgraph`), inputs named by their tensor names, at the interpreter's default
  shape (one row per call); with a dynamic input dimension the first predict() after load
  answers zeros (every output), so an app drops one warm-up call. It never writes an int64
  input (its setModelInputFromTensor has no int64 case: the tensor keeps whatever it held,
  and the answers are wrong, silently) and
  tfjs has no string tensors; float32/int32/uint8 inputs are fed as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfxp.mobile import runtime

if TYPE_CHECKING:
    from tfxp.mobile.preprocessing_params import FeatureParams

LITERT_JS = "litert.js"
TFJS_TFLITE = "tfjs-tflite"
# The npm versions the rules were measured with (test_web checks these are package.json's pins).
VERSIONS = {LITERT_JS: "2.5.3", TFJS_TFLITE: "0.0.1-alpha.10"}
PACKAGES = {LITERT_JS: "@litertjs/core", TFJS_TFLITE: "@tensorflow/tfjs-tflite"}
# @litertjs/core's DATATYPES: the element types its Tensor and signature runners accept.
LITERT_JS_DTYPES = frozenset({"float32", "int32", "uint8"})
# tfjs-tflite's TFLiteModel.setModelInputFromTensor: the input types it copies a tfjs tensor into.
TFJS_TFLITE_INPUT_DTYPES = frozenset({"float32", "float64", "int32", "uint32", "int16", "int8", "uint8", "bool"})
# TFLiteModel.predict: output types it turns into tfjs tensors.
TFJS_TFLITE_OUTPUT_DTYPES = TFJS_TFLITE_INPUT_DTYPES


def _tensor(detail: Mapping[str, Any], name: str | None = None) -> dict:
    """{"name", "tensor", "dtype", "shape"} of an interpreter detail; shape -1 where dynamic."""
    return {
        "name": name or detail["name"],
        "tensor": detail["name"],
        "dtype": np.dtype(detail["dtype"]).name if detail["dtype"] is not np.bytes_ else "string",
        "shape": [int(d) for d in detail.get("shape_signature", detail["shape"])],
    }


def model_tensors(content: bytes) -> dict:
    """The boundary tensors of a .tflite file, as the TFLite interpreter reads them.

    Returns {"signatures": {key: {"inputs": [tensor], "outputs": [tensor]}}, "primary_subgraph":
    {"signature": key or None, "inputs": [tensor], "outputs": [tensor]}}, a tensor being
    {"name", "tensor", "dtype" ("float32", "int64", "string", ...), "shape" (-1: dynamic)}.
    """
    found = runtime.boundary_details(content)
    return {
        "signatures": {
            key: {side: [_tensor(d, name) for name, d in details.items()] for side, details in sides.items()}
            for key, sides in found["signatures"].items()
        },
        "primary_subgraph": {
            "signature": found["primary"],
            "inputs": [_tensor(d) for d in found["primary_inputs"]],
            "outputs": [_tensor(d) for d in found["primary_outputs"]],
        },
    }


def _listed(tensors: Iterable[dict], limit: int = 4) -> str:
    tensors = list(tensors)
    shown = ", ".join(f"{t['name']} ({t['dtype']}{t['shape']})" for t in tensors[:limit])
    return shown + (f" and {len(tensors) - limit} more" if len(tensors) > limit else "")


def litert_js(tensors: Mapping[str, Any]) -> dict:
    """LiteRT.js's verdict: {"package", "version", "loads", "answers", "because"} (because: None when it answers)."""
    entry: dict[str, Any] = {"package": PACKAGES[LITERT_JS], "version": VERSIONS[LITERT_JS]}
    refused = [
        (key, t)
        for key, s in tensors["signatures"].items()
        for side in ("inputs", "outputs")
        for t in s[side]
        if t["dtype"] not in LITERT_JS_DTYPES
    ]
    if refused:
        dtypes = sorted({t["dtype"].upper() for _, t in refused})
        where = sorted({key for key, _ in refused})
        return {
            **entry,
            "loads": False,
            "answers": False,
            "because": "refused at load ('Element type <type> is not supported.', <type> one of "
            f"{'/'.join(dtypes)}): it builds a runner for "
            f"every signature and takes only float32, int32 and uint8 tensors; {', '.join(where)} "
            f"{'has' if len(where) == 1 else 'have'} {'/'.join(dtypes).lower()} tensors: "
            + _listed(t for _, t in refused),
        }
    dynamic = [t for s in tensors["signatures"].values() for t in s["inputs"] if -1 in t["shape"]]
    if dynamic:
        return {
            **entry,
            "loads": True,
            "answers": False,
            "because": "loads, but every run is refused: its tensors have fixed shapes and it cannot resize an "
            "input with a dynamic dimension ('TensorBuffer ranked tensor type Float32[1] does not match expected "
            "ranked tensor type Float32[-1]'); dynamic: " + _listed(dynamic),
        }
    return {**entry, "loads": True, "answers": True, "because": None}


def tfjs_tflite(tensors: Mapping[str, Any]) -> dict:
    """tfjs-tflite's verdict on subgraph 0, the only one it runs:
    {"package", "version", "signature", "loads", "answers", "because"}."""
    primary = tensors["primary_subgraph"]
    entry: dict[str, Any] = {
        "package": PACKAGES[TFJS_TFLITE],
        "version": VERSIONS[TFJS_TFLITE],
        "signature": primary["signature"],
        "loads": True,
    }
    strings = [t for t in primary["inputs"] if t["dtype"] == "string"]
    ignored = [t for t in primary["inputs"] if t["dtype"] not in TFJS_TFLITE_INPUT_DTYPES and t["dtype"] != "string"]
    outputs = [t for t in primary["outputs"] if t["dtype"] not in TFJS_TFLITE_OUTPUT_DTYPES]
    reasons = []
    if ignored:
        reasons.append(
            "WRONG ANSWERS, without an error: it never writes an input of type "
            + "/".join(sorted({t["dtype"] for t in ignored}))
            + " (the tensor keeps what it held, e.g. zeros), so the model answers as if those inputs were other "
            "values; subgraph 0 has " + _listed(ignored)
        )
    if strings:
        reasons.append("tfjs has no string tensors to feed " + _listed(strings))
    if outputs:
        reasons.append("it cannot return outputs of type " + "/".join(sorted({t["dtype"] for t in outputs})))
    if reasons:
        return {**entry, "answers": False, "because": "; ".join(reasons)}
    # With a dynamic input dimension the first predict() after load answers zeros (measured; the output
    # buffer it reads is the one from before the first allocation); fixed shapes answer from the first call.
    first_call_zeros = any(-1 in t["shape"] for t in primary["inputs"])
    feed = (
        "subgraph 0 only, inputs by tensor name, one row per predict() call (the interpreter's default "
        "shape); uint8 byte inputs as int32 tfjs tensors [1, width]"
    )
    if first_call_zeros:
        feed += "; call predict() once after loading and drop that answer (the first call after load answers zeros)"
    return {**entry, "answers": True, "because": None, "first_call_zeros": first_call_zeros, "feed": feed}


def web_support(content: bytes, variant: str | None = None) -> dict:
    """model_spec.json's `web` for one .tflite file: {"supported", "variant", "runtimes": {"litert.js": ...,
    "tfjs-tflite": ...}, "because"}. `supported`: some runtime answers as mobile-predict does;
    `because`: None when supported, else why no web runtime can run it."""
    tensors = model_tensors(content)
    runtimes = {LITERT_JS: litert_js(tensors), TFJS_TFLITE: tfjs_tflite(tensors)}
    supported = any(r["answers"] for r in runtimes.values())
    because = None
    if not supported:
        because = "web: not supported, because " + "; ".join(
            f"{name} {r['version']}: {r['because']}" for name, r in runtimes.items()
        )
    return {"supported": supported, "variant": variant, "runtimes": runtimes, "because": because}


WEB_SIGNATURE = "serving_web"
WEB_FILE = "model_web.tflite"


def split_int64(values: np.ndarray) -> np.ndarray:
    """int64 [n] -> int32 [n, 2] (high, low) halves, as `serving_web` takes an int: value = high * 2**32 +
    (low mod 2**32). Exact for every int64; the missing marker -2**63 is (-2**31, 0)."""
    values = np.asarray(values, np.int64)
    high = (values >> 32).astype(np.int32)
    low = (values & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
    return np.stack([high, low], axis=1)


def web_columns(cols: Mapping[str, np.ndarray], inputs: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """`runtime.columns(...)` output -> `serving_web`'s inputs for the same rows: int64 as int32 [n, 2]
    (`split_int64`), strings as uint8 [n, byte_width] (`runtime.encode_bytes`), float32 [n] as is.

    `inputs`: the spec's `web.inputs` ({"name", "dtype", "shape", "encoding"}). Row i of each array is
    one call's input (the file's inputs are one row: [1, ...])."""
    out = {}
    for item in inputs:
        values = cols[item["name"]]
        if item["encoding"] == "int64_halves":
            out[item["name"]] = split_int64(values)
        elif item["encoding"] == "utf8_bytes":
            out[item["name"]] = runtime.encode_bytes(values, item["shape"][1])
        else:
            out[item["name"]] = np.asarray(values, np.float32)
    return out


# -- the web variant: model_web.tflite ------------------------------------------------------------

# |web - float variant's serving_bytes| <= WEB_MAX_DIFF x max(1, |float's|): the same float32 graph after
# the int64 halves are joined (measured on taxi: 6e-8, float32 rounding of a different op order).
WEB_MAX_DIFF = 1e-6
ENCODINGS = {"int64": "int64_halves", "string": "utf8_bytes", "float32": "float32"}


def web_inputs(params: Sequence[FeatureParams]) -> list[dict]:
    """`serving_web`'s inputs as model_spec.json's web.inputs states them: {"name", "dtype", "shape",
    "encoding", "missing_marker", "required"} (graph.build_module's web_fn; one row per call)."""
    out = []
    for p in params:
        encoding = ENCODINGS[p.dtype.value]
        item: dict[str, Any] = {"name": p.name, "encoding": encoding, "required": not p.optional}
        if encoding == "int64_halves":
            item.update(dtype="int32", shape=[1, 2], missing_marker=[-(2**31), 0])
        elif encoding == "utf8_bytes":
            item.update(dtype="uint8", shape=[1, p.byte_width], byte_width=p.byte_width, missing_marker=0)
        else:
            item.update(dtype="float32", shape=[1], missing_marker="NaN")
        out.append(item)
    return out


def convert_web(module: Any, work_dir: str | Path) -> bytes:
    """model_web.tflite's bytes: `module.web_fn` (graph.build_module(..., web_signature=True)) saved alone as
    the one signature `serving_web`, float32 (no quantization). Raises the converter's errors."""
    import tensorflow as tf

    from tfxp.mobile.converter import to_tflite

    signatures = {WEB_SIGNATURE: module.web_fn.get_concrete_function()}
    tf.saved_model.save(module, str(work_dir), signatures=signatures)
    return to_tflite(str(work_dir), list(signatures), quantize=False)


def run_web(content: bytes, cols: Mapping[str, np.ndarray], output: str) -> np.ndarray:
    """The web file's answers on `web_columns(...)`, one row per call: float32 [n] or [n, K]."""
    interpreter = runtime.interpreter_class()(model_content=content)
    runner = interpreter.get_signature_runner(WEB_SIGNATURE)
    rows = len(next(iter(cols.values())))
    answers = [
        np.asarray(runner(**{k: v[i : i + 1] for k, v in cols.items()})[output]).reshape(-1) for i in range(rows)
    ]
    out = np.asarray(answers, np.float32)
    return out.reshape(-1) if out.ndim == 2 and out.shape[1] == 1 else out


def gate_web(
    content: bytes,
    float_content: bytes,
    rows: Sequence[Mapping[str, Any]],
    params: Sequence[FeatureParams],
    output: str,
) -> dict:
    """The web file's parity gate: on `rows` (eval rows + contract rows), its answers are the float
    variant's (itself gated against predict_raw) within WEB_MAX_DIFF x max(1, |float's|), NaN on exactly
    the same rows. Returns {"rows", "max_abs_diff", "nan_rows", "gate", "passed", "reasons"}."""
    from tfxp.mobile.preprocessing_params import input_spec

    cols = runtime.columns(rows, input_spec(params))
    got = run_web(content, web_columns(cols, web_inputs(params)), output)
    model = runtime.TFLiteModel(model_content=float_content, output=output, signature=_float_signature(float_content))
    want = np.asarray(model.run(cols), np.float32).reshape(got.shape)
    got2, want2 = got.reshape(len(rows), -1).astype(np.float64), want.reshape(len(rows), -1).astype(np.float64)
    nan_got, nan_want = np.isnan(got2).all(axis=1), np.isnan(want2).all(axis=1)
    reasons = []
    if (nan_got != nan_want).any():
        reasons.append(
            f"no answer on other rows than the float variant: rows {np.flatnonzero(nan_got != nan_want)[:5]}"
        )
    both = ~np.isnan(got2) & ~np.isnan(want2)
    diff = np.where(both, np.abs(got2 - want2), 0.0)
    magnitude = np.maximum(1.0, np.abs(np.nan_to_num(want2, nan=0.0, posinf=0.0, neginf=0.0)))
    scaled = float(np.max(diff / magnitude)) if diff.size else 0.0
    if not scaled <= WEB_MAX_DIFF:
        reasons.append(
            f"max |{output} - float variant's| = {float(np.max(diff)):.3g} > {WEB_MAX_DIFF:g} x max(1, |float's|)"
        )
    if not rows:
        reasons.append("no rows to check parity on")
    return {
        "rows": len(rows),
        "max_abs_diff": float(np.max(diff)) if diff.size else None,
        "nan_rows": int(nan_got.sum()),
        "gate": f"same answers as the float variant's {_float_signature(float_content)} within {WEB_MAX_DIFF:g} x "
        "max(1, |float's|), NaN on the same rows, on the eval and contract rows",
        "passed": not reasons,
        "reasons": reasons,
    }


def _float_signature(content: bytes) -> str:
    from tfxp.mobile.runtime import BYTES_SIGNATURE, SIGNATURE

    signatures = runtime.interpreter_class()(model_content=content).get_signature_list()
    return BYTES_SIGNATURE if BYTES_SIGNATURE in signatures else SIGNATURE


def web_entry(
    default_content: bytes | None,
    default_variant: str | None,
    web_content: bytes | None,
    web_parity: Mapping[str, Any] | None,
    params: Sequence[FeatureParams],
    reasons: Sequence[str] = (),
) -> dict | None:
    """model_spec.json's `web`. With a written web file: its verdicts (`web_support`), file, sha256,
    signature, inputs and gate; the default variant's own verdicts under `default_variant` (why the
    mobile files are not for the web). Without one: the default variant's verdicts, and `web_file_rejected`
    (`reasons`). None when no variant was written."""
    if default_content is None:
        return None
    default = web_support(default_content, default_variant)
    if web_content is None:
        return {**default, "file": None, "web_file_rejected": list(reasons)}
    import hashlib

    entry = web_support(web_content, "web")
    tensors = {t["name"]: t["tensor"] for t in model_tensors(web_content)["signatures"][WEB_SIGNATURE]["inputs"]}
    return {
        **entry,
        "file": WEB_FILE,
        "sha256": hashlib.sha256(web_content).hexdigest(),
        "bytes": len(web_content),
        "signature": WEB_SIGNATURE,
        # tfjs-tflite feeds by tensor name (it has no signatures): each input's tensor in this file.
        "inputs": [{**item, "tensor": tensors[item["name"]]} for item in web_inputs(params)],
        "int64_halves": "an int64 v as int32 [high, low]: high = floor(v / 2**32), low = v - high * 2**32 "
        "written as int32 (low | 0 in JS); exact for every int64; missing = [-2**31, 0]",
        # The web file is the float graph: its answers are the float variant's (even when the default is quant).
        "answers_as": "float",
        "parity": dict(web_parity) if web_parity is not None else None,
        "default_variant": {"variant": default_variant, "runtimes": default["runtimes"], "because": default["because"]},
    }
