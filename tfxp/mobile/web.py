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
  shape (one row per call); the first predict() after load answers zeros (every output),
  so an app drops one warm-up call. It never writes an int64 input (its setModelInputFromTensor has
  no int64 case: the tensor keeps whatever it held, and the answers are wrong, silently) and
  tfjs has no string tensors; float32/int32/uint8 inputs are fed as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tfxp.mobile import runtime

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
    interpreter = runtime.interpreter_class()(model_content=content)
    signatures = {}
    for key in sorted(interpreter.get_signature_list()):
        runner = interpreter.get_signature_runner(key)
        signatures[key] = {
            side: [_tensor(d, name) for name, d in sorted(details.items())]
            for side, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details()))
        }
    primary_inputs = [_tensor(d) for d in interpreter.get_input_details()]
    primary_outputs = [_tensor(d) for d in interpreter.get_output_details()]
    primary = next(
        (
            key
            for key, s in signatures.items()
            if sorted(t["tensor"] for t in s["inputs"]) == sorted(t["tensor"] for t in primary_inputs)
            and sorted(t["tensor"] for t in s["outputs"]) == sorted(t["tensor"] for t in primary_outputs)
        ),
        None,
    )
    return {
        "signatures": signatures,
        "primary_subgraph": {"signature": primary, "inputs": primary_inputs, "outputs": primary_outputs},
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
    return {
        **entry,
        "answers": True,
        "because": None,
        "feed": "subgraph 0 only, inputs by tensor name (variants.<name>.tensors.primary_subgraph), one row per "
        "predict() call (the interpreter's default shape); uint8 byte inputs as int32 tfjs tensors [1, width]; "
        "call predict() once after loading and drop that answer (the first call after load answers zeros)",
    }


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
