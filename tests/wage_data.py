"""A small wage-panel-like table made in the tests (no download): two 0/1 labels learnable from the rest.

`union` follows experience and schooling, `married` follows age, so the two projects `tfxp init` makes
from one file (`--label union`, `--label married`) are different models under one default name.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path


def wage_rows(n: int = 600, seed: int = 0) -> list[dict]:
    """`n` rows: age, exper (float), school (int 0..5), region (N/S/E/W), union and married (0/1)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        age, exper, school = rng.uniform(18, 60), rng.uniform(0, 30), rng.randint(0, 5)
        rows.append(
            {
                "age": f"{age:.2f}",
                "exper": f"{exper:.2f}",
                "school": school,
                "region": rng.choice("NSEW"),
                "union": int(exper * 0.1 + school * 0.3 + rng.gauss(0, 1) > 2),
                "married": int(age * 0.05 + rng.gauss(0, 1) > 1.8),
            }
        )
    return rows


def write_table(path: Path, rows: list[dict], drop: str | None = None) -> Path:
    """`rows` as a CSV file at `path`, without the column `drop`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [k for k in rows[0] if k != drop]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
