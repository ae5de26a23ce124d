"""Benchmark: tfxp's eval metric beside gradient-boosted trees on the same train/eval split (issue 23).

Datasets: taxi (the embedded project); scikit-learn's breast cancer (binary), wine (multiclass) and diabetes
(regression), the task datasets the tests use; and the four public tables issue 23 measured (bench/public_tables.py:
Seattle weather, a wage panel, cars' fuel economy, an affairs survey). For each it runs `tfxp init` (not for taxi)
and `tfxp run` as a user would, then reads the train and eval splits ExampleGen wrote (the run's Examples
artifact: GZIP TFRecords of tf.Examples) and trains scikit-learn's HistGradientBoostingClassifier/Regressor with
default settings on the same train split, on the columns tfxp's model takes, scored on the same eval split.
Metrics: AUC and accuracy (binary), accuracy (multiclass), RMSE (regression); tfxp's are TFMA's on the eval
split from `tfxp run --json`. With `--tune N` each dataset is also run with `tfxp run --tune N`.

Writes bench/results/quality.json and prints a table.
Run: python -m bench.quality [--datasets taxi wine ...] [--train-steps N] [--tune N]
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import math
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
from bench import public_tables  # noqa: E402
from bench.common import execute, last_json_object, machine_info, write_json  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "quality.json"
SKLEARN_TABLES = ("breast_cancer", "wine", "diabetes")
DATASETS = ("taxi", *SKLEARN_TABLES, *public_tables.TABLES)
# tfxp run --json metric key names (TFMA's) per task, and the trees' counterparts.
TFXP_METRICS = {
    "binary": {"auc": "auc", "accuracy": "binary_accuracy"},
    "multiclass": {"accuracy": "sparse_categorical_accuracy"},
    "regression": {"rmse": "root_mean_squared_error"},
}


def sklearn_csv(name: str, folder: Path) -> tuple[Path, str]:
    """One of scikit-learn's bundled tables as a CSV with a header; (path, label column)."""
    from sklearn import datasets

    if name == "diabetes":
        bunch = datasets.load_diabetes(scaled=False)
        label = "progression"
    else:
        bunch = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine}[name]()
        label = "target"
    names = [n.replace(" ", "_").replace("/", "_") for n in bunch.feature_names]
    path = folder / f"{name}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, label])
        for row, target in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*(f"{v:g}" for v in row), f"{target:g}"])
    return path, label


def read_split(output: Path, name: str, split: str) -> list[dict]:
    """The rows of one split ExampleGen wrote (the newest Examples artifact), as {feature: first value}."""
    from tfxp import rows as R

    folders = sorted(
        glob.glob(str(output / "pipelines" / name / "CsvExampleGen" / "examples" / "*")), key=os.path.getmtime
    )
    if not folders:
        raise FileNotFoundError(f"no ExampleGen output under {output}")
    rows = []
    for path in sorted(glob.glob(f"{folders[-1]}/Split-{split}/*")):
        rows += [R.example_row(record) for record in _records(path)]
    return rows


def _records(path: str):
    """Serialized records of a GZIP TFRecord file (TF's framing: length, crc, data, crc)."""
    import struct

    with gzip.open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            yield f.read(length)
            f.read(4)


def label_values(rows: list[dict], label: dict) -> list:
    """Each row's label as the model learns it: the column, or the project's label hook (e.g. taxi's big_tipper
    from tips and fare) run on the rows' columns, as "0"/"1"."""
    if not label.get("hook"):
        return [row[label["column"]] for row in rows]
    import importlib

    import tensorflow as tf

    module, function = label["hook"].split(":")
    hook = getattr(importlib.import_module(module), function)

    def number(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            return math.nan

    numeric = [k for k in rows[0] if all(not r.get(k) or not math.isnan(number(r[k])) for r in rows[:50])]
    inputs = {k: tf.constant([number(r.get(k) or "nan") for r in rows], tf.float32) for k in numeric}
    return [str(int(v)) for v in hook(inputs).numpy()]


def trees_score(train: list[dict], evaluation: list[dict], features: list[dict], label: dict) -> dict[str, float]:
    """HistGradientBoosting (default settings) trained on `train`, scored on `evaluation`."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    def frame(rows: list[dict]) -> pd.DataFrame:
        # The columns tfxp's model takes (not its ignored ones: ids, dates, free text), each as a user hands
        # them to the trees: numbers when every value parses, else categories (at most 255: wider ones dropped).
        columns = {}
        for feature in features:
            if feature["kind"] == "ignored":
                continue
            values = pd.Series([row.get(feature["name"], "") for row in rows])
            numbers = pd.to_numeric(values.where(values != ""), errors="coerce")
            if numbers.notna().sum() == (values != "").sum():
                columns[feature["name"]] = numbers
            elif len(set(values)) <= 255:
                columns[feature["name"]] = values.astype("category")
        return pd.DataFrame(columns)

    x_train, x_eval = frame(train), frame(evaluation)
    for column in x_train.select_dtypes("category"):
        categories = x_train[column].cat.categories
        x_eval[column] = pd.Categorical(x_eval[column], categories=categories)
    task = label["task"]
    y_train, y_eval = label_values(train, label), label_values(evaluation, label)
    if task == "regression":
        model = HistGradientBoostingRegressor(categorical_features="from_dtype").fit(
            x_train, np.asarray(y_train, float)
        )
        rmse = math.sqrt(mean_squared_error(np.asarray(y_eval, float), model.predict(x_eval)))
        return {"rmse": rmse}
    model = HistGradientBoostingClassifier(categorical_features="from_dtype").fit(x_train, y_train)
    scores = {"accuracy": float(accuracy_score(y_eval, model.predict(x_eval)))}
    if task == "binary":
        positive = list(model.classes_).index(label["positive"])
        scores["auc"] = float(
            roc_auc_score([y == label["positive"] for y in y_eval], model.predict_proba(x_eval)[:, positive])
        )
    return scores


def run_dataset(name: str, work: Path, train_steps: int, tune: int | None) -> dict:
    """tfxp init + run (and run --tune) on one dataset; both sides' metrics on the same split."""
    from tfxp import project as project_lib

    python = sys.executable
    if name == "taxi":
        project_dir = ROOT / "tfxp" / "projects" / "taxi"
        data_args: list[str] = []
    else:
        source = sklearn_csv if name in SKLEARN_TABLES else public_tables.table_csv
        data, label = source(name, work)
        project_dir = work / name
        code, _, _ = execute(
            [python, "-m", "tfxp.cli", "init", "--data", str(data), "--label", label, "--dir", str(project_dir)],
            work / f"{name}-init.out",
            work / f"{name}-init.err",
        )
        if code != 0:
            raise RuntimeError(f"tfxp init {name} exited {code}: {(work / f'{name}-init.err').read_text()[-2000:]}")
        data_args = ["--data", str(data)]
    project = project_lib.load(project_dir)
    result = {"dataset": name, "task": project.label.task}
    variants = {"default": []} | ({"tuned": ["--tune", str(tune)]} if tune else {})
    for variant, extra in variants.items():
        output = work / f"{name}-{variant}"
        command = [python, "-m", "tfxp.cli", "run", "--project", str(project_dir), *data_args, "--output", str(output)]
        command += ["--train-steps", str(train_steps), "--json", *extra]
        code, wall, _ = execute(command, work / f"{name}-{variant}.out", work / f"{name}-{variant}.err")
        summary = last_json_object((work / f"{name}-{variant}.out").read_text()) or {}
        if not summary.get("metrics"):
            raise RuntimeError(f"tfxp run {name} ({variant}) exited {code} without metrics: {summary.get('error')}")
        overall = summary["metrics"]["Overall"]
        result[f"tfxp_{variant}"] = {k: overall.get(m) for k, m in TFXP_METRICS[project.label.task].items()}
        result[f"tfxp_{variant}"]["seconds"] = round(wall, 1)
        result[f"tfxp_{variant}"]["hyperparameters"] = summary.get("hyperparameters")
        if variant == "default":
            features = [{"name": f.name, "kind": f.kind} for f in project.features]
            label = {"task": project.label.task, "column": project.label.column, "positive": project.label.positive}
            label["hook"] = project.label.hook
            train = read_split(output, project.name, "train")
            evaluation = read_split(output, project.name, "eval")
            result["rows"] = {"train": len(train), "eval": len(evaluation)}
            result["trees"] = trees_score(train, evaluation, features, label)
    return result


def gaps(result: dict, variant: str) -> dict[str, float | None]:
    """tfxp minus trees per metric (RMSE as a ratio - 1: > 0 is worse)."""
    ours, trees = result.get(f"tfxp_{variant}") or {}, result["trees"]
    out: dict[str, float | None] = {}
    for metric, value in trees.items():
        if ours.get(metric) is None:
            out[metric] = None
        elif metric == "rmse":
            out[metric] = round(ours[metric] / value - 1, 4)
        else:
            out[metric] = round(ours[metric] - value, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--tune", type=int, default=None, help="Also run with --tune N.")
    args = parser.parse_args()
    from tabulate import tabulate

    results = []
    with tempfile.TemporaryDirectory(prefix="tfxp-quality-") as tmp:
        for name in args.datasets:
            folder = Path(tmp) / name
            folder.mkdir()
            try:
                result = run_dataset(name, folder, args.train_steps, args.tune)
            except RuntimeError as error:  # one dataset's failure is reported; the others still run
                print(f"{name}: {error}", file=sys.stderr)
                results.append({"dataset": name, "error": str(error)[-2000:]})
                continue
            result["gap_default"] = gaps(result, "default")
            if args.tune:
                result["gap_tuned"] = gaps(result, "tuned")
            results.append(result)
            print(f"{name}: {result}", file=sys.stderr)
    write_json(
        RESULTS, {"machine": machine_info(), "train_steps": args.train_steps, "tune": args.tune, "results": results}
    )
    table = []
    for r in results:
        if "error" in r:
            table.append([r["dataset"], "error", r["error"][-60:]])
            continue
        for metric, trees in r["trees"].items():
            row = [r["dataset"], metric, r["tfxp_default"].get(metric), trees, r["gap_default"][metric]]
            if args.tune:
                row += [r["tfxp_tuned"].get(metric), r["gap_tuned"][metric]]
            table.append(row)
    headers = ["dataset", "metric", "tfxp", "trees", "gap"] + (["tfxp tuned", "gap tuned"] if args.tune else [])
    print(tabulate(table, headers=headers, floatfmt=".4f"))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
