"""An app-side client that uses no Python (issue 18): tests/mobile/capi/client.c on the TensorFlow Lite C API.

The client reads only `model_spec.json` and a rows file (JSON lines of raw cells), parses every cell by
the spec's `row_parsing` rules, feeds the inputs of subgraph 0 (`primary_subgraph.signature`,
`serving_bytes`: the C API cannot write string tensors) BY NAME through the tensor names the spec gives
each variant (`variants.<v>.tensors.primary_subgraph`), batched and one row at a time. Its answers must
be `tfxp mobile-predict`'s (`MobileModel.predict`: serving_default, on tflite-runtime 2.14) for every task
and variant, on the eval rows, `odd_rows`, `parity.contract_rows` and each `row_parsing` example, with
"no answer" (NaN) exactly where mobile-predict gives it; a cell mobile-predict refuses, the client
refuses too, naming the line and column. A spec change that would break such an app fails here.

The C API library: `libtensorflowlite_c.so` 2.9.0 with its headers from the npm package
tfjs-tflite-node@0.0.2 (TensorFlow.js's Node binding, Apache-2.0, built by the TensorFlow team), fetched
by `tests/mobile/capi/fetch_tflite_c.sh` (tarball sha256 pinned) into a cache folder; `.ci/run` fetches
it, and the session fixture fetches it too when absent. Why that one: it is the official C API
(`TfLiteModelCreateFromFile`, `TfLiteInterpreterCreate`), from a registry CI reaches, and new enough for
the models' ops (`runtime.min_runtime_version` 2.6.0). Measured: npm node-tflite@0.0.2's library is
TFLite 2.2.0 and refuses the taxi model at TfLiteInterpreterCreate ("Didn't find op for builtin opcode
'EQUAL' version '3'"); tflite-runtime 2.14 and tensorflow 2.16 wheels export no C API; ai-edge-litert's
libLiteRt.so exports the LiteRt* API, not TfLite*; Debian 12 packages no TFLite. 2.9.0's library exports
no signature-runner function (no *Signature* symbol), hence names through tensor names.

Tolerance: |C − mobile-predict| ≤ 1e-6 × max(1, |mobile-predict|) per value. Measured on one run of this
suite's models: batched float32-identical (TFLite 2.9 on serving_bytes vs tflite-runtime 2.14 on
serving_default, every task and variant); one row at a time up to 3.6e-7 (the kernels' batch paths).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tfxp import rows as R
from tfxp.mobile import model_spec as M, parity, runtime

CAPI_DIR = Path(__file__).parent / "capi"
# Per value: |C - mobile-predict| <= TOLERANCE x max(1, |mobile-predict|).
TOLERANCE = 1e-6
# mobile-predict on TFLite's own kernels, as the C API's: LiteRT's XNNPACK quantizes a quantized
# variant's activations differently (4.4e-6 here; LiteRT vs tflite-runtime is test_runtime's check).
REFERENCE_RUNTIME = "tflite-runtime"
MODES = ("batch", "single")
VARIANTS = (runtime.FLOAT, runtime.QUANT)


@pytest.fixture(scope="session")
def capi_client(tmp_path_factory) -> SimpleNamespace:
    """client.c built with gcc against the TFLite C API: `path`, `version` (TfLiteVersion()).

    Fails (never skips) naming what is missing: the library (npm), cJSON (libcjson-dev) or gcc."""
    fetch = subprocess.run(
        ["bash", str(CAPI_DIR / "fetch_tflite_c.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    if fetch.returncode != 0:
        pytest.fail(f"the TFLite C API library could not be fetched (npm tfjs-tflite-node@0.0.2): {fetch.stderr}")
    library = Path(fetch.stdout.strip().splitlines()[-1])
    if not Path("/usr/include/cjson/cJSON.h").is_file():
        pytest.fail("cJSON headers missing: apt-get install libcjson-dev (.ci/run installs it)")
    if shutil.which("gcc") is None:
        pytest.fail("gcc missing: the C client test builds client.c with it")
    path = tmp_path_factory.mktemp("capi") / "client"
    build = subprocess.run(
        [
            "gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
            f"-I{library / 'include'}", str(CAPI_DIR / "client.c"), "-o", str(path),
            f"-L{library / 'lib'}", "-ltensorflowlite_c", "-lcjson", "-lm", f"-Wl,-rpath,{library / 'lib'}",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return SimpleNamespace(path=path, version=version)


def run_client(client, model_dir, rows, variant: str, mode: str, tmp_path: Path, *, by_position: bool = False):
    """The client's CompletedProcess on `rows` (written as JSON lines)."""
    rows_path = tmp_path / f"rows-{variant}-{mode}.jsonl"
    rows_path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    command = [str(client.path), str(model_dir), str(rows_path), variant, mode] + (["--by-position"] * by_position)
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def client_outputs(client, model_dir, rows, variant: str, mode: str, tmp_path: Path, **kwargs) -> np.ndarray:
    """float32 [rows] or [rows, K]: the client's answers, NaN where it printed null."""
    done = run_client(client, model_dir, rows, variant, mode, tmp_path, **kwargs)
    assert done.returncode == 0, done.stderr
    values = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(values) == len(rows)
    return np.asarray(values, dtype=np.float64).astype(np.float32)  # null -> nan


# Spellings the rules cover beyond their examples: Unicode whitespace (Python's str.strip() and int()/float()
# strip it), signs, exponents, infinities' other names. And spellings both sides must refuse.
MORE_CELLS = {
    "string": ["\u00a0", "\u3000\u2003", "\u00a0x "],
    "int64": ["\u00a07\u2003", "+7", "-0", "1E1", "-2.0e1"],
    "float32": ["\u00a01.5\u3000", "+1.5", ".5", "5.", "1E-3", "Infinity", "-INF", "1e40", "-1e-50"],
}
MORE_REFUSED = {"int64": ["0x10", "1e400", "7 7"], "float32": ["0x1p3", "1.5.", "nan(1)"]}


def row_parsing_rows(base, spec) -> list[dict]:
    """One row per (input, `row_parsing` example of the input's dtype that is not refused, or MORE_CELLS),
    plus each input's key left out: the base row with that one cell changed."""
    dtypes = {item["name"]: item["dtype"] for item in spec["inputs"]}
    cells = {dtype: list(more) for dtype, more in MORE_CELLS.items()}
    for example in spec["row_parsing"]["examples"]:
        if example["outcome"] != "refused":
            cells[example["dtype"]].append(example["cell"])
    rows = [dict(base, **{name: cell}) for name, dtype in dtypes.items() for cell in cells[dtype]]
    return rows + [{key: value for key, value in base.items() if key != name} for name in dtypes]


def answerable_base(rows, spec) -> dict:
    """The first row with an answer (every required input present), as contract_rows edits."""
    for row in rows:
        cols = runtime.columns([row], spec["inputs"])
        if all(not _is_missing(cols[i["name"]][0]) for i in spec["inputs"] if i["required"]):
            return dict(row)
    raise AssertionError("no answerable row")


def _is_missing(value) -> bool:
    if isinstance(value, bytes):
        return value == b""
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return int(value) == R.MISSING_INT


def assert_matches(got: np.ndarray, reference: np.ndarray, what: str) -> float:
    """NaN exactly where the reference has it; elsewhere within TOLERANCE. Returns the max relative difference."""
    assert got.shape == reference.shape, what
    nan = np.isnan(reference)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=f"{what}: 'no answer' (NaN) differs")
    scale = np.maximum(1.0, np.abs(reference[~nan]))
    worst = float(np.max(np.abs(got[~nan] - reference[~nan]) / scale)) if (~nan).any() else 0.0
    assert worst <= TOLERANCE, f"{what}: max |C - mobile-predict| / max(1, |mobile-predict|) = {worst:.3g}"
    return worst


def check_model(client, result, rows, tmp_path: Path) -> None:
    """Every written variant, batched and one row at a time, against MobileModel.predict on the same rows."""
    spec, model_dir = result.spec, Path(result.output_dir)
    written = [v for v in VARIANTS if spec["variants"].get(v, {}).get("file")]
    assert written == list(VARIANTS), spec.get("rejected")  # both variants are checked, never quietly one
    for variant in written:
        reference = runtime.MobileModel(model_dir, variant, runtime=REFERENCE_RUNTIME).predict(rows)
        reference = np.asarray(reference, np.float64).astype(np.float32)
        assert np.isnan(reference).any() and not np.isnan(reference).all()  # rows with and without an answer
        for mode in MODES:
            got = client_outputs(client, model_dir, rows, variant, mode, tmp_path)
            assert_matches(got, reference, f"{spec['model_name']} {variant} {mode}")


def test_the_library_is_the_official_c_api_and_new_enough(capi_client, converted):
    spec = converted[0].spec
    assert capi_client.version == "2.9.0"
    for variant in spec["variants"].values():
        assert M._version_key(capi_client.version) >= M._version_key(variant["min_runtime_version"])


def test_taxi_matches_mobile_predict(capi_client, converted, eval_rows, odd_rows, tmp_path):
    """Binary (taxi): eval rows, odd rows, contract rows and every row_parsing example, both variants."""
    result, _ = converted
    contract = parity.contract_rows(eval_rows, result.params)
    base = answerable_base(eval_rows, result.spec)
    rows = list(eval_rows) + list(odd_rows) + contract + row_parsing_rows(base, result.spec)
    check_model(capi_client, result, rows, tmp_path)


def test_generated_tasks_match_mobile_predict(capi_client, generated, tmp_path):
    """Multiclass (K values per row) and regression (label units): the same rows' kinds, both variants."""
    result = generated.result
    assert result.spec["task"] == generated.task
    contract = parity.contract_rows(generated.eval_rows, result.params)
    base = answerable_base(generated.eval_rows, result.spec)
    rows = list(generated.eval_rows) + contract + row_parsing_rows(base, result.spec)
    check_model(capi_client, result, rows, tmp_path)


def test_refused_cells_are_refused_as_mobile_predict_refuses_them(capi_client, converted, eval_rows, tmp_path):
    """Each `refused` row_parsing example (and MORE_REFUSED), in the first input of its dtype: mobile-predict
    raises RowError, the client exits 2 naming the line and the column, and answers nothing."""
    result, _ = converted
    spec = result.spec
    base = answerable_base(eval_rows, spec)
    refused = [(e["dtype"], e["cell"]) for e in spec["row_parsing"]["examples"] if e["outcome"] == "refused"]
    assert {dtype for dtype, _ in refused} >= {"int64", "float32"}
    refused += [(dtype, cell) for dtype, cells in MORE_REFUSED.items() for cell in cells]
    model = runtime.MobileModel(result.output_dir, runtime.FLOAT, runtime=REFERENCE_RUNTIME)
    for dtype, cell in refused:
        name = next(i["name"] for i in spec["inputs"] if i["dtype"] == dtype)
        rows = [base, dict(base, **{name: cell})]
        with pytest.raises(R.RowError):
            model.predict(rows)
        done = run_client(capi_client, result.output_dir, rows, runtime.FLOAT, "batch", tmp_path)
        assert done.returncode == 2 and done.stdout == "", (cell, done.stderr)
        assert f":2: {name}: cannot read" in done.stderr, (cell, done.stderr)


def _every_input_present(rows, spec) -> list[dict]:
    """Rows with each blank cell filled from another row (so a swap gives a number, not 'no answer')."""

    def blank(value) -> bool:
        return value is None or not str(value).strip()

    some = {"int64": "1", "float32": "1.0", "string": "x"}  # for a column no row fills
    dtypes = {i["name"]: i["dtype"] for i in spec["inputs"]}
    filler = {n: next((r[n] for r in rows if not blank(r.get(n))), some[dtype]) for n, dtype in dtypes.items()}
    return [dict(r, **{n: filler[n] for n in dtypes if blank(r.get(n))}) for r in rows]


def test_feeding_by_position_in_the_specs_order_gives_other_answers(capi_client, converted, eval_rows, tmp_path):
    """The same C client, feeding subgraph 0's inputs in the order of `signatures.<sig>.inputs` (where the
    dtype and width fit) instead of by name: plausible, wrong probabilities."""
    result, _ = converted
    spec, model_dir = result.spec, result.output_dir
    primary = spec["variants"]["float"]["tensors"]["primary_subgraph"]
    order = [i["name"] for i in spec["signatures"][primary["signature"]]["inputs"]]
    assert order != [t["name"] for t in primary["inputs"]]
    rows = _every_input_present(eval_rows[:64], spec)
    by_name = client_outputs(capi_client, model_dir, rows, runtime.FLOAT, "batch", tmp_path)
    by_position = client_outputs(capi_client, model_dir, rows, runtime.FLOAT, "batch", tmp_path, by_position=True)
    assert np.isfinite(by_position).all() and ((by_position >= 0) & (by_position <= 1)).all()
    assert np.max(np.abs(by_position - by_name)) > 0.01


def test_a_spec_that_no_longer_describes_the_model_fails_the_comparison(capi_client, converted, eval_rows, tmp_path):
    """What the comparison catches: a spec whose tensor names for two float inputs are swapped (the
    model unchanged) makes the client's answers differ from mobile-predict's; a spec without the
    tensor names makes it refuse to run."""
    result, _ = converted
    copy = tmp_path / "model"
    shutil.copytree(result.output_dir, copy)
    spec = json.loads((copy / runtime.SPEC_FILE).read_text())
    rows = _every_input_present(eval_rows[:64], spec)
    reference = np.asarray(
        runtime.MobileModel(copy, runtime.FLOAT, runtime=REFERENCE_RUNTIME).predict(rows), np.float32
    )
    tensors = spec["variants"]["float"]["tensors"]["primary_subgraph"]["inputs"]
    floats = [t for t in tensors if t["name"] in ("trip_miles", "fare")]
    floats[0]["tensor"], floats[1]["tensor"] = floats[1]["tensor"], floats[0]["tensor"]
    (copy / runtime.SPEC_FILE).write_text(json.dumps(spec))
    swapped = client_outputs(capi_client, copy, rows, runtime.FLOAT, "batch", tmp_path)
    with pytest.raises(AssertionError, match="max"):
        assert_matches(swapped, reference, "swapped tensor names")
    del spec["variants"]["float"]["tensors"]
    (copy / runtime.SPEC_FILE).write_text(json.dumps(spec))
    done = run_client(capi_client, copy, rows, runtime.FLOAT, "batch", tmp_path)
    assert done.returncode == 1 and "no float.tensors" in done.stderr, done.stderr


def test_row_parsing_examples_reach_every_dtype(converted):
    """The rows above exercise each dtype's examples: the spec states some for every input dtype."""
    spec = converted[0].spec
    dtypes = {i["dtype"] for i in spec["inputs"]}
    stated = {e["dtype"] for e in spec["row_parsing"]["examples"]}
    assert dtypes <= stated, dtypes - stated
    assert any(e["cell"] is None for e in spec["row_parsing"]["examples"])  # JSON null
    assert any(isinstance(e["cell"], int | float) and not isinstance(e["cell"], bool)
               for e in spec["row_parsing"]["examples"])  # fmt: skip
