"""Benchmark: the pushed TFLite variants against the SavedModel they came from.

In one invocation, for the newest version under output/mobile/<name>/ and the
serving version with the same number:
  * file size of each variant (ratio quantized / float),
  * single-row latency, median of many calls: tflite-runtime interpreter (one
    thread) per variant vs the SavedModel's `predict_raw` signature in-process,
  * AUC of each on the last 3,000 rows of data/taxi.csv (labels: tips > 20% of fare; these
    rows include training rows, so AUC is optimistic, but the same for every variant).
Writes bench/results/mobile.json and prints a table.
Run: make bench-mobile  (= python -m bench.mobile [--output output --name taxi])
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
from bench.common import time_calls  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mobile.json"


def _median_ms(fn, iterations: int) -> float:
    return 1000 * statistics.median(time_calls(fn, iterations))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=ROOT / "output")
    parser.add_argument("--name", default="taxi")
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    mobile_base = args.output / "mobile" / args.name
    versions = sorted(int(d) for d in os.listdir(mobile_base) if d.isdigit()) if mobile_base.is_dir() else []
    if not versions:
        print(f"no mobile push under {mobile_base}; run `make run` first", file=sys.stderr)
        return 2
    version = versions[-1]
    mobile_dir = mobile_base / str(version)
    saved_model = args.output / "serving" / args.name / str(version)

    import numpy as np
    import tensorflow as tf
    from tabulate import tabulate

    from tfxp.mobile import runtime
    from tfxp.mobile.parity import auc as _auc, labels, reference_probabilities
    from tfxp.pipeline.config import DEFAULT_DATA
    from tfxp.rows import read_rows

    rows = read_rows(DEFAULT_DATA)[-3000:]
    y = labels(saved_model, rows)
    spec = runtime.read_spec(mobile_dir)
    results: dict = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "version": version,
        "rows": len(rows),
        "variants": {},
    }

    predict_raw = tf.saved_model.load(str(saved_model)).signatures["predict_raw"]
    one = {
        k: tf.constant(v[:1])
        for k, v in runtime.columns(rows[:1], runtime.MobileModel(mobile_dir, "float").inputs).items()
    }
    saved_ms = _median_ms(lambda: predict_raw(**one), args.iterations)
    saved_auc = _auc(y, reference_probabilities(saved_model, rows))
    results["saved_model"] = {"single_row_ms": saved_ms, "auc": saved_auc}

    table = [["SavedModel predict_raw", "-", f"{saved_ms:.3f}", "1.00", f"{saved_auc:.4f}", "-"]]
    sizes = {}
    for variant, entry in spec["variants"].items():
        if not entry.get("file"):
            continue
        model = runtime.MobileModel(mobile_dir, variant)
        cols = runtime.columns(rows[:1], model.inputs)
        ms = _median_ms(lambda model=model, cols=cols: model.model.run(cols), args.iterations)
        probabilities = np.array(model.predict(rows))
        auc = _auc(y, probabilities)
        size = (mobile_dir / entry["file"]).stat().st_size
        sizes[variant] = size
        results["variants"][variant] = {
            "bytes": size,
            "single_row_ms": ms,
            "latency_vs_saved_model": ms / saved_ms,
            "auc": auc,
            "auc_delta": auc - saved_auc,
        }
        table.append(
            [
                f"TFLite {variant}",
                f"{size:,}",
                f"{ms:.3f}",
                f"{ms / saved_ms:.2f}",
                f"{auc:.4f}",
                f"{auc - saved_auc:+.5f}",
            ]
        )

    float_r, quant_r = results["variants"].get("float"), results["variants"].get("quant")
    results["targets"] = {
        "quant_size_le_0.35x_float": None
        if not (float_r and quant_r)
        else {"ratio": quant_r["bytes"] / float_r["bytes"], "met": quant_r["bytes"] / float_r["bytes"] <= 0.35},
        "tflite_latency_le_0.1x_saved_model": {
            name: {"ratio": r["latency_vs_saved_model"], "met": r["latency_vs_saved_model"] <= 0.1}
            for name, r in results["variants"].items()
        },
        "auc_delta_le_0.005": {
            name: {"delta": r["auc_delta"], "met": abs(r["auc_delta"]) <= 0.005}
            for name, r in results["variants"].items()
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(tabulate(table, headers=["", "bytes", "1-row ms (median)", "× SavedModel", "AUC", "AUC Δ"]))
    print(json.dumps(results["targets"], indent=1))
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
