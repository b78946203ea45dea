// Reference activations of the nsfwjs 4.4.0 MobileNetV2 (tfjs LayersModel, pure-JS CPU backend).
//
//   node nsfwjs_reference.mjs INPUT.f32 N,H,W,3 OUT_DIR [LAYER ...]
//
// INPUT.f32: little-endian float32, NHWC, already normalised (nsfwjs itself feeds pixels / 255).
// The model is loaded through nsfwjs's own loader (the .min.js bundles, uint8 weights dequantised
// by tfjs). Each requested Keras layer (default: block_10_project_BN) is computed by walking the
// Keras graph eagerly, so any input size works; "out_relu_gap" is the global average of out_relu
// (the 1280-d vector the nsfwjs head sees). OUT_DIR gets LAYER.f32 (NHWC float32) per layer and
// outputs.json with their shapes. Used by model_export/pretrained_parity.py.
import fs from "node:fs";
import path from "node:path";

import * as tf from "@tensorflow/tfjs";
import { load } from "nsfwjs/core";
import { MobileNetV2Model } from "nsfwjs/models/mobilenet_v2";

const GAP = "out_relu_gap";

function parseArgs(argv) {
  if (argv.length < 3) {
    console.error("usage: node nsfwjs_reference.mjs INPUT.f32 N,H,W,3 OUT_DIR [LAYER ...]");
    process.exit(2);
  }
  const [input, shapeText, outDir, ...layers] = argv;
  const shape = shapeText.split(",").map(Number);
  if (shape.length !== 4 || shape[3] !== 3 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new Error(`bad shape ${shapeText}: want N,H,W,3`);
  }
  return { input, shape, outDir, layers: layers.length ? layers : ["block_10_project_BN"] };
}

function readInput(file, shape) {
  const buf = fs.readFileSync(file);
  const count = shape.reduce((a, b) => a * b, 1);
  if (buf.byteLength !== count * 4) {
    throw new Error(`${file}: ${buf.byteLength} bytes, shape needs ${count * 4}`);
  }
  const values = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return tf.tensor4d(values, shape);
}

// Evaluate the Keras graph layer by layer (model.layers is in topological order) until every
// wanted layer has an output; returns {name: tensor}.
function walk(model, x, wanted) {
  const outputs = { [model.layers[0].name]: x };
  const left = new Set(wanted);
  for (const layer of model.layers.slice(1)) {
    if (left.size === 0) break;
    const inbound = layer.inboundNodes[0].inboundLayers.map((l) => outputs[l.name]);
    outputs[layer.name] = layer.apply(inbound.length === 1 ? inbound[0] : inbound, { training: false });
    left.delete(layer.name);
  }
  if (left.size) throw new Error(`unknown layers: ${[...left].join(", ")}`);
  return outputs;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  await tf.setBackend("cpu");
  const nsfw = await load("MobileNetV2", { modelDefinitions: [MobileNetV2Model] });
  const model = nsfw.model;
  const x = readInput(args.input, args.shape);
  const graphLayers = args.layers.map((name) => (name === GAP ? "out_relu" : name));
  const result = {};
  tf.tidy(() => {
    const outs = walk(model, x, graphLayers);
    for (const name of args.layers) {
      const t = name === GAP ? outs.out_relu.mean([1, 2]) : outs[name];
      result[name] = { shape: t.shape, data: t.dataSync().slice() };
    }
  });
  fs.mkdirSync(args.outDir, { recursive: true });
  const meta = { tfjs: tf.version.tfjs, backend: tf.getBackend(), outputs: {} };
  for (const [name, { shape, data }] of Object.entries(result)) {
    fs.writeFileSync(path.join(args.outDir, `${name}.f32`), Buffer.from(data.buffer));
    meta.outputs[name] = { shape, layout: "NHWC", file: `${name}.f32` };
  }
  fs.writeFileSync(path.join(args.outDir, "outputs.json"), JSON.stringify(meta, null, 1));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
