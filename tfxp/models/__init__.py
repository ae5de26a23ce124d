"""Model code for the taxi pipeline: features, preprocessing, Keras model, signatures.

TF 2.16's `tf.keras` is Keras 3, while tf.Transform and TFMA 1.16 expect Keras 2.
The switch must be set before TensorFlow is first imported, and every entry point
(CLI, Trainer, Transform, tests) imports this package before TensorFlow.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
