"""TFX's Tuner component with tfxp.models.tuning's executor (every trial kept, Hyperband working)."""

from __future__ import annotations

from tfx.components.tuner.component import Tuner
from tfx.dsl.components.base import executor_spec

from tfxp.models.tuning import TunerExecutor


class OwnTuner(Tuner):
    """TFX's Tuner (same spec, inputs and outputs) running tfxp.models.tuning.TunerExecutor."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TunerExecutor)
