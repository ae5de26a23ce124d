"""The errors the TFLite conversion raises (no TensorFlow import: callers catch them cheaply)."""

from __future__ import annotations

from collections.abc import Sequence


class ConversionError(RuntimeError):
    """The transform cannot be expressed with builtin ops, or does not behave as expected."""


class NonBuiltinOpsError(ConversionError):
    """A TFLite flatbuffer holds Flex (select TF) or custom operators.

    `ops`: the offending operator names, e.g. `["CUSTOM:FlexAsString"]`.
    """

    def __init__(self, ops: Sequence[str]):
        super().__init__(f"non-builtin operators in the model: {', '.join(ops)}")
        self.ops = list(ops)
