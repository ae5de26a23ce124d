"""TF Serving's two wire protocols in front of the data plane: REST (TF Serving's JSON) and gRPC.

Modelled on KServe's server: `tfxp.serving.dataplane` is protocol-agnostic; the front ends here
translate a request into a data-plane call and its answer (or error) back into TF Serving's wire
format. The public interface is what the server, the data plane and the tests use; every other
module here is private (`_name`).

- `RestFrontEnd` (`rest.py`): aiohttp handlers for TF Serving's REST API (`/v1/models/...`).
- `build_server`, `SERVING`, `NOT_SERVING` (`grpc_server.py`): the gRPC PredictionService,
  ModelService and health services.
- TF Serving's JSON, as TF Serving 2.16.1's `json_tensor.cc` reads and writes it (the rules:
  `_json_common`'s docstring): `parse_json` / `dumps` / `to_utf8` (the text, `_json_text`),
  `signature_name`, `decode_predict_request` (row or columnar; inputs described by `TensorInfo`,
  the server's one type from `tfxp.serving.signature_def`) and `decode_examples` (`_json_request`,
  over `_json_values`: JSON values -> tensor values, b64), `encode_*_response` and `decimal_texts`
  (`_json_response`); every refusal is a `CodecError` carrying TF Serving's message.

The front ends import aiohttp / grpc, so they load on first use (PEP 562): importing the JSON codec
does not start either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tfxp.serving.protocol._json_common import COLUMNAR, ROW, CodecError
from tfxp.serving.protocol._json_request import decode_examples, decode_predict_request, signature_name
from tfxp.serving.protocol._json_response import (
    decimal_texts,
    encode_classify_response,
    encode_predict_response,
    encode_regress_response,
)
from tfxp.serving.protocol._json_text import dumps, parse_json, to_utf8
from tfxp.serving.signature_def import TensorInfo

if TYPE_CHECKING:
    from tfxp.serving.protocol.grpc_server import NOT_SERVING, SERVING, build_server
    from tfxp.serving.protocol.rest import RestFrontEnd

__all__ = [
    "COLUMNAR",
    "NOT_SERVING",
    "ROW",
    "SERVING",
    "CodecError",
    "RestFrontEnd",
    "TensorInfo",
    "build_server",
    "decimal_texts",
    "decode_examples",
    "decode_predict_request",
    "dumps",
    "encode_classify_response",
    "encode_predict_response",
    "encode_regress_response",
    "parse_json",
    "signature_name",
    "to_utf8",
]

_LAZY = {
    "RestFrontEnd": "tfxp.serving.protocol.rest",
    "build_server": "tfxp.serving.protocol.grpc_server",
    "SERVING": "tfxp.serving.protocol.grpc_server",
    "NOT_SERVING": "tfxp.serving.protocol.grpc_server",
}


def __getattr__(name: str) -> Any:
    """The front ends, imported on first use (they pull in aiohttp / grpc)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
