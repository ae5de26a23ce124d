"""On-device (TFLite) form of the taxi model.

- `mobile.convert` (needs TensorFlow): SavedModel + tf.Transform output -> builtin-ops
  TFLite models with the preprocessing inside, parity-gated, plus `model_spec.json`.
- `mobile.runtime` (no TensorFlow): the reference on-device inference in Python.
"""
