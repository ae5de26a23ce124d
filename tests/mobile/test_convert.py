"""Real conversion of a trained model to builtin-ops TFLite, checked with the real TFLite interpreter."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from taxi_data import OUTPUT, TAXI

from tfxp.mobile import convert as C, graph, runtime
from tfxp.models import features as F

NON_BUILTIN_PREFIXES = ("Flex", "CUSTOM")


def test_both_variants_are_converted_and_written(converted):
    result, _ = converted
    assert result.ok, result.rejected
    out = Path(result.output_dir)
    files = ["model.tflite", "model_quant.tflite", "model_spec.json", "model_web.tflite"]  # web: test_web.py
    assert sorted(p.name for p in out.iterdir()) == files
    float_size = (out / "model.tflite").stat().st_size
    quant_size = (out / "model_quant.tflite").stat().st_size
    assert quant_size < 0.85 * float_size
    # Dynamic-range quantization stores the large weight matrices as int8.
    assert _largest_weight_type(out / "model.tflite") == "FLOAT32"
    assert _largest_weight_type(out / "model_quant.tflite") == "INT8"


def _largest_weight_type(path: Path) -> str:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    sizes = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            if data is not None:
                sizes[tensor.buffer] = (len(data), tensor.type)
    _, kind = max(sizes.values())
    return {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}[kind]


def test_flatbuffers_hold_only_builtin_operators(converted):
    result, _ = converted
    for name, variant in result.variants.items():
        content = (Path(result.output_dir) / variant.file).read_bytes()
        ops = C.check_builtins_only(content)
        assert not [op for op in ops if op.startswith(NON_BUILTIN_PREFIXES)], (name, ops)
        # The preprocessing really is inside the model (not left to the app): lookups, buckets, NaN tests.
        assert {"EQUAL", "ARG_MAX", "GREATER_EQUAL", "NOT_EQUAL", "REDUCE_ANY", "SELECT_V2"} <= set(ops)
        # And the interpreter that will run it sees only those operators.
        interpreter = runtime.interpreter_class()(model_content=content)
        seen = {d["op_name"] for d in interpreter._get_ops_details()}
        assert seen <= set(ops) and not any(op.startswith("Flex") for op in seen)
        assert set(interpreter.get_signature_list()) == {"serving_default", "serving_bytes"}


def test_variants_from_one_converter_are_those_of_a_converter_each(converted, tmp_path):
    """convert() converts both variants with one VariantConverter (the module loaded once): each file written
    is byte for byte what a TFLiteConverter of its own makes of the same saved module."""
    import tensorflow as tf

    from tfxp.mobile.converter import VARIANTS, to_tflite
    from tfxp.models.signatures import load_problem

    result, saved_model_dir = converted
    module = graph.build_module(
        tf.keras.models.load_model(saved_model_dir, compile=False),
        result.params,
        load_problem(saved_model_dir),
        web_signature=True,  # as convert() builds it
    )
    signatures = module.signatures()
    tf.saved_model.save(module, str(tmp_path / "module"), signatures=signatures)
    for name, quantize in VARIANTS:
        alone = to_tflite(str(tmp_path / "module"), list(signatures), quantize=quantize)
        written = (Path(result.output_dir) / result.variants[name].file).read_bytes()
        assert hashlib.sha256(alone).digest() == hashlib.sha256(written).digest(), name


def test_operators_read_in_place_equal_the_unpacked_model(converted):
    """converter.operators and model_spec.min_runtime_version read the flatbuffer with its accessors; the
    answers equal flatbuffer_utils' unpacked object model's."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from tfxp.mobile.converter import operators
    from tfxp.mobile.model_spec import min_runtime_version

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    result, _ = converted
    for variant in result.variants.values():
        content = (Path(result.output_dir) / variant.file).read_bytes()
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
        assert not any(code.customCode for code in model.operatorCodes)
        unpacked = {names[max(code.builtinCode, code.deprecatedBuiltinCode)] for code in model.operatorCodes}
        assert operators(content) == sorted(unpacked) and "FULLY_CONNECTED" in unpacked
        (item,) = [m for m in model.metadata if m.name == b"min_runtime_version"]
        expected = bytes(model.buffers[item.buffer].data).rstrip(b"\0").decode("ascii")
        assert min_runtime_version(content) == expected and expected.count(".") == 2


def test_check_builtins_only_rejects_flex_ops(tmp_path):
    import tensorflow as tf

    class AsString(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="x")])
        def serve(self, x):
            return {"y": tf.strings.as_string(x)}  # AsString: no builtin kernel

    module = AsString()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve.get_concrete_function()})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    content = converter.convert()
    with pytest.raises(C.NonBuiltinOpsError) as info:
        C.check_builtins_only(content)
    assert info.value.ops == ["CUSTOM:FlexAsString"]


def test_parity_gates_hold_on_500_real_rows(converted, eval_rows):
    result, saved_model = converted
    float_report = result.variants["float"].parity
    quant_report = result.variants["quant"].parity
    assert float_report.rows == quant_report.rows == 500
    assert float_report.passed and float_report.max_abs_diff <= 1e-5, float_report
    assert quant_report.passed and quant_report.auc_delta <= 0.005, quant_report
    assert float_report.reference_auc == quant_report.reference_auc > 0.8
    labels = C.labels(saved_model, eval_rows)  # by the SavedModel's transform_features (the label hook)
    assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1}
    # The taxi label hook's rule, computed here only to check the transform ran it: big_tipper.
    tips = np.array([float(r["tips"] or 0) for r in eval_rows], np.float32)
    fare = np.array([float(r["fare"]) for r in eval_rows], np.float32)
    np.testing.assert_array_equal(labels, (tips > fare * np.float32(0.2)).astype(np.int64))
    assert float_report.labeled_rows == quant_report.labeled_rows == 500


def test_parity_function_on_each_file(converted, eval_rows):
    result, saved_model = converted
    out = Path(result.output_dir)
    params = result.params
    reference = C.reference_probabilities(saved_model, eval_rows, params)
    report = C.parity(out / "model.tflite", saved_model, eval_rows, params=params, variant="float", reference=reference)
    assert report.passed and report.max_abs_diff <= 1e-5
    assert report.contract_rows == len(C.contract_rows(eval_rows, params)) > 80
    assert report.contract_max_abs_diff <= 1e-5 and report.unanswered >= 19
    report = C.parity(out / "model_quant.tflite", saved_model, eval_rows, params=params, variant="quant")
    assert report.passed and abs(report.auc - report.reference_auc) <= 0.005
    assert report.contract_max_abs_diff <= C.QUANT_CONTRACT_MAX_DIFF
    # A deliberately wrong model for the float gate: the quantized weights are not within 1e-5.
    report = C.parity(
        out / "model_quant.tflite", saved_model, eval_rows, params=params, variant="float", reference=reference
    )
    assert not report.passed and any("max |probability" in r for r in report.reasons)


def test_preprocessing_rebuilt_from_the_transform_is_exact(converted, transformed, eval_rows, odd_rows):
    """The builtin-op preprocessing equals tf.Transform's output bit for bit, on real and odd rows."""
    import tensorflow as tf

    result, saved_model = converted
    tft_output, _, _ = transformed
    assert all(p.exact for p in result.params if p.kind is F.Kind.NUMERIC)
    module = C.build_module(tf.keras.models.load_model(saved_model, compile=False), result.params, result.problem)
    probe = C.TransformProbe(tft_output, result.problem)
    from taxi_data import read_csv_rows

    rows = read_csv_rows(limit=2000) + eval_rows + odd_rows
    cols = runtime.columns(rows, C.input_spec(result.params))
    want = probe.columns(cols)
    got = {name: value.numpy().reshape(-1) for name, value in module.preprocess(cols).items()}
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_unseen_categories_and_missing_values_match_predict_raw(converted, transformed, odd_rows):
    result, saved_model = converted
    out = Path(result.output_dir)
    # The rows really reach the OOV ids and the missing defaults.
    probe = C.TransformProbe(transformed[0], result.problem)
    transformed_odd = probe.columns(runtime.columns(odd_rows, C.input_spec(result.params)))
    oov = {p.name: p.oov_id for p in result.params if p.kind is F.Kind.VOCABULARY}
    assert transformed_odd["company_xf"][0] == oov["company"]
    assert transformed_odd["payment_type_xf"][1] == oov["payment_type"]
    assert transformed_odd["dropoff_census_tract_xf"][2] == oov["dropoff_census_tract"]
    assert transformed_odd["dropoff_community_area_xf"][3] == oov["dropoff_community_area"]
    assert transformed_odd["pickup_latitude_xf"][4] == 0  # NaN -> 0.0 -> first bucket
    reference = C.reference_probabilities(saved_model, odd_rows, result.params)
    assert np.isfinite(reference).all()
    got = runtime.TFLiteModel(out / "model.tflite").run(runtime.columns(odd_rows, C.input_spec(result.params)))
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)
    quant = runtime.TFLiteModel(out / "model_quant.tflite").run(runtime.columns(odd_rows, C.input_spec(result.params)))
    np.testing.assert_allclose(quant, reference, rtol=0, atol=0.05)


def _variants(result):
    """(variant, signature, TFLiteModel) for every written variant and signature."""
    for variant in result.variants.values():
        for signature in ("serving_default", "serving_bytes"):
            yield (
                variant.name,
                signature,
                runtime.TFLiteModel(Path(result.output_dir) / variant.file, signature=signature),
            )


def test_missing_value_contract_is_the_same_in_every_variant(converted, eval_rows):
    """Issue 10 item 16: the quantized model answered a finite probability for a blank required float.

    On rows with missing and invalid values, every variant and signature answers NaN
    exactly where predict_raw refuses the row, and predict_raw's answer elsewhere.
    """
    import tensorflow as tf

    result, saved_model = converted
    params = result.params
    rows = C.contract_rows(eval_rows, params)
    cols = runtime.columns(rows, C.input_spec(result.params))
    no_answer = C.unanswerable(cols, params)
    required = [p.name for p in params if not p.optional]
    assert set(required) == {
        "trip_miles",
        "fare",
        "trip_start_hour",
        "trip_start_day",
        "trip_start_month",
        "payment_type",
    }
    for name in required:  # each required input blank is a row without an answer
        assert any(no_answer[i] and r[name] == "" for i, r in enumerate(rows)), name
    assert any(no_answer[i] and r["fare"] == "inf" for i, r in enumerate(rows))
    assert any(not no_answer[i] and r["company"] == "" for i, r in enumerate(rows))  # optional: answered
    # predict_raw itself refuses exactly those rows (so the server answers 400 there).
    fn = tf.saved_model.load(saved_model).signatures["predict_raw"]
    for i in range(len(rows)):
        one = {name: tf.constant(values[i : i + 1]) for name, values in cols.items()}
        if no_answer[i]:
            with pytest.raises(tf.errors.InvalidArgumentError):
                fn(**one)
        else:
            assert np.isfinite(fn(**one)[OUTPUT].numpy()).all(), rows[i]
    reference = C.reference_probabilities(saved_model, rows, params)
    assert np.array_equal(np.isnan(reference), no_answer)
    for variant, signature, model in _variants(result):
        got = model.run(cols)
        assert np.array_equal(np.isnan(got), no_answer), (
            variant,
            signature,
            np.flatnonzero(np.isnan(got) != no_answer),
        )
        bound = 1e-5 if variant == "float" else C.QUANT_CONTRACT_MAX_DIFF
        np.testing.assert_allclose(
            got[~no_answer], reference[~no_answer], rtol=0, atol=bound, err_msg=f"{variant} {signature}"
        )


def test_a_variant_breaking_the_contract_is_not_written(trained_model, eval_rows, tmp_path, monkeypatch):
    """The gate runs the contract rows: a model answering where predict_raw refuses is not written,
    though it passes on real eval rows (which have every required value)."""
    import tensorflow as tf

    def always(raw, params, as_bytes=False):  # the models before the contract: every row "answerable"
        return tf.fill(tf.shape(next(iter(raw.values())))[:1], True)

    monkeypatch.setattr(graph, "_answerable", always)  # the contract lives in the graph module
    result = C.convert(trained_model[0], tmp_path, eval_rows=eval_rows[:200], model_version=5)
    assert result.written == [] and not (tmp_path / "model_quant.tflite").exists()
    for name in ("float", "quant"):
        reasons = " ".join(result.rejected[name])
        assert "a number where predict_raw has no answer" in reasons, reasons
    assert result.variants["float"].parity.max_abs_diff <= 1e-5  # the eval rows alone pass
    assert result.spec["default_variant"] is None


def test_inputs_of_unequal_lengths_are_refused(converted, eval_rows):
    """A short column must not be broadcast over the other rows (predict_raw refuses it too)."""
    result, _ = converted
    cols = runtime.columns(eval_rows[:2], C.input_spec(result.params))
    for _variant, _signature, model in _variants(result):
        # What an app hands the interpreter: serving_bytes takes strings as uint8 [rows, width].
        native = {
            name: runtime.encode_bytes(values, model._byte_widths[name]) if name in model._byte_widths else values
            for name, values in cols.items()
        }
        for short in ("pickup_census_tract", "company", "trip_miles"):
            with pytest.raises(ValueError, match="every input needs one value per row"):
                model.run(dict(cols, **{short: cols[short][:1]}))
            # The model itself refuses, for apps that call the interpreter directly.
            with pytest.raises(RuntimeError, match="RESHAPE"):
                model.runner(**dict(native, **{short: native[short][:1]}))
        assert len(model.run(cols)) == 2  # and the interpreter still works


def test_int64_values_beyond_int32_stay_out_of_vocabulary(converted, eval_rows):
    """Vocabulary keys 0..k-1 made the converter use ONE_HOT, which reads int64 as int32 (2**62 matched 0)."""
    result, saved_model = converted
    int_vocabularies = [p for p in result.params if p.kind is F.Kind.VOCABULARY and p.dtype is F.DType.INT]
    rows = []
    for p in int_vocabularies:
        for key in [k for k in p.vocabulary if k != F.MISSING_INT][:2]:
            rows += [dict(eval_rows[0], **{p.name: str(key + offset)}) for offset in (2**32, -(2**32), 2**62)]
        rows.append(dict(eval_rows[0], **{p.name: str(-(2**62))}))
    # (Before issue 17 a missing int was read as 0, so taxi's int vocabularies started 0, 1, ...: the case
    # that was fused. Missing values now have their own id, and no taxi vocabulary starts at 0; the
    # graph keeps the guard, and these values beyond int32 still check every int vocabulary.)
    assert int_vocabularies
    reference = C.reference_probabilities(saved_model, rows, result.params)
    got = runtime.TFLiteModel(Path(result.output_dir) / "model.tflite").run(
        runtime.columns(rows, C.input_spec(result.params))
    )
    np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)


def test_blank_required_values_give_nan(converted, eval_rows):
    """A row missing a required value (fare, trip_start_hour, payment_type...) has no answer: NaN in every variant."""
    result, _ = converted
    rows = [
        dict(eval_rows[0], fare=""),
        dict(eval_rows[1], trip_miles="nan"),
        eval_rows[2],
        dict(eval_rows[3], trip_start_hour=""),
        dict(eval_rows[4], payment_type=""),
        dict(eval_rows[5], fare="-inf"),
        dict(eval_rows[6], company=""),
    ]
    for variant, signature, model in _variants(result):
        got = model.run(runtime.columns(rows, C.input_spec(result.params)))
        assert [math.isnan(p) for p in got] == [True, True, False, True, True, True, False], (variant, signature)
    spec = {i["name"]: i for i in result.spec["inputs"]}
    assert spec["fare"]["required"] and spec["trip_miles"]["required"] and not spec["trip_seconds"]["required"]
    assert "makes the probability NaN" in spec["payment_type"]["meaning"]


def test_model_spec_matches_the_interpreters(converted, transformed):
    result, _ = converted
    out = Path(result.output_dir)
    spec = json.loads((out / "model_spec.json").read_text())
    assert spec == result.spec
    assert spec["model_name"] == "taxi" and spec["model_version"] == 3 and spec["signature"] == "serving_default"
    assert [i["name"] for i in spec["inputs"]] == [f.name for f in TAXI.features]
    assert spec["output"]["name"] == OUTPUT and spec["output"]["dtype"] == "float32"
    markers = {"int64": F.MISSING_INT, "float32": "NaN", "string": ""}
    for item in spec["inputs"]:
        assert item["missing_marker"] == markers[item["dtype"]]
        assert item["shape"] == [-1] and item["meaning"].startswith(item["name"])
    assert spec["signatures"]["serving_default"]["inputs"] == [
        {k: i[k] for k in ("name", "dtype", "shape", "missing_marker", "required")} for i in spec["inputs"]
    ]
    widths = {p.name: p.byte_width for p in result.params if p.dtype is F.DType.STRING}
    assert set(widths) == {"payment_type", "company"}
    for item in spec["signatures"]["serving_bytes"]["inputs"]:
        want = (
            ("uint8", [-1, widths[item["name"]]])
            if item["name"] in widths
            else (next(i["dtype"] for i in spec["inputs"] if i["name"] == item["name"]), [-1])
        )
        assert (item["dtype"], item["shape"]) == want
    for variant in spec["variants"].values():
        content = (out / variant["file"]).read_bytes()
        assert variant["sha256"] == hashlib.sha256(content).hexdigest() and variant["bytes"] == len(content)
        for signature, declared in spec["signatures"].items():
            model = runtime.TFLiteModel(model_content=content, signature=signature)
            actual = model.input_details()  # shape [-1] / [-1, width]: dynamic batch
            assert actual == {i["name"]: {"dtype": i["dtype"], "shape": i["shape"]} for i in declared["inputs"]}
            assert model.output_details() == {OUTPUT: {"dtype": "float32", "shape": [-1]}}
        assert variant["parity"]["passed"] and variant["metrics"]["rows"] == 500
        assert variant["parity"]["bytes_signature_max_abs_diff"] == 0.0
    tft_output = transformed[0]
    for name, vocab in spec["vocabularies"].items():
        assert vocab["size"] == len(tft_output.vocabulary_by_name(name)) == vocab["oov_id"] - 1
    assert spec["default_variant"] == "quant" and spec["rejected"] == {} and spec["parity_checked"]


def test_model_spec_describes_the_binary_task(converted):
    """Taxi is a binary project whose label comes from a hook: the output is P(positive class)."""
    result, _ = converted
    spec = result.spec
    assert spec["task"] == "binary" and result.to_dict()["task"] == "binary"
    assert spec["label"] == {"column": "tips", "hook": "tfxp.projects.taxi.label:big_tipper"}
    output = spec["output"]
    assert (output["name"], output["shape"], output["classes"]) == ("probability", [-1], ["0", "1"])
    assert output["meaning"].startswith(
        "probability of the positive class ('1') of the label derived from the raw "
        "row by the label hook tfxp.projects.taxi.label:big_tipper"
    )
    assert set(spec["reference"]) == {"signature", "rows", "auc", "accuracy"}
    assert spec["reference"]["auc"] == result.variants["float"].parity.reference_auc > 0.8
    for variant in spec["variants"].values():
        assert set(variant["metrics"]) == {"rows", "labeled_rows", "auc", "accuracy"}
        assert variant["parity"]["metric"] == "auc" and variant["parity"]["task"] == "binary"


def test_a_variant_failing_its_gate_is_not_written(trained_model, transform_dir, eval_rows, tmp_path):
    out = tmp_path / "mobile"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"stale file from an older conversion")
    # Impossible tolerances: no variant can pass.
    result = C.convert(
        trained_model[0],
        out,
        transform_output_dir=transform_dir,
        eval_rows=eval_rows[:200],
        model_version=4,
        max_abs_diff=-1.0,
        max_auc_delta=-1.0,
    )
    assert not result.ok and result.written == []
    assert set(result.rejected) == {"float", "quant"}
    assert any("max |probability" in r for r in result.rejected["float"])
    assert any(r.startswith("AUC") for r in result.rejected["quant"])
    assert sorted(p.name for p in out.iterdir()) == ["model_spec.json"]
    spec = json.loads((out / "model_spec.json").read_text())
    assert spec["variants"] == {} and spec["default_variant"] is None
    assert spec["rejected"]["float"]["reasons"] == result.rejected["float"]
    with pytest.raises(runtime.ModelSpecError):
        runtime.MobileModel(out)


def test_bytes_signature_equals_the_string_one(converted, eval_rows, odd_rows):
    """serving_bytes (for runtimes without string tensors) gives serving_default's answers, bit for bit."""
    result, _ = converted
    company = next(p for p in result.params if p.name == "company")
    known = company.vocabulary[0]
    width = company.byte_width
    tricky = [
        dict(eval_rows[0], company=known + "x"),  # a key plus one more byte
        dict(eval_rows[1], company=known[:-1]),  # a key minus its last byte
        dict(eval_rows[2], company="C" * (width + 20)),  # longer than the width: cut, still OOV
        dict(eval_rows[3], company=(known + " " * width)[:width]),  # exactly the width
        dict(eval_rows[4], company="Taxi Café Ünïcode 出租车"),
        dict(eval_rows[5], payment_type="Credit Card"),
        dict(eval_rows[6], payment_type="credit card"),
    ]
    rows = eval_rows + odd_rows + tricky
    cols = runtime.columns(rows, C.input_spec(result.params))
    for variant in result.variants.values():
        path = Path(result.output_dir) / variant.file
        strings = runtime.TFLiteModel(path).run(cols)
        as_bytes = runtime.TFLiteModel(path, signature="serving_bytes").run(cols)
        np.testing.assert_array_equal(as_bytes, strings)
    encoded = runtime.encode_bytes([b"ab", b"", "é".encode(), b"abcdef"], 4)
    assert encoded.tolist() == [[97, 98, 0, 0], [0, 0, 0, 0], [195, 169, 0, 0], [97, 98, 99, 100]]


def test_oov_buckets_is_one():
    # More than one OOV bucket hashes with Fingerprint64, which has no TFLite builtin.
    assert F.OOV_BUCKETS == 1
