// onnx_run.js - runs an ONNX file with ONNX Runtime (onnxruntime-node, CPU) on float32 rows and
// compares its "probs" with ensflow's (tests/integration/onnx_export.sh).
// usage: node onnx_run.js MODEL.onnx X.f32 EXPECTED.f32 DIM CLASSES TOLERANCE
// Prints max_abs_diff=...; exit 0 within the tolerance, 1 otherwise, 2 on a usage error.
'use strict';
const fs = require('fs');

async function main() {
    const [model, xPath, expPath, dimS, kS, tolS] = process.argv.slice(2);
    if (!tolS) {
        console.error('usage: node onnx_run.js MODEL.onnx X.f32 EXPECTED.f32 DIM CLASSES TOLERANCE');
        process.exit(2);
    }
    const dim = Number(dimS), k = Number(kS), tol = Number(tolS);
    const ort = require('onnxruntime-node');
    const floats = (p) => {
        const b = fs.readFileSync(p);
        return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
    };
    const x = floats(xPath), want = floats(expPath);
    const n = x.length / dim;
    if (!Number.isInteger(n) || want.length !== n * k) {
        console.error(`onnx_run: ${xPath} has ${x.length} floats, ${expPath} ${want.length}: ` +
                      `not n x ${dim} and n x ${k}`);
        process.exit(1);
    }
    const session = await ort.InferenceSession.create(model, {executionProviders: ['cpu']});
    const out = await session.run({input: new ort.Tensor('float32', x, [n, dim])});
    const probs = out.probs;
    if (!probs || probs.dims.length !== 2 || probs.dims[0] !== n || probs.dims[1] !== k) {
        console.error(`onnx_run: ${model}: output probs has dims ` +
                      `${probs ? JSON.stringify(probs.dims) : 'none'}, expected [${n}, ${k}]`);
        process.exit(1);
    }
    let max = 0;
    for (let i = 0; i < want.length; i++) {
        const d = Math.abs(probs.data[i] - want[i]);
        if (!(d <= max)) max = d; // NaN sticks
    }
    console.log(`max_abs_diff=${max.toExponential(3)} rows=${n}`);
    process.exit(max <= tol ? 0 : 1);
}

main().catch((e) => {
    console.error(`onnx_run: ${e && e.message ? e.message : e}`);
    process.exit(1);
});
