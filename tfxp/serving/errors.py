"""Errors of the data plane, with TF Serving's status codes and REST mapping."""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """Names equal `grpc.StatusCode` member names; values are TF Serving's REST statuses."""

    INVALID_ARGUMENT = 400
    FAILED_PRECONDITION = 400
    OUT_OF_RANGE = 400
    UNAUTHENTICATED = 401
    PERMISSION_DENIED = 403
    NOT_FOUND = 404
    ALREADY_EXISTS = 409
    ABORTED = 409
    RESOURCE_EXHAUSTED = 429
    CANCELLED = 499
    UNKNOWN = 500
    INTERNAL = 500
    DATA_LOSS = 500
    UNIMPLEMENTED = 501
    UNAVAILABLE = 503
    DEADLINE_EXCEEDED = 504

    # Several codes share an HTTP status, so the enum must not alias members.
    def __new__(cls, http_status: int):
        member = object.__new__(cls)
        member._value_ = len(cls.__members__)
        member.http_status = http_status
        return member


class ServingError(Exception):
    """A request that can't be answered: TF Serving's status code and message (gRPC status / REST error)."""

    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# tensorflow.error.Code / grpc status numbers (TF's OpError.error_code uses the same numbering).
_CODE_NUMBERS = {
    1: Code.CANCELLED,
    2: Code.UNKNOWN,
    3: Code.INVALID_ARGUMENT,
    4: Code.DEADLINE_EXCEEDED,
    5: Code.NOT_FOUND,
    6: Code.ALREADY_EXISTS,
    7: Code.PERMISSION_DENIED,
    8: Code.RESOURCE_EXHAUSTED,
    9: Code.FAILED_PRECONDITION,
    10: Code.ABORTED,
    11: Code.OUT_OF_RANGE,
    12: Code.UNIMPLEMENTED,
    13: Code.INTERNAL,
    14: Code.UNAVAILABLE,
    15: Code.DATA_LOSS,
    16: Code.UNAUTHENTICATED,
}
# Lines of a TensorFlow error message that locate the failure rather than say what it was.
_TF_NOISE = ("[[", "Detected at node", "File ", "Graph execution error", "Node:", "Stack trace")


def from_tensorflow_error(exc: BaseException) -> ServingError | None:
    """A TensorFlow `tf.errors.OpError` as a ServingError with its own status code, else None.

    TF Serving returns the status of the failed Session::Run unchanged (predict_util.cc, classifier.cc),
    so a model's RESOURCE_EXHAUSTED or FAILED_PRECONDITION reaches the client as such.
    """
    code = _CODE_NUMBERS.get(getattr(exc, "error_code", None))
    if code is None or not hasattr(exc, "node_def"):  # duck-typed OpError: no TensorFlow import needed
        return None
    return ServingError(code, tensorflow_message(exc))


def tensorflow_message(exc: BaseException) -> str:
    """The line of a TensorFlow error that says what was wrong.

    TF's messages start with "Graph execution error:" and a stack of node locations; the cause
    (e.g. "Feature: x ... is required but could not be found.") is one of the later lines.
    """
    lines = [line.strip() for line in str(getattr(exc, "message", exc)).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TF_NOISE)]
    return (useful or lines or [type(exc).__name__])[-1 if useful else 0]
