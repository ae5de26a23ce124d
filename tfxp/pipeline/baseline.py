"""Baseline resolution: the latest blessed model other than the current candidate."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.common import resolver


class LatestBlessedOtherModelStrategy(resolver.ResolverStrategy):
    """Like TFX's LatestBlessedModelStrategy, but never returns the candidate itself.

    With the stock strategy a re-run with unchanged inputs resolves the cached
    candidate as its own baseline, so the Evaluator's inputs change and the
    "cached" run evaluates again (and compares a model to itself). Excluding the
    candidate keeps a re-run fully cached and keeps comparisons meaningful.
    Inputs: `model` and `model_blessing` (all of each type), `candidate` (Trainer's output).
    """

    def resolve_artifacts(
        self, store, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        candidates = {a.id for a in input_dict.get("candidate", [])}
        blessings = {
            b.get_int_custom_property("current_model_id"): b
            for b in input_dict.get("model_blessing", [])
            if b.get_int_custom_property("blessed") == 1
        }
        for model in sorted(input_dict.get("model", []), key=lambda a: a.id, reverse=True):
            if model.id in blessings and model.id not in candidates:
                return {"model": [model], "model_blessing": [blessings[model.id]], "candidate": []}
        return {"model": [], "model_blessing": [], "candidate": []}


def baseline_resolver(candidate: types.BaseChannel, remote: bool) -> resolver.Resolver:
    """The node that finds the Evaluator's baseline model.

    Vertex AI Pipelines compiles only TFX's stock strategies (its resolver is a
    metadata query, not Python), so a compiled pipeline uses
    LatestBlessedModelStrategy; an unchanged re-run there evaluates again.
    """
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
    from tfx.types import Channel, standard_artifacts

    channels = {
        "model": Channel(type=standard_artifacts.Model),
        "model_blessing": Channel(type=standard_artifacts.ModelBlessing),
    }
    if remote:
        return resolver.Resolver(strategy_class=LatestBlessedModelStrategy, **channels).with_id("baseline_resolver")
    return resolver.Resolver(strategy_class=LatestBlessedOtherModelStrategy, candidate=candidate, **channels).with_id(
        "baseline_resolver"
    )
