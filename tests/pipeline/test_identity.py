"""A model's identity (issue 17, kind 3): a new label, task, classes or inputs under a pushed name is a
new model, refused before any component; the baseline resolver never gates against another identity.

The runs share one output, in order: a wage-like table trains `union` and pushes; `--label married` on
the same file (init names both `wage`) and the same table without the `exper` column are refused at
once, naming each difference, with nothing run and nothing pushed; with the old model moved away on
purpose (metadata kept), the table without `exper` runs cleanly against no baseline (before: exit 1
with a raw tf.Example byte dump while TFMA evaluated the old baseline, tensorflow/tfx#4390, #4505);
then the old project is refused against the new pushed model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wage_data import wage_rows, write_table

from tfxp.pipeline.identity import PROBLEM_FILE, ModelIdentity, pushed_identity_change

TRAIN_STEPS = 50


def _problem(label="union", task="binary", classes=("0", "1"), hook=None, features=None) -> dict:
    features = features or [("age", "float32", "numeric"), ("region", "string", "vocabulary")]
    return {
        "features": [{"name": n, "dtype": d, "kind": k, "size": 0} for n, d, k in features],
        "label": {"column": label, "dtype": "int64", "task": task, "classes": list(classes), "hook": hook},
        "slices": [],
    }


def test_the_problem_file_is_the_one_the_trainer_writes():
    from tfxp.models.signatures import PROBLEM_FILE as WRITTEN

    assert PROBLEM_FILE == WRITTEN


def test_differences_name_each_changed_field_old_to_new():
    old = ModelIdentity.of(_problem())
    assert old.differences(ModelIdentity.of(_problem())) == []
    new = ModelIdentity.of(
        _problem(
            label="married",
            task="multiclass",
            classes=("a", "b", "c"),
            hook="pkg.mod:fn",
            features=[("age", "int64", "numeric"), ("exper", "float32", "numeric")],
        )
    )
    assert old.differences(new) == [
        "label: union -> married",
        "task: binary -> multiclass",
        "classes: [0, 1] -> [a, b, c]",
        "label hook: none -> pkg.mod:fn",
        "inputs: + exper, - region, age: float32 numeric -> int64 numeric",
    ]


def test_class_order_is_identity_but_sizes_slices_and_extra_fields_are_not():
    base = _problem(task="multiclass", classes=("a", "b", "c"))
    assert ModelIdentity.of(base).differences(ModelIdentity.of(_problem(task="multiclass", classes=("b", "a", "c"))))
    changed = json.loads(json.dumps(base))
    changed["features"][1]["size"] = 40
    changed["features"][0]["required"] = False  # a field a later Problem adds is not part of the identity
    changed["slices"] = ["region"]
    assert ModelIdentity.of(base) == ModelIdentity.of(changed)


def test_a_file_hook_is_the_same_wherever_the_project_folder_is():
    one = ModelIdentity.of(_problem(hook="/home/a/wage/label.py:make"))
    assert one == ModelIdentity.of(_problem(hook="/srv/b/wage/label.py:make"))
    assert one != ModelIdentity.of(_problem(hook="/srv/b/wage/label.py:other"))


def _push(serving: Path, version: int, problem: dict | None) -> None:
    folder = serving / str(version) / "assets.extra"
    folder.mkdir(parents=True)
    if problem is not None:
        (folder / "tfxp_problem.json").write_text(json.dumps(problem))


def test_only_the_latest_pushed_version_is_compared(tmp_path):
    serving = tmp_path / "serving" / "wage"
    assert pushed_identity_change("wage", str(serving), _problem()) is None  # nothing pushed yet
    _push(serving, 10, _problem(label="married"))
    _push(serving, 20, _problem())
    assert pushed_identity_change("wage", str(serving), _problem()) is None
    change = pushed_identity_change("wage", str(serving), _problem(label="married"))
    assert change.pushed == f"{serving}/20" and change.differences == ["label: union -> married"]
    _push(serving, 30, None)  # pushed before models carried their problem: nothing to compare
    assert pushed_identity_change("wage", str(serving), _problem(label="married")) is None
    (serving / "40" / "assets.extra").mkdir(parents=True)
    (serving / "40" / "assets.extra" / "tfxp_problem.json").write_text("{not json")
    with pytest.raises(ValueError, match="tfxp_problem.json"):
        pushed_identity_change("wage", str(serving), _problem())


def _model(tmp_path: Path, artifact_id: int, problem: dict | None):
    from tfx.types import standard_artifacts

    model = standard_artifacts.Model()
    model.id = artifact_id
    model.uri = str(tmp_path / "Trainer" / "model" / str(artifact_id))
    folder = Path(model.uri) / "Format-Serving" / "assets.extra"
    folder.mkdir(parents=True)
    if problem is not None:
        (folder / "tfxp_problem.json").write_text(json.dumps(problem))
    return model


def _blessing(model_id: int):
    from tfx.types import standard_artifacts

    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("current_model_id", model_id)
    blessing.set_int_custom_property("blessed", 1)
    return blessing


def test_the_resolver_skips_blessed_models_of_another_identity(tmp_path):
    """TFX artifacts as the resolver gets them; the newest blessed model of the candidate's identity wins,
    another identity (newer or not) and a model without a problem file are skipped."""
    from tfxp.pipeline.baseline import LatestBlessedOtherModelStrategy

    same_old = _model(tmp_path, 1, _problem())
    unknown = _model(tmp_path, 2, None)
    other = _model(tmp_path, 3, _problem(features=[("age", "float32", "numeric")]))
    candidate = _model(tmp_path, 4, _problem())
    strategy = LatestBlessedOtherModelStrategy()
    inputs = {
        "model": [same_old, unknown, other, candidate],
        "model_blessing": [_blessing(i) for i in (1, 2, 3, 4)],
        "candidate": [candidate],
    }
    assert strategy.resolve_artifacts(None, inputs)["model"] == [same_old]
    inputs["model"] = [unknown, other, candidate]
    assert strategy.resolve_artifacts(None, inputs)["model"] == []


# -- real runs -----------------------------------------------------------------------------------------


def _tfxp(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tfxp.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=900
    )


def _init(work: Path, data: Path, label: str, folder: str) -> Path:
    result = _tfxp("init", "--data", str(data), "--label", label, "--dir", folder, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work / folder


def _run(work: Path, project: Path, *extra: str) -> tuple[int, dict, float]:
    started = time.monotonic()
    result = _tfxp(
        "run",
        "--project",
        str(project),
        "--output",
        "out",
        "--train-steps",
        str(TRAIN_STEPS),
        "--json",
        *extra,
        cwd=work,
    )
    try:
        summary = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON summary (exit {result.returncode}):\n{result.stdout}\n{result.stderr[-3000:]}")
    return result.returncode, summary, time.monotonic() - started


def _versions(base: Path) -> list[str]:
    return sorted(os.listdir(base)) if base.exists() else []


@pytest.fixture(scope="module")
def wage(tmp_path_factory):
    """(work folder, union project) after a first real run pushed `wage`."""
    work = tmp_path_factory.mktemp("identity")
    rows = wage_rows()
    write_table(work / "wage.csv", rows)
    write_table(work / "no_exper" / "wage.csv", rows, drop="exper")
    union = _init(work, work / "wage.csv", "union", "union")
    code, summary, _ = _run(work, union)
    assert code == 0 and summary["pushed"], summary
    return work, union


@pytest.mark.slow
def test_another_label_under_the_same_name_is_refused_before_any_component(wage):
    work, _ = wage
    married = _init(work, work / "wage.csv", "married", "married")
    assert "name: wage" in (married / "project.yaml").read_text()  # init's default name: the file's
    before = _versions(work / "out" / "serving" / "wage")
    code, summary, seconds = _run(work, married)
    assert code == 2, summary
    assert summary["identity_changes"] == ["label: union -> married", "inputs: + union, - married"]
    error = summary["error"]
    assert "label: union -> married" in error and "--name NEW" in error and "name:` in project.yaml" in error
    assert str(work / "out" / "serving" / "wage") in error  # where to move the old model to replace it
    assert summary["components"] == [] and not summary["pushed"]
    assert _versions(work / "out" / "serving" / "wage") == before
    assert seconds < 20, seconds  # no TFX, no TensorFlow: refused at once


@pytest.mark.slow
def test_a_dropped_feature_is_refused_then_runs_against_no_baseline_once_the_old_model_is_moved(wage):
    """tensorflow/tfx#4390: a project without a column the pushed model reads. Refused while that model
    is served under the name; moved away on purpose (its blessing stays in ML Metadata), the new model
    runs and pushes without a baseline instead of TFMA failing on the old one's missing feature."""
    work, union = wage
    no_exper = _init(work, work / "no_exper" / "wage.csv", "union", "no_exper_project")
    code, summary, _ = _run(work, no_exper)
    assert code == 2 and summary["identity_changes"] == ["inputs: - exper"], summary

    moved = work / "moved"
    moved.mkdir()
    shutil.move(work / "out" / "serving" / "wage", moved / "serving")
    shutil.move(work / "out" / "mobile" / "wage", moved / "mobile")
    code, summary, _ = _run(work, no_exper)
    assert code == 0, summary["error"]
    assert summary["blessed"] and summary["pushed"] and summary["baseline_model"] is None, summary
    log = Path(summary["log_file"]).read_text()
    assert "skipped blessed model" in log and "inputs: - exper" in log

    # The name now serves the model without exper: the old project is the other model.
    code, summary, _ = _run(work, union)
    assert code == 2 and summary["identity_changes"] == ["inputs: + exper"], summary
