"""`tfxp schema infer`: SchemaGen's starting schema for new data."""

from __future__ import annotations

import csv
import subprocess
import sys

from google.protobuf import text_format
from taxi_data import read_csv_rows
from tensorflow_metadata.proto.v0 import schema_pb2


def test_infers_types_and_domains_from_a_csv(tmp_path):
    rows = read_csv_rows(limit=500)
    data = tmp_path / "in" / "trips.csv"
    data.parent.mkdir()
    # Excel's "CSV UTF-8" (a byte-order mark) with every cell quoted (R's write.csv):
    # TFX's own header reader would see '\ufeff"pickup_community_area"' and '"fare"'.
    with open(data, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)

    out = tmp_path / "schema.pbtxt"
    # Through the CLI in its own process: TFX's Beam executors parse sys.argv with
    # absl flags, and pytest's own arguments (e.g. "-v") are not theirs to read.
    proc = subprocess.run(
        [sys.executable, "-m", "tfxp.pipeline.cli", "schema", "infer", "--data", str(data), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    schema = text_format.Parse(out.read_text(), schema_pb2.Schema())
    types = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
    assert set(types) == set(rows[0])
    assert types["payment_type"] == "BYTES"
    assert types["fare"] == "FLOAT"
    assert types["trip_start_hour"] == "INT"
    domains = {d.name: set(d.value) for d in schema.string_domain}
    assert {"Cash", "Credit Card"} <= domains["payment_type"]
    # Non-finite floats are anomalies in every schema the pipeline writes.
    fare = next(f for f in schema.feature if f.name == "fare")
    assert fare.float_domain.disallow_nan and fare.float_domain.disallow_inf
    from tfxp.schema.rules import non_finite_allowed

    assert non_finite_allowed(schema) == []
