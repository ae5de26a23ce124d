"""model_spec.json as the complete contract (issue 18): tensor names and indices read off the flatbuffers,
the primary subgraph, the runtime version, the row-parsing rules, and its JSON Schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tfxp import rows as R
from tfxp.mobile import model_spec as M, runtime


def _outcome(cell, dtype):
    try:
        value = R.parse_value(cell, dtype)
    except (TypeError, ValueError):
        return "refused", None
    if value is None:
        return "missing", None
    if isinstance(value, float) and math.isinf(value):
        value = "Infinity" if value > 0 else "-Infinity"  # as JSON (and the spec) write it
    return "value", value


@pytest.mark.parametrize("example", M.row_parsing()["examples"], ids=lambda e: f"{e['dtype']}:{e['cell']!r}")
def test_each_row_parsing_example_is_what_parse_value_does(example):
    """The spec states the reference's parsing by example; each example is run through tfxp.rows.parse_value."""
    outcome, value = _outcome(example["cell"], example["dtype"])
    assert outcome == example["outcome"]
    if outcome == "value":
        assert value == example["value"] and type(value) is type(example["value"])


def test_the_row_parsing_examples_cover_what_issue_18_names():
    cells = {(e["dtype"], json.dumps(e["cell"])): e["outcome"] for e in M.row_parsing()["examples"]}
    assert cells[("string", '"  "')] == "missing"  # whitespace-only is missing, not a category
    assert cells[("int64", '"300.0"')] == "value" and cells[("int64", '"3.5"')] == "refused"
    assert cells[("float32", '"inf"')] == "value" and cells[("float32", '"nan"')] == "missing"
    assert cells[("int64", json.dumps(str(R.MISSING_INT)))] == "refused"


def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = M.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_schema_refuses_a_spec_missing_its_contract(converted):
    result, _ = converted
    validator = _validator()
    assert not list(validator.iter_errors(result.spec))
    broken = json.loads(json.dumps(result.spec))
    del broken["variants"]["float"]["tensors"]
    broken["signatures"]["serving_bytes"]["inputs"][0].pop("missing_marker")
    broken["format"] = 1
    messages = " ".join(e.message for e in validator.iter_errors(broken))
    assert "'tensors' is a required property" in messages and "'missing_marker'" in messages
    assert "2 was expected" in messages


def test_every_spec_the_tests_wrote_validates_against_the_schema(converted, generated, tmp_path_factory):
    """Every model_spec.json under this session's temporary folders (taxi, the generated tasks, the rejected
    and no-bytes-signature conversions run so far) satisfies model_spec.schema.json."""
    validator = _validator()
    paths = sorted(tmp_path_factory.getbasetemp().rglob(runtime.SPEC_FILE))
    assert len(paths) >= 2
    for path in paths:
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(json.loads(path.read_text()))]
        assert not errors, (str(path), errors[:5])
    for spec in (converted[0].spec, generated.result.spec):
        assert not list(validator.iter_errors(spec))


def test_the_schema_ships_as_package_data():
    import ast

    setup = Path(__file__).resolve().parents[2] / "setup.py"
    call = next(
        node
        for node in ast.walk(ast.parse(setup.read_text()))
        if isinstance(node, ast.keyword) and node.arg == "package_data"
    )
    package_data = ast.literal_eval(call.value) if not isinstance(call.value, ast.Dict) else None
    if package_data is None:  # a dict with comprehensions: evaluate the tfxp.mobile entry only
        keys = [ast.literal_eval(k) for k in call.value.keys]
        package_data = {"tfxp.mobile": ast.literal_eval(call.value.values[keys.index("tfxp.mobile")])}
    assert M.SCHEMA_FILE.name in package_data["tfxp.mobile"] and M.SCHEMA_FILE.is_file()


def test_tensor_names_and_indices_are_the_interpreters(converted):
    result, _ = converted
    spec = result.spec
    Interpreter = runtime.interpreter_class()
    for variant in spec["variants"].values():
        content = (Path(result.output_dir) / variant["file"]).read_bytes()
        interpreter = Interpreter(model_content=content)
        tensors = variant["tensors"]
        assert set(tensors["signatures"]) == set(spec["signatures"]) == {"serving_default", "serving_bytes"}
        for key, declared in tensors["signatures"].items():
            runner = interpreter.get_signature_runner(key)
            for side, details in (("inputs", runner.get_input_details()), ("outputs", runner.get_output_details())):
                assert declared[side] == {
                    name: {"tensor": d["name"], "tensor_index": int(d["index"])} for name, d in details.items()
                }
            assert set(declared["inputs"]) == {i["name"] for i in spec["signatures"][key]["inputs"]}
            assert set(declared["outputs"]) == {spec["output"]["name"]}
        primary = tensors["primary_subgraph"]
        assert [(t["tensor"], t["tensor_index"]) for t in primary["inputs"]] == [
            (d["name"], d["index"]) for d in interpreter.get_input_details()
        ]
        assert [(t["tensor"], t["tensor_index"]) for t in primary["outputs"]] == [
            (d["name"], d["index"]) for d in interpreter.get_output_details()
        ]
        # Taxi: the string-free signature is subgraph 0, and its output tensor is not named after the output.
        assert primary["signature"] == spec["primary_subgraph"]["signature"] == "serving_bytes"
        assert all(t["tensor"] == f"serving_bytes_{t['name']}:0" for t in primary["inputs"])
        assert primary["outputs"][0]["name"] == "probability" != primary["outputs"][0]["tensor"]
        assert variant["min_runtime_version"] == M.min_runtime_version(content)


def test_signature_inputs_state_marker_requirement_and_byte_width(converted):
    result, _ = converted
    spec = result.spec
    top = {i["name"]: i for i in spec["inputs"]}
    widths = {p.name: p.byte_width for p in result.params if p.byte_width}
    for key, signature in spec["signatures"].items():
        for item in signature["inputs"]:
            assert item["required"] == top[item["name"]]["required"]
            if item["dtype"] == "uint8":
                assert key == "serving_bytes" and item["byte_width"] == widths[item["name"]] == item["shape"][1]
                assert item["missing_marker"] == 0
            else:
                assert item["missing_marker"] == top[item["name"]]["missing_marker"] and "byte_width" not in item


def test_the_runtime_version_covers_ops_and_signature_runners(converted):
    spec = converted[0].spec
    runtime_versions = spec["runtime"]
    assert runtime_versions["signature_runner_version"] == M.SIGNATURE_RUNNER_VERSION == "2.7.0"
    ops = {v["min_runtime_version"] for v in spec["variants"].values()}
    assert runtime_versions["min_runtime_version"] in ops and None not in ops
    key = M._version_key
    assert key(runtime_versions["required_version"]) == max(
        key(runtime_versions["min_runtime_version"]), key(M.SIGNATURE_RUNNER_VERSION)
    )
    # The interpreter the parity gate ran on, read from the installed distribution (LiteRT first).
    assert runtime_versions["checked_with"] == [{"package": "ai-edge-litert", "version": "2.3.0"}]
    assert all(v["parity"]["runtime"] == runtime_versions["checked_with"][0] for v in spec["variants"].values())


def _run_primary(interpreter, feeds):
    """Invokes subgraph 0 with {tensor_index: array}; returns its first output."""
    for index, value in feeds.items():
        interpreter.resize_tensor_input(index, value.shape)
    interpreter.allocate_tensors()
    for index, value in feeds.items():
        interpreter.set_tensor(index, value)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1)


def test_feeding_by_position_in_the_specs_order_gives_other_answers(converted, eval_rows):
    """Issue 18: an app that feeds subgraph 0 by position, in the spec's input order, gets plausible wrong
    answers. By name (the spec's tensor names) it gets mobile-predict's."""
    result, _ = converted
    spec = result.spec
    variant = spec["variants"]["float"]
    primary = variant["tensors"]["primary_subgraph"]
    declared = spec["signatures"][primary["signature"]]["inputs"]
    order = [i["name"] for i in declared]
    positions = [t["name"] for t in primary["inputs"]]
    if order == positions:  # nothing to prove by answers for such a model: the spec must state the indices
        assert all("tensor_index" in t for t in primary["inputs"])
        return

    # Every input present (a blank cell filled from another eval row): a swap then gives a number, not the
    # "no answer" of a missing required input.
    def blank(value):
        return not str(value or "").strip()

    dtypes = {i["name"]: i["dtype"] for i in spec["inputs"]}
    some = {"int64": "1", "float32": "1.0", "string": "x"}  # for a column the eval rows never fill
    filler = {n: next((r[n] for r in eval_rows if not blank(r.get(n))), some[dtypes[n]]) for n in order}
    rows = [dict(r, **{n: filler[n] for n in order if blank(r.get(n))}) for r in eval_rows[:64]]
    cols = runtime.columns(rows, spec["inputs"])
    for item in declared:
        if item["dtype"] == "uint8":
            cols[item["name"]] = runtime.encode_bytes(cols[item["name"]], item["byte_width"])
    interpreter = runtime.interpreter_class()(model_path=str(Path(result.output_dir) / variant["file"]))
    details = interpreter.get_input_details()
    by_name = _run_primary(interpreter, {t["tensor_index"]: cols[t["name"]] for t in primary["inputs"]})
    # By position: the tensor at position i gets the spec's i-th input where the dtype and width let it
    # (a C app's memcpy would take the other ones too, as reinterpreted bytes).
    feeds, swapped = {}, []
    for position, tensor in enumerate(primary["inputs"]):
        wrong = cols[order[position]]
        fits = wrong.dtype == details[position]["dtype"] and wrong.shape[1:] == tuple(details[position]["shape"][1:])
        feeds[tensor["tensor_index"]] = wrong if fits else cols[tensor["name"]]
        if fits and order[position] != tensor["name"]:
            swapped.append((tensor["name"], order[position]))
    by_position = _run_primary(interpreter, feeds)
    reference = np.asarray(runtime.MobileModel(result.output_dir, "float").predict(rows), np.float32)
    np.testing.assert_allclose(by_name, reference, rtol=0, atol=1e-6)
    assert len(swapped) >= 2, swapped
    assert np.isfinite(by_position).all() and ((by_position >= 0) & (by_position <= 1)).all()  # plausible
    assert np.max(np.abs(by_position - by_name)) > 0.01, swapped


def test_the_guides_numbers_are_the_codes():
    """tfxp/mobile/README.md quotes the gate's tolerances by their spec key; each quoted value is the code's."""
    import re

    readme = (Path(M.__file__).parent / "README.md").read_text()
    quoted = re.findall(r"`tolerances\.(\w+)` \(([0-9.e+-]+)", readme)
    assert {key for key, _ in quoted} >= {"float_eval_rows", "float_contract_rows", "quant_contract_rows"}
    for key, value in quoted:
        assert float(value) == M.tolerances()[key], key
    assert f"`signature_runner_version`\n({M.SIGNATURE_RUNNER_VERSION})" in readme
    assert "in this order" not in readme and "by name, never by position" in readme


def test_the_runtime_refuses_a_spec_whose_tensors_are_not_the_files(converted, tmp_path):
    """Tensor indices differ between the two files: a spec stating the float file's for the quantized one is
    refused at load, not used to feed the wrong tensors."""
    import shutil

    result, _ = converted
    copy = tmp_path / "copy"
    shutil.copytree(result.output_dir, copy)
    spec = json.loads((copy / runtime.SPEC_FILE).read_text())
    float_tensors, quant_tensors = spec["variants"]["float"]["tensors"], spec["variants"]["quant"]["tensors"]
    assert float_tensors != quant_tensors  # e.g. the output's tensor index
    runtime.MobileModel(copy, "quant")  # as written: accepted
    spec["variants"]["quant"]["tensors"] = float_tensors
    (copy / runtime.SPEC_FILE).write_text(json.dumps(spec))
    runtime.MobileModel(copy, "float")
    with pytest.raises(runtime.ModelSpecError, match="tensors do not match"):
        runtime.MobileModel(copy, "quant")


def _swift_structs(source: str) -> dict[str, dict[str, tuple[str, bool]]]:
    """The guide's `ModelSpec` Swift types: {struct: {json key: (Swift type, optional)}}, keys mapped
    through each struct's CodingKeys as JSONDecoder maps them."""
    import re

    structs: dict[str, dict[str, tuple[str, bool]]] = {}
    renames: dict[str, dict[str, str]] = {}
    stack: list[tuple[str, int]] = []  # (struct, brace depth at which it opened)
    depth = 0
    for line in source.splitlines():
        code = line.split("//")[0]
        opened = re.match(r"\s*struct (\w+): Decodable \{", code)
        if opened:
            stack.append((opened.group(1), depth))
            structs[opened.group(1)], renames[opened.group(1)] = {}, {}
        if stack and not re.search(r"\bfunc\b|\benum\b", code):
            body = code.split("{", 1)[1] if opened else code  # a one-line struct: `struct S: Decodable { let a: T }`
            field = re.match(r"\s*let (\w+): ([^=}]+?)(\?)?\s*(\}|$)", body)
            if field and (opened or depth == stack[-1][1] + 1):
                structs[stack[-1][0]][field.group(1)] = (field.group(2).strip(), bool(field.group(3)))
        if stack and "case " in code:
            for name, raw in re.findall(r"(\w+) = \"(\w+)\"", code):
                renames[stack[-1][0]][name] = raw
        depth += code.count("{") - code.count("}")
        while stack and depth <= stack[-1][1]:
            stack.pop()
    return {
        struct: {renames[struct].get(name, name): kind for name, kind in fields.items()}
        for struct, fields in structs.items()
    }


def _decodes(value, swift_type: str, structs: dict, where: str) -> list[str]:
    """Why JSONDecoder would refuse `value` as `swift_type` (empty: it decodes)."""
    if swift_type.startswith("[") and ":" in swift_type:
        inner = swift_type[1:-1].split(":", 1)[1].strip()
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        return [e for k, v in value.items() for e in _decodes(v, inner, structs, f"{where}.{k}")]
    if swift_type.startswith("["):
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        return [e for i, v in enumerate(value) for e in _decodes(v, swift_type[1:-1], structs, f"{where}[{i}]")]
    checks = {
        "Int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "Int64": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63,
        "String": lambda v: isinstance(v, str),
        "Bool": lambda v: isinstance(v, bool),
        "MissingMarker": lambda v: isinstance(v, str) or (isinstance(v, int) and -(2**63) <= v < 2**63),
    }
    if swift_type in checks:
        return [] if checks[swift_type](value) else [f"{where}: {value!r} is not {swift_type}"]
    fields = structs[swift_type]
    if not isinstance(value, dict):
        return [f"{where}: not an object"]
    errors = []
    for key, (kind, optional) in fields.items():
        if value.get(key) is None:
            if not optional:
                errors.append(f"{where}.{key}: absent, but the Swift type's {kind} is not optional")
            continue
        errors += _decodes(value[key], kind, structs, f"{where}.{key}")
    return errors


def test_the_guides_swift_decodable_decodes_every_spec(converted, generated):
    """The guide's `ModelSpec: Decodable` is checked against real specs (binary taxi and a generated
    multiclass/regression model): every non-optional field is present with a JSON type the Swift
    type decodes, every key it names is in the JSON Schema. No Swift toolchain installs here, so this
    is JSONDecoder's rule applied in Python, not a compile."""
    import re

    readme = (Path(M.__file__).parent / "README.md").read_text()
    source = next(b for b in re.findall(r"```swift\n(.*?)```", readme, re.S) if "struct ModelSpec: Decodable" in b)
    structs = _swift_structs(source)
    assert set(structs) >= {"ModelSpec", "Input", "Signature", "Output", "Runtime", "Variant"}
    assert {"missing_marker", "byte_width", "required"} <= set(structs["Input"])
    assert set(structs["Signature"]) == {"inputs"} and set(structs["Runtime"]) == {"required_version"}
    for spec in (converted[0].spec, generated.result.spec):
        assert _decodes(spec, "ModelSpec", structs, "spec") == []
    schema = M.load_schema()
    named = set(schema["properties"])
    for struct in structs.values():
        for key in struct:
            found = key in named or any(key in d.get("properties", {}) for d in schema["$defs"].values())
            found = found or key in json.dumps(schema)
            assert found, key
    # A spec missing a key the app needs does not decode: the check can fail.
    broken = json.loads(json.dumps(converted[0].spec))
    del broken["signatures"]["serving_bytes"]["inputs"][0]["missing_marker"]
    assert _decodes(broken, "ModelSpec", structs, "spec")
