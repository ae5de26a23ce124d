"""tfxp: a production TFX pipeline — raw CSV to a validated, evaluated model, served by TF Serving and
shipped to mobile apps as TFLite.

Subpackages: `tfxp.pipeline` (the TFX DAG, CLI, publishing), `tfxp.models` (features, preprocessing, Keras
model, serving signatures), `tfxp.serving` (a TF Serving-compatible server and clients), `tfxp.mobile`
(TFLite conversion and runtime), `tfxp.projects` (the embedded taxi project).

TF 2.16's `tf.keras` is Keras 3, while tf.Transform and TFMA 1.16 expect Keras 2: the switch must be set
before TensorFlow is first imported, and every entry point imports this package first.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
