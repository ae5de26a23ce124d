"""model_spec.json's `web` verdicts, proven in headless Chromium with the npm web runtimes.

Every claim the spec makes about a real converted model is run: a runtime said to refuse
it refuses it at load, a runtime said to give wrong answers gives answers mobile-predict
does not, and a runtime said to answer gives mobile-predict's answers (same NaN rows) on
eval rows and the parity gate's contract rows. The page is tests/mobile/web/ (LiteRT.js and
tfjs-tflite from `npm ci`), driven by the harness below; chromium and npm missing fail the test.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfxp.mobile import convert as C, runtime, web
from tfxp.mobile.model_spec import load_schema

# -- the harness --------------------------------------------------------------------------------
# Runs a .tflite in a web runtime inside headless Chromium (Debian's `chromium`).
#
# tests/mobile/web/ holds a static page (index.html + run.js) and its npm packages
# (package.json / package-lock.json, exact versions; installed by `npm ci`). A loopback
# HTTP server (http.server in a thread) serves that folder, each job's model.tflite and
# feeds.json under /run/<job>/, and takes the page's result as a POST to /result/<job>:
# WebAssembly needs a served page (not file://), and LiteRT.js fetches its wasm files
# from the folder given to loadLiteRt (node_modules/@litertjs/core/wasm/).

WEB_DIR = Path(__file__).parent / "web"
LITERT_JS = "litert.js"
TFJS_TFLITE = "tfjs-tflite"
RUNTIMES = (LITERT_JS, TFJS_TFLITE)
RESULT_TIMEOUT_S = 90


def npm_ci() -> None:
    """`npm ci` in tests/mobile/web unless node_modules already holds package.json's exact versions.

    Raises RuntimeError when npm is missing (CI installs it: .ci/run) or the install fails."""
    wanted = json.loads((WEB_DIR / "package.json").read_text())["dependencies"]

    def installed(name: str) -> str | None:
        path = WEB_DIR / "node_modules" / name / "package.json"
        return json.loads(path.read_text()).get("version") if path.exists() else None

    if all(installed(name) == version for name, version in wanted.items()):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: the web runtimes come from npm (apt-get install -y npm)")
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=WEB_DIR, capture_output=True, text=True, timeout=600
    )
    if proc.returncode:
        raise RuntimeError(f"npm ci in {WEB_DIR} failed:\n{proc.stdout}\n{proc.stderr}")


def chromium_path() -> str:
    """Debian's chromium. Raises RuntimeError when it is missing (CI installs it: .ci/run)."""
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    return path


class WebServer:
    """The loopback server and the Chromium runs. `run(runtime, model, feeds) -> result dict`."""

    def __init__(self) -> None:
        self.jobs: dict[str, Path] = {}
        self.results: dict[str, dict] = {}
        self.done: dict[str, threading.Event] = {}
        self.chromium = chromium_path()
        self.tmp = Path(tempfile.mkdtemp(prefix="tfxp-web-"))
        server = self

        class Handler(SimpleHTTPRequestHandler):
            extensions_map = {
                **SimpleHTTPRequestHandler.extensions_map,
                ".wasm": "application/wasm",
                ".js": "text/javascript",
            }

            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(WEB_DIR), **kwargs)

            def translate_path(self, path: str) -> str:
                parts = path.split("?", 1)[0].strip("/").split("/")
                if len(parts) == 3 and parts[0] == "run" and parts[1] in server.jobs:
                    return str(server.jobs[parts[1]] / parts[2])
                return super().translate_path(path)

            def do_POST(self):
                job = self.path.strip("/").split("/")[-1]
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(204)
                self.end_headers()
                if job in server.done and not server.done[job].is_set():
                    server.results[job] = json.loads(body)
                    server.done[job].set()

            def log_message(self, *args):  # quiet: the test reports what matters
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, runtime: str, model: str | Path, feeds: Mapping[str, Any]) -> dict:
        """Loads `model` in `runtime` (LITERT_JS or TFJS_TFLITE) and runs `feeds` (`feeds_for`).

        Returns the page's result: {"ok": False, "stage": "load", "error"} when the runtime refuses
        the model, else {"ok": True, "signature", "inputs", "results": [{"ok", "outputs"|"error"}]}.
        Raises TimeoutError when the page does not answer within RESULT_TIMEOUT_S."""
        job, folder = self._job({"model.tflite": Path(model).read_bytes(), "feeds.json": json.dumps(feeds).encode()})
        return self._open(job, f"index.html?runtime={runtime}&job={job}")

    def run_module(self, files: Mapping[str, bytes], module: str) -> dict:
        """Serves `files` and runs the ES module `module` (JavaScript text) in a page beside them, with
        @litertjs/core importable by name; the module POSTs its own result to `RESULT_URL` (a
        placeholder replaced by the job's URL). Returns that result."""
        job, folder = self._job(files)
        module = module.replace("RESULT_URL", f"/result/{job}")
        (folder / "module.js").write_text(module)
        page = (WEB_DIR / "index.html").read_text().replace('src="/run.js"', 'src="module.js"')
        (folder / "page.html").write_text(page)
        return self._open(job, f"run/{job}/page.html")

    def _job(self, files: Mapping[str, bytes]) -> tuple[str, Path]:
        job = uuid.uuid4().hex
        folder = self.tmp / job
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_bytes(content)
        self.jobs[job] = folder
        self.done[job] = threading.Event()
        return job, folder

    def _open(self, job: str, path: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/{path}"
        folder = self.jobs[job]
        with open(folder / "chromium.log", "wb") as log:
            proc = subprocess.Popen(
                [
                    self.chromium,
                    "--headless",
                    "--no-sandbox",  # CI runs as root
                    "--disable-gpu",
                    "--disable-dev-shm-usage",  # containers' small /dev/shm
                    "--no-first-run",
                    "--disable-extensions",
                    f"--user-data-dir={folder / 'profile'}",
                    url,
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,  # a file, not a pipe nobody reads (a full pipe would block chromium)
                start_new_session=True,  # its own process group: the renderers go with it
            )
            try:
                if not self.done[job].wait(RESULT_TIMEOUT_S):
                    tail = (folder / "chromium.log").read_text(errors="replace")[-2000:]
                    raise TimeoutError(f"no result from {url} in {RESULT_TIMEOUT_S} s; chromium said:\n{tail}")
                return self.results[job]
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _cell(dtype: str, value: Any) -> Any:
    if dtype == "uint8":
        return int(value)
    if dtype == "float32":
        value = float(value)
        return (
            "NaN"
            if math.isnan(value)
            else ("Infinity" if value > 0 else "-Infinity")
            if math.isinf(value)
            else repr(value)
        )
    if dtype == "string":
        return value.decode("utf-8")
    return str(int(value))


def feeds_for(
    columns: Mapping[str, np.ndarray],
    inputs: Sequence[Mapping[str, Any]],
    names: Mapping[str, str] | None = None,
    signature: str | None = None,
    warmup: bool = False,
) -> dict:
    """feeds.json for the page: one call per row (every runtime here takes [1] or [1, width] inputs).

    `columns`: `runtime.columns(...)` output (uint8 string inputs already encoded [rows, width]);
    `inputs`: the signature's inputs from model_spec.json (name, dtype, shape); `names`: input name
    -> the name to feed it under (tfjs-tflite: subgraph 0's tensor names); `signature`: the signature
    LiteRT.js runs; `warmup`: tfjs-tflite runs the first row once more first and drops that answer."""
    rows = len(next(iter(columns.values())))
    calls = []
    for r in range(rows):
        call = {}
        for spec in inputs:
            value = np.asarray(columns[spec["name"]][r : r + 1])
            shape = [1, *value.shape[1:]]
            call[(names or {}).get(spec["name"], spec["name"])] = {
                "dtype": spec["dtype"],
                "shape": shape,
                "data": [_cell(spec["dtype"], v) for v in value.reshape(-1)],
            }
        calls.append({"inputs": call})
    return {"signature": signature, "warmup": warmup, "calls": calls}


# The same float32 graph in another build of the TFLite kernels: absolute, plus a few float32 ulps
# for the contract rows' huge inputs (regression answers ~1e30 there).
ROW_TOLERANCE = 1e-5
ROW_RTOL = 1e-6


@pytest.fixture(scope="module")
def browser():
    npm_ci()
    server = WebServer()
    yield server
    server.close()


def _columns(spec: dict, signature: str, rows: list[dict]) -> dict:
    """The signature's input columns for `rows`, as mobile-predict makes them (strings as bytes for uint8)."""
    cols = runtime.columns(rows, spec["inputs"])
    for item in spec["signatures"][signature]["inputs"]:
        if item["dtype"] == "uint8":
            cols[item["name"]] = runtime.encode_bytes(cols[item["name"]], item["shape"][1])
    return cols


def _run(
    browser: WebServer, result, name: str, rows: list[dict], *, web_file: bool, warmup: bool = True
) -> tuple[dict, np.ndarray]:
    """Runs a file of the conversion in web runtime `name` on `rows`, fed the way the spec says.

    `web_file`: model_web.tflite (serving_web, inputs from `web.inputs`: int64 as int32 halves,
    strings as bytes; tfjs-tflite by `tensor` name); else the default variant (LiteRT.js: serving_bytes
    if there is one, else serving_default, by name; tfjs-tflite: subgraph 0 by tensor name). Returns
    (page result, mobile-predict's answers [rows] or [rows, K]: for the web file, its `answers_as`
    variant's; else the default variant's, on the signature the runtime ran)."""
    spec = result.spec
    variant = spec["default_variant"]
    has_bytes = runtime.BYTES_SIGNATURE in spec["signatures"]
    if web_file:
        inputs = spec["web"]["inputs"]
        cols = web.web_columns(runtime.columns(rows, spec["inputs"]), inputs)
        model_file = Path(result.output_dir) / spec["web"]["file"]
        names = {item["name"]: item["tensor"] for item in inputs} if name == TFJS_TFLITE else None
        signature = web.WEB_SIGNATURE
        reference_signature = runtime.BYTES_SIGNATURE if has_bytes else runtime.SIGNATURE
        variant = spec["web"]["answers_as"]  # the web file is the float graph, not the quantized default
    else:
        if name == TFJS_TFLITE:
            primary = spec["variants"][variant]["tensors"]["primary_subgraph"]
            signature = primary["signature"]
            names = {item["name"]: item["tensor"] for item in primary["inputs"]}
        else:
            signature = runtime.BYTES_SIGNATURE if has_bytes else runtime.SIGNATURE
            names = None
        reference_signature = signature
        inputs = spec["signatures"][signature]["inputs"]
        cols = _columns(spec, signature, rows)
        model_file = Path(result.output_dir) / spec["variants"][variant]["file"]
    feeds = feeds_for(cols, inputs, names, signature, warmup=warmup)
    reference = runtime.MobileModel(result.output_dir, variant, signature=reference_signature).predict(rows)
    return browser.run(name, model_file, feeds), np.asarray(reference, np.float64)


def _answers(page: dict, rows: int) -> np.ndarray:
    """The page's outputs (one output per call) as float64 [rows] or [rows, K]; raises on a run error."""
    errors = [r["error"] for r in page["results"] if not r["ok"]]
    assert not errors, errors[:3]
    values = [[float(v) for v in next(iter(r["outputs"].values()))] for r in page["results"]]
    out = np.asarray(values, np.float64)
    assert len(out) == rows
    return out.reshape(-1) if out.shape[1] == 1 else out


def _same(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per row: same NaN rows, values within ROW_TOLERANCE + ROW_RTOL * |want|."""
    got, want = got.reshape(len(got), -1), want.reshape(len(want), -1)
    nan_same = np.isnan(got).all(axis=1) == np.isnan(want).all(axis=1)
    close = np.all(np.isclose(got, want, rtol=ROW_RTOL, atol=ROW_TOLERANCE) | (np.isnan(got) & np.isnan(want)), axis=1)
    return nan_same & close


def _prove(browser, result, rows: list[dict], *, web_file: bool) -> dict:
    """Runs every runtime the spec judges on `rows` and checks its verdict on the web file (`web_file`)
    or on the default variant. Returns what was measured."""
    entry = result.spec["web"]
    verdicts = entry["runtimes"] if web_file else entry.get("default_variant", entry)["runtimes"]
    measured = {}
    for name, verdict in verdicts.items():
        page, reference = _run(browser, result, name, rows, web_file=web_file)
        assert page.get("stage") != "page", page
        if not verdict["loads"]:
            assert page["ok"] is False and page["stage"] == "load", (name, verdict, page)
            assert "is not supported" in page["error"], page["error"]
            measured[name] = {"load_error": page["error"]}
            continue
        assert page["ok"], (name, page)
        if not verdict["answers"] and "dynamic dimension" in verdict["because"]:
            errors = {r.get("error") for r in page["results"]}
            assert all(not r["ok"] for r in page["results"]), (name, page["results"][:2])
            assert all("does not match expected ranked tensor type" in e for e in errors), errors
            measured[name] = {"run_error": sorted(errors)[0]}
            continue
        got = _answers(page, len(rows))
        same = _same(got, reference)
        finite = ~np.isnan(got.reshape(len(got), -1)).any(axis=1) & ~np.isnan(reference.reshape(len(rows), -1)).any(
            axis=1
        )
        diff = float(np.max(np.abs(got - reference).reshape(len(rows), -1)[finite])) if finite.any() else 0.0
        nan_rows = np.isnan(reference.reshape(len(rows), -1)).all(axis=1)
        answered_nan = int((nan_rows & ~np.isnan(got.reshape(len(rows), -1)).any(axis=1)).sum())
        measured[name] = {"rows": len(rows), "same_rows": int(same.sum()), "max_abs_diff": diff}
        measured[name]["answered_rows_without_answer"] = answered_nan
        if web_file and name == LITERT_JS:  # outputs by the signature's output name, as the guide reads them
            assert set(page["results"][0]["outputs"]) == {result.spec["output"]["name"]}
        if verdict["answers"]:
            assert same.all(), (name, np.flatnonzero(~same)[:5], got[~same][:3], reference[~same][:3])
            if name != TFJS_TFLITE:
                continue
            # The spec's first-call note: with it, the first answer after load is zeros (so the feed note
            # says to drop it); without it, the first answer is already right.
            cold, _ = _run(browser, result, name, rows[:2], web_file=web_file, warmup=False)
            first = _answers(cold, 2)
            assert _same(first, reference[:2])[1]
            if verdict["first_call_zeros"]:
                assert "drop" in verdict["feed"] and np.all(first[0] == 0) and not _same(first, reference[:2])[0]
            else:
                assert "drop" not in verdict["feed"] and _same(first, reference[:2])[0], (first, reference[:2])
            measured[name]["first_call_without_warmup"] = first[0].tolist()
        else:  # a silent wrong answer the spec must have named
            assert not same.all(), (name, verdict)
            assert verdict["because"].startswith("WRONG ANSWERS"), verdict
    return measured


def test_the_web_runtimes_are_the_versions_the_spec_names():
    pins = json.loads((WEB_DIR / "package.json").read_text())["dependencies"]
    lock = json.loads((WEB_DIR / "package-lock.json").read_text())["packages"]
    for name in RUNTIMES:
        assert pins[web.PACKAGES[name]] == web.VERSIONS[name]
        assert lock[f"node_modules/{web.PACKAGES[name]}"]["version"] == web.VERSIONS[name]


def test_taxi_mobile_files_are_not_for_the_web_and_each_runtime_shows_why(browser, converted, eval_rows, odd_rows):
    result, _ = converted
    verdict = result.spec["web"]["default_variant"]
    assert verdict["because"].startswith("web: not supported, because ")
    litert, tfjs = verdict["runtimes"][LITERT_JS], verdict["runtimes"][TFJS_TFLITE]
    assert (litert["loads"], litert["answers"]) == (False, False) and "int64" in litert["because"]
    assert (tfjs["loads"], tfjs["answers"], tfjs["signature"]) == (True, False, "serving_bytes")
    assert tfjs["because"].startswith("WRONG ANSWERS") and "int64" in tfjs["because"]
    rows = eval_rows[:24] + odd_rows + C.contract_rows(eval_rows, result.params)
    measured = _prove(browser, result, rows, web_file=False)
    assert "INT64" in measured[LITERT_JS]["load_error"]
    # The measurement: tfjs-tflite's answers are far off, not rounding.
    assert measured[TFJS_TFLITE]["max_abs_diff"] > 0.1, measured
    # ... and rows missing a required int (no answer in mobile-predict) get a number.
    assert measured[TFJS_TFLITE]["answered_rows_without_answer"] > 0, measured
    print("taxi model.tflite web:", json.dumps(measured))


def test_taxi_web_file_answers_as_mobile_predict_in_both_runtimes(browser, converted, eval_rows, odd_rows):
    result, _ = converted
    entry = result.spec["web"]
    assert entry["supported"] is True and entry["because"] is None and entry["file"] == web.WEB_FILE
    assert entry["answers_as"] == "float"
    assert entry["parity"]["passed"] and entry["parity"]["rows"] > 500 and entry["parity"]["nan_rows"] > 0
    assert {r["answers"] for r in entry["runtimes"].values()} == {True}
    tracts = [i for i in entry["inputs"] if i["name"] == "pickup_census_tract"]
    assert tracts == [dict(tracts[0], dtype="int32", shape=[1, 2], encoding="int64_halves")]
    rows = eval_rows[:24] + odd_rows + C.contract_rows(eval_rows, result.params)
    assert any(int(r["pickup_census_tract"] or 0) > 2**31 for r in rows)  # census tracts exceed int32
    measured = _prove(browser, result, rows, web_file=True)
    assert all(m["same_rows"] == len(rows) for m in measured.values()), measured
    print("taxi model_web.tflite web:", json.dumps(measured))


def test_a_generated_model_runs_on_the_web(browser, generated):
    result = generated.result
    entry = result.spec["web"]
    default = entry["default_variant"]
    # The string feature refuses LiteRT.js at load; subgraph 0 (serving_bytes) is float32 and uint8 only.
    assert default["runtimes"][LITERT_JS]["loads"] is False
    assert "string" in default["runtimes"][LITERT_JS]["because"]
    tfjs = default["runtimes"][TFJS_TFLITE]
    assert (tfjs["answers"], tfjs["signature"]) == (True, "serving_bytes")
    assert entry["supported"] is True and {r["answers"] for r in entry["runtimes"].values()} == {True}
    rows = generated.eval_rows[:24] + C.contract_rows(generated.eval_rows, result.params)
    for web_file in (False, True):
        measured = _prove(browser, result, rows, web_file=web_file)
        assert measured[TFJS_TFLITE]["same_rows"] == len(rows)
        print(generated.task, "web file" if web_file else "model.tflite", "web:", json.dumps(measured))


def test_web_verdicts_validate_against_the_schema(converted, generated):
    import jsonschema

    for spec in (converted[0].spec, generated.result.spec):
        jsonschema.validate(spec, load_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(converted[0].spec, web={"supported": "no"}), load_schema())


# -- LiteRT.js on files it does load ---------------------------------------------------------------
# No converted model gets past LiteRT.js's load (every one has an int64 or string input), so its
# rules for files it loads are proven on small float32 models converted here by the real TFLite
# converter: a dynamic row count (as every pushed model has) and a fixed one, each with an int64
# tensor inside the graph (as graph.py's ids and centred ints are).


def _small_model(tmp_path: Path, rows: int | None) -> Path:
    """y = float(int64(x * 10) + 3) / 10 + z, x and z float32 [rows] (None: dynamic); one signature."""
    import tensorflow as tf

    class Small(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([rows], tf.float32, name="x"), tf.TensorSpec([rows], tf.float32, name="z")]
        )
        def serve(self, x, z):
            ids = tf.cast(x * 10.0, tf.int64) + tf.constant(3, tf.int64)
            return {"y": tf.cast(ids, tf.float32) / 10.0 + z}

    module = Small()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    path = tmp_path / f"small_{rows}.tflite"
    path.write_bytes(converter.convert())
    return path


@pytest.mark.parametrize("rows", [None, 1])
def test_litert_js_verdict_on_float_models_with_internal_int64(browser, tmp_path, rows):
    path = _small_model(tmp_path, rows)
    content = path.read_bytes()
    tensors = web.model_tensors(content)
    assert any(t["dtype"] == "int64" for t in _all_tensors(content))  # the graph does hold int64 inside
    verdict = web.litert_js(tensors)
    assert verdict["loads"] is True
    assert verdict["answers"] is (rows is not None)
    x, z = np.array([0.25, -1.5, 3.0], np.float32), np.array([1.0, 0.5, math.nan], np.float32)
    interpreter = runtime.interpreter_class()(model_content=content)
    runner = interpreter.get_signature_runner()
    want = np.array([runner(x=x[i : i + 1], z=z[i : i + 1])["y"][0] for i in range(3)], np.float64)
    inputs = [{"name": "x", "dtype": "float32", "shape": [-1]}, {"name": "z", "dtype": "float32", "shape": [-1]}]
    page = browser.run(
        LITERT_JS, path, feeds_for({"x": x, "z": z}, inputs, None, tensors["primary_subgraph"]["signature"])
    )
    assert page["ok"], page
    if verdict["answers"]:
        got = _answers(page, 3)
        assert _same(got, want).all(), (got, want)
    else:
        assert all("does not match expected ranked tensor type Float32[-1]" in r["error"] for r in page["results"])


def _all_tensors(content: bytes) -> list[dict]:
    interpreter = runtime.interpreter_class()(model_content=content)
    return [{"name": d["name"], "dtype": np.dtype(d["dtype"]).name} for d in interpreter.get_tensor_details()]


def test_the_guide_quotes_the_measured_versions():
    readme = (Path(web.__file__).parent / "README.md").read_text()
    section = readme.split("## Web (LiteRT.js, tfjs-tflite)", 1)[1].split("\n## ", 1)[0]
    for name in RUNTIMES:
        assert f"`{web.PACKAGES[name]}` {web.VERSIONS[name]}" in section, name


def test_every_written_variant_gets_the_same_verdict(converted, generated):
    """The spec judges the default variant; the other file has the same boundary tensors, so the same verdict."""
    for result in (converted[0], generated.result):
        verdicts = [
            web.web_support((Path(result.output_dir) / v.file).read_bytes())["runtimes"]
            for v in result.variants.values()
            if v.written
        ]
        assert len(verdicts) == 2 and verdicts[0] == verdicts[1] == result.spec["web"]["default_variant"]["runtimes"]


def test_the_web_gate_refuses_a_file_that_answers_otherwise(converted, eval_rows):
    """gate_web on real files: the web file against the float variant passes; against the quantized
    variant (another graph, ~1e-3 away) it fails, naming the difference: a web file that answered
    otherwise than the float variant would not be written."""
    result, _ = converted
    out = Path(result.output_dir)
    web_content = (out / web.WEB_FILE).read_bytes()
    rows = eval_rows[:100] + C.contract_rows(eval_rows, result.params)
    same = web.gate_web(web_content, (out / "model.tflite").read_bytes(), rows, result.params, "probability")
    assert same["passed"] and same["max_abs_diff"] <= web.WEB_MAX_DIFF and same["nan_rows"] > 0
    other = web.gate_web(web_content, (out / "model_quant.tflite").read_bytes(), rows, result.params, "probability")
    assert not other["passed"] and other["reasons"][0].startswith("max |probability - float variant's|")


def test_int64_halves_are_exact():
    values = np.array([0, -7, 2**31, 17031081401, -(2**63), 2**63 - 1, -(2**31) - 1], np.int64)
    halves = web.split_int64(values)
    assert halves.dtype == np.int32 and halves[4].tolist() == [-(2**31), 0]
    low = halves[:, 1].astype(np.int64) % 2**32
    assert (halves[:, 0].astype(np.int64) * 2**32 + low == values).all()


def _guide_snippet(marker: str) -> str:
    """The ```js block of the guide's Web section that starts with `marker`."""
    readme = (Path(web.__file__).parent / "README.md").read_text()
    section = readme.split("## Web (LiteRT.js, tfjs-tflite)", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```js\n")[1:]]
    (block,) = [b for b in blocks if b.startswith(marker)]
    return block


def test_the_guides_litert_js_code_answers_as_mobile_predict(browser, converted, eval_rows, odd_rows):
    """The guide's LiteRT.js code, as printed, run in Chromium on model_web.tflite with only
    model_spec.json and a row of CSV cells: mobile-predict's answer, NaN for a row without one."""
    result, _ = converted
    snippet = _guide_snippet("// LiteRT.js: model_web.tflite")
    rows = eval_rows[:2] + [odd_rows[2], odd_rows[4], odd_rows[7], dict(eval_rows[0], trip_start_hour="")]
    want = runtime.MobileModel(result.output_dir, "float", signature=runtime.BYTES_SIGNATURE).predict(rows)
    assert math.isnan(want[-1]) and not any(math.isnan(w) for w in want[:-1])
    files = {web.WEB_FILE: (Path(result.output_dir) / web.WEB_FILE).read_bytes()}
    for row, expected in zip(rows, want, strict=True):
        module = (
            "const report = (body) => fetch('RESULT_URL', {method: 'POST', body: JSON.stringify(body)});\n"
            "window.addEventListener('error', (e) => report({ok: false, error: String(e.message)}));\n"
            "window.addEventListener('unhandledrejection', (e) => report({ok: false, error: String(e.reason)}));\n"
            f"const spec = {json.dumps(result.spec)};\nconst row = {json.dumps(row)};\n"
            + snippet
            + "\nawait report({ok: true, answer: Array.from(answer, String)});\n"
        )
        page = browser.run_module(files, module)
        assert page["ok"], page
        (got,) = [float(v) for v in page["answer"]]
        assert (math.isnan(got) and math.isnan(expected)) or abs(got - expected) <= ROW_TOLERANCE, (row, got, expected)
