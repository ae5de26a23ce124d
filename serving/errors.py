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
    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
