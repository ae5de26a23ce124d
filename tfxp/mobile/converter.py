"""TFLiteConverter settings, the quantization of each variant, and the builtin-op checks of a flatbuffer.

Each variant is the same saved `tfxp.mobile.graph` module converted with
`supported_ops = [TFLITE_BUILTINS]` only (no Flex, no custom ops):

- `float` (`model.tflite`): float32 weights and activations.
- `quant` (`model_quant.tflite`): dynamic-range quantization (`Optimize.DEFAULT`
  without a representative dataset): int8 weights, float activations.

A full-integer (int8 activations) variant is not produced: its inputs are
strings and int64 ids and its preprocessing is lookups and comparisons, so
little of the graph would be integer-quantized; dynamic-range quantization
already quantizes the weights (embeddings, dense layers).

The converter's own settings are not trusted alone: `check_signatures` checks
that every signature survived, and `check_builtins_only` reads the flatbuffer's
operator codes (every subgraph) and what the interpreter runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tfxp.mobile import runtime
from tfxp.mobile.errors import ConversionError, NonBuiltinOpsError
from tfxp.mobile.runtime import FLOAT, QUANT

if TYPE_CHECKING:
    import tensorflow as tf

# (variant, quantize) in the order they are converted.
VARIANTS: tuple[tuple[str, bool], ...] = ((FLOAT, False), (QUANT, True))
# model_spec.json's `quantization` of each variant.
QUANTIZATION = {FLOAT: "none", QUANT: "dynamic_range_int8_weights"}


def tflite_converter(saved_module_dir: str, signature_keys: Sequence[str]) -> tf.lite.TFLiteConverter:
    """A TFLiteConverter for the given signatures of a saved module: builtin ops only, no custom ops.
    Its `optimizations` are each variant's (`VariantConverter.convert`)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_module_dir, signature_keys=list(signature_keys))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    return converter


class VariantConverter:
    """The variants of one saved module, converted by one TFLiteConverter: `from_saved_model` loads the
    module once (~0.8 s for the taxi model) and each `convert(quantize)` sets its optimizations and
    converts again. The bytes equal those of a converter per variant (checked for float then quant, VARIANTS'
    order, tests/mobile/test_convert.py)."""

    def __init__(self, saved_module_dir: str, signature_keys: Sequence[str]) -> None:
        self._dir, self._keys = saved_module_dir, list(signature_keys)
        self._converter: tf.lite.TFLiteConverter | None = None

    def convert(self, quantize: bool) -> bytes:
        """The TFLite flatbuffer of the module's signatures, checked to hold every one of them.

        Raises the converter's errors (tf.lite ConverterError and others, loading included) when a
        signature cannot be converted with builtin ops, ConversionError when the converted model lacks a
        signature.
        """
        import tensorflow as tf

        if self._converter is None:  # loaded on first use: a load that fails is the variant's reason
            self._converter = tflite_converter(self._dir, self._keys)
        # quantize: dynamic-range quantization (int8 weights, float activations).
        self._converter.optimizations = [tf.lite.Optimize.DEFAULT] if quantize else []
        content = self._converter.convert()
        check_signatures(content, self._keys)
        return content


def to_tflite(saved_module_dir: str, signature_keys: Sequence[str], *, quantize: bool) -> bytes:
    """One variant of a saved module: `VariantConverter.convert` with a converter of its own."""
    return VariantConverter(saved_module_dir, signature_keys).convert(quantize)


def check_signatures(content: bytes, signatures: Sequence[str]) -> None:
    """Raises ConversionError unless the flatbuffer's signature keys are exactly `signatures`."""
    # The converter has been seen to drop signatures silently (e.g. next to table initializers).
    found = runtime.interpreter_class()(model_content=content).get_signature_list()
    if set(found) != set(signatures):
        raise ConversionError(f"the converted model has signatures {sorted(found)}, not {sorted(signatures)}")


def operators(tflite_bytes: bytes) -> list[str]:
    """Every operator code in the flatbuffer (all subgraphs), sorted; custom ops as 'CUSTOM:<name>'."""
    from tensorflow.lite.python import schema_py_generated as schema

    # The flatbuffer's accessors read the operator codes in place; flatbuffer_utils' object API would
    # unpack every tensor and weight buffer into Python first (~0.2 s a variant).
    model = schema.Model.GetRootAs(tflite_bytes, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        if custom or number == schema.BuiltinOperator.CUSTOM:
            ops.append(f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}")
        else:
            ops.append(names.get(number, f"UNKNOWN_{number}"))
    return sorted(set(ops))


def check_builtins_only(tflite_bytes: bytes) -> list[str]:
    """The model's operators; raises NonBuiltinOpsError on any Flex (select TF) or custom op.

    Reads the flatbuffer's operator codes (every subgraph, incl. the table
    initializer) and cross-checks the main subgraph's ops as the interpreter sees them.
    """
    ops = operators(tflite_bytes)
    bad = [op for op in ops if op.startswith("CUSTOM") or op.startswith("UNKNOWN") or "Flex" in op]
    if bad:
        raise NonBuiltinOpsError(bad)
    interpreter = runtime.interpreter_class()(model_content=tflite_bytes)
    seen = {d["op_name"] for d in interpreter._get_ops_details()}
    bad = sorted(op for op in seen if op.startswith("Flex") or op not in ops)
    if bad:
        raise NonBuiltinOpsError(bad)
    return ops
