"""Serving: a TF Serving-compatible model server (REST + gRPC), clients, deploy files.

Locally and in CI the project's own server speaks TF Serving's wire protocol
(built on the official `tensorflow-serving-api` protos); production runs the real
`tensorflow/serving` container configured by `tfxp/serving/deploy/`. The same clients
and contract tests work against both.

Layout (modelled on KServe's Python server):

- `server.py`: starts everything from `ServerOptions` (`options.py`, `config.py`).
- `repository.py`: owns loading: model versions on disk -> `servable.Servable`s.
- `dataplane.py`: the protocol-agnostic data plane (predict, classify, regress, metadata).
- `protocol/`: the front ends: REST and TF Serving's JSON, gRPC (public interface in its `__init__`).
- `signature_def.py`: the one `Signature` / `TensorInfo` type (server and client alike).
- `tensors.py` (TensorProto <-> numpy), `batching.py`, `metrics.py`, `request_log.py`, `errors.py`.
- `client.py`: the REST and gRPC clients users import (TF-free).
"""
