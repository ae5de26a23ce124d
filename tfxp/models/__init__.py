"""Model code: features, preprocessing (the tf.Transform preprocessing_fn), Keras model, signatures.

Knows no orchestrator, server or converter: imports nothing from tfxp.pipeline, tfxp.serving or
tfxp.mobile (enforced by tfxp/models/ruff.toml). The Keras 2 switch TensorFlow needs is set by
`tfxp/__init__.py`, which Python runs before any module of this package.
"""
