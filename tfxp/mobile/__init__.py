"""On-device (TFLite) form of any model this project's Trainer saves (binary, multiclass or regression).

- `tfxp.mobile.convert` (needs TensorFlow): SavedModel + tf.Transform output -> builtin-ops
  TFLite models with the preprocessing inside, parity-gated, plus `model_spec.json`; the
  model's features, task and output come from the SavedModel. Its steps live in
  `preprocessing_params`, `graph`, `converter`, `parity` and `model_spec`.
- `tfxp.mobile.runtime` (no TensorFlow): the reference on-device inference in Python.
"""
