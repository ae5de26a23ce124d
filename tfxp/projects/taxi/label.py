"""The taxi project's label hook: `big_tipper`, 1 when the tip is more than 20% of the fare.

Named in tfxp/projects/taxi/project.yaml (`label.hook`); called by the generic preprocessing_fn
inside tf.Transform, so the label is computed in the same graph everywhere (Transform, TFMA).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from tfxp.models.preprocessing import fill_in_missing

TIP_FRACTION = 0.2


def big_tipper(inputs: Mapping[str, Any]) -> tf.Tensor:
    """int64 [batch]: tips > 0.2 * fare. A missing tip counts as 0; a missing or NaN fare cannot define
    "big tip", so such trips count as not big."""
    fare = fill_in_missing(inputs["fare"], 0.0)
    tips = fill_in_missing(inputs["tips"], 0.0)
    return tf.where(
        tf.math.is_nan(fare),
        tf.zeros_like(fare, dtype=tf.int64),
        tf.cast(tf.greater(tips, fare * TIP_FRACTION), tf.int64),
    )
