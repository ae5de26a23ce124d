// Runs one job: feeds.json = {"signature": key or null, "warmup": bool (tfjs-tflite), "calls": [{"inputs": {name: {"dtype", "shape",
// "data"}}}]}; "data" values are strings for float32/int32/int64 (so NaN, Infinity and int64's extremes
// survive JSON), numbers for uint8. Each call is one run (one row, or a batch); outputs are returned per
// call as {name: [values as strings]}, errors as the runtime's message.
import {loadLiteRt, loadAndCompile, Tensor} from '@litertjs/core';

const params = new URLSearchParams(location.search);
const runtime = params.get('runtime');
const job = params.get('job');
const base = `/run/${job}/`;

function typed(dtype, data) {
  switch (dtype) {
    case 'float32': return Float32Array.from(data, Number);
    case 'int32': return Int32Array.from(data, Number);
    case 'int64': return BigInt64Array.from(data, (v) => BigInt(v));
    case 'uint8': return Uint8Array.from(data);
    default: throw new Error(`no typed array for ${dtype}`);
  }
}

const strings = (values) => Array.from(values, (v) => String(v));

async function litert(feeds) {
  let model;
  try {
    await loadLiteRt('/node_modules/@litertjs/core/wasm/');
    model = await loadAndCompile(base + 'model.tflite', {accelerator: 'wasm'});
  } catch (e) {
    return {ok: false, stage: 'load', error: String(e && e.message || e)};
  }
  const signatures = Object.keys(model.signatures);
  const key = feeds.signature || signatures[0];
  const details = model.signatures[key].getInputDetails().map((d) => ({name: d.name, dtype: d.dtype}));
  const results = [];
  for (const call of feeds.calls) {
    try {
      const inputs = {};
      for (const [name, t] of Object.entries(call.inputs)) inputs[name] = new Tensor(typed(t.dtype, t.data), t.shape);
      const out = await model.run(key, inputs);
      const values = {};
      for (const [name, tensor] of Object.entries(out)) {
        values[name] = strings(tensor.toTypedArray());
        tensor.delete();
      }
      for (const tensor of Object.values(inputs)) tensor.delete();
      results.push({ok: true, outputs: values});
    } catch (e) {
      results.push({ok: false, error: String(e && e.message || e)});
    }
  }
  return {ok: true, signatures, signature: key, inputs: details, results};
}

async function tfjsTflite(feeds) {
  let model;
  try {
    tflite.setWasmPath('/node_modules/@tensorflow/tfjs-tflite/wasm/');
    model = await tflite.loadTFLiteModel(base + 'model.tflite', {numThreads: 1});
  } catch (e) {
    return {ok: false, stage: 'load', error: String(e && e.message || e)};
  }
  const details = model.inputs.map((d) => ({name: d.name, dtype: d.dtype, shape: d.shape}));
  const results = [];
  // feeds.warmup: run the first call once more before the others and drop its answer (the first
  // predict() after load answers zeros, measured with 0.0.1-alpha.10).
  const calls = feeds.warmup ? [feeds.calls[0], ...feeds.calls] : feeds.calls;
  for (const call of calls) {
    try {
      const inputs = {};
      for (const [name, t] of Object.entries(call.inputs)) {
        // tfjs has no int64 tensor: an app can only hand int32 (or float32) values for one.
        const dtype = t.dtype === 'int64' || t.dtype === 'uint8' ? 'int32' : t.dtype;
        inputs[name] = tf.tensor(Array.from(t.data, Number), t.shape, dtype);
      }
      let out = model.predict(inputs);
      if (out instanceof tf.Tensor) out = {[model.outputs[0].name]: out};
      const values = {};
      for (const [name, tensor] of Object.entries(out)) values[name] = strings(tensor.dataSync());
      tf.dispose([inputs, out]);
      results.push({ok: true, outputs: values});
    } catch (e) {
      results.push({ok: false, error: String(e && e.message || e)});
    }
  }
  if (feeds.warmup) results.shift();
  return {ok: true, signatures: null, signature: null, inputs: details, results};
}

async function main() {
  let result;
  try {
    const feeds = await (await fetch(base + 'feeds.json')).json();
    result = runtime === 'litert.js' ? await litert(feeds) : await tfjsTflite(feeds);
  } catch (e) {
    result = {ok: false, stage: 'page', error: String(e && e.stack || e)};
  }
  result.runtime = runtime;
  const text = JSON.stringify(result);
  document.getElementById('result').textContent = text;
  await fetch(`/result/${job}`, {method: 'POST', body: text});
}

window.addEventListener('error', (e) => fetch(`/result/${job}`, {method: 'POST',
  body: JSON.stringify({ok: false, stage: 'page', error: String(e.message), runtime})}));
main();
