"""Serving: a TF Serving-compatible model server (REST + gRPC), clients, deploy files.

Locally and in CI the project's own server speaks TF Serving's wire protocol
(built on the official `tensorflow-serving-api` protos); production runs the real
`tensorflow/serving` container configured by `serving/deploy/`. The same clients
and contract tests work against both.
"""
