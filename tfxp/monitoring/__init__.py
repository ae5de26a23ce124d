"""Monitoring of served traffic: skew and drift of logged requests against what each pushed version
was trained on (`tfxp monitor`).

- `report.py`: what a pass found (MonitorReport), TF-free; read by every renderer.
- `reference.py`: what a pushed version carries for monitoring (training statistics, schema with
  thresholds, eval predictions), written by the Pusher and read back here.
- `logs.py`: PredictionLog TFRecords (TF Serving's request-log format) back to raw rows and predictions.
- `statistics.py`: TFDV statistics of rows and TFDV's comparators (skew, drift).
- `monitor.py`: windows per served version, findings, skipped input.
- `textfile.py` (Prometheus textfile collector), `html.py` (one offline page).
"""
