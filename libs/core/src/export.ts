// Encoders in the standard tfjs format: a Keras-style LayersModel (model.json with the topology and
// a weights manifest, plus binary weight shards), which `tf.loadLayersModel` reads in any tfjs
// program. Pure: the caller decides where the files go (disk, object storage).
import * as tfjs from "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import { CoreInputError } from "./checks.js";
import { Encoder, type EncoderArch, ENCODER_ARCHS, encoderSpec, gridWindow, nodesFor } from "./encoder.js";

/** Metadata stored in model.json (userDefinedMetadata.adco) to rebuild the Encoder. */
export interface EncoderMetadata {
  readonly arch: EncoderArch;
  readonly projectionDim: number;
  readonly withHead: boolean;
  readonly format: 1;
}

const BN_EPSILON = 1e-5;

/**
 * A LayersModel of the encoder with its current weights and BatchNorm running statistics (inference
 * mode). withHead: output the projection too ([features, projection]); otherwise only features.
 */
export function toLayersModel(encoder: Encoder, withHead = false): tfjs.LayersModel {
  const spec = encoder.spec;
  const input = tfjs.input({ shape: [...spec.inputShape], name: "input" });
  const outputs = new Map<string, tfjs.SymbolicTensor>([["input", input]]);
  const get = (name: string) => outputs.get(name)!;
  const weights: [string, tf.Tensor[]][] = [];
  const needed = nodesFor(spec, withHead ? [spec.features, spec.projection] : [spec.features]);
  for (const node of spec.nodes) {
    if (!needed.has(node.name)) continue;
    let out: tfjs.SymbolicTensor;
    switch (node.kind) {
      case "conv":
        out = tfjs.layers
          .conv2d({
            name: node.name,
            filters: node.filters,
            kernelSize: node.size,
            strides: node.stride,
            padding: "same",
            useBias: false,
          })
          .apply(get(node.input)) as tfjs.SymbolicTensor;
        weights.push([node.name, [encoder.params.get(`${node.name}/kernel`)!]]);
        break;
      case "bn":
        out = tfjs.layers
          .batchNormalization({ name: node.name, epsilon: BN_EPSILON })
          .apply(get(node.input)) as tfjs.SymbolicTensor;
        weights.push([
          node.name,
          [
            encoder.params.get(`${node.name}/gamma`)!,
            encoder.params.get(`${node.name}/beta`)!,
            encoder.runningStats.get(`${node.name}/moving_mean`)!,
            encoder.runningStats.get(`${node.name}/moving_variance`)!,
          ],
        ]);
        break;
      case "relu":
        out = tfjs.layers.reLU({ name: node.name }).apply(get(node.input)) as tfjs.SymbolicTensor;
        break;
      case "add":
        out = tfjs.layers
          .add({ name: node.name })
          .apply([get(node.inputs[0]), get(node.inputs[1])]) as tfjs.SymbolicTensor;
        break;
      case "maxpool":
        out = tfjs.layers
          .maxPooling2d({ name: node.name, poolSize: node.size, strides: node.stride, padding: "same" })
          .apply(get(node.input)) as tfjs.SymbolicTensor;
        break;
      case "gap":
        out = tfjs.layers
          .globalAveragePooling2d({ name: node.name })
          .apply(get(node.input)) as tfjs.SymbolicTensor;
        break;
      case "gridpool": {
        const [, height, width] = get(node.input).shape as number[];
        const { size, stride } = gridWindow(height!, width!, node.grid);
        const pooled = tfjs.layers
          .averagePooling2d({ name: `${node.name}_pool`, poolSize: size, strides: stride, padding: "valid" })
          .apply(get(node.input)) as tfjs.SymbolicTensor;
        out = tfjs.layers.flatten({ name: node.name }).apply(pooled) as tfjs.SymbolicTensor;
        break;
      }
      case "dense":
        out = tfjs.layers
          .dense({ name: node.name, units: node.units })
          .apply(get(node.input)) as tfjs.SymbolicTensor;
        weights.push([
          node.name,
          [encoder.params.get(`${node.name}/kernel`)!, encoder.params.get(`${node.name}/bias`)!],
        ]);
        break;
    }
    outputs.set(node.name, out);
  }
  const modelOutputs = withHead ? [get(spec.features), get(spec.projection)] : get(spec.features);
  const model = tfjs.model({ inputs: input, outputs: modelOutputs, name: `adco_${spec.arch}` });
  for (const [name, values] of weights) model.getLayer(name).setWeights(values);
  const metadata: EncoderMetadata = {
    arch: spec.arch,
    projectionDim: spec.projectionDim,
    withHead,
    format: 1,
  };
  model.setUserDefinedMetadata({ adco: metadata });
  return model;
}

/** model.json and weight data of an encoder, as tf.io ModelArtifacts. */
export async function encoderArtifacts(encoder: Encoder, withHead = false): Promise<tf.io.ModelArtifacts> {
  const model = toLayersModel(encoder, withHead);
  let artifacts: tf.io.ModelArtifacts | undefined;
  try {
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
      }),
    );
  } finally {
    model.dispose();
  }
  return artifacts!;
}

/** Rebuilds an Encoder from artifacts written by encoderArtifacts (or files in that format). */
export async function encoderFromArtifacts(artifacts: tf.io.ModelArtifacts): Promise<Encoder> {
  const meta = (artifacts.userDefinedMetadata as { adco?: EncoderMetadata } | undefined)?.adco;
  if (!meta || !ENCODER_ARCHS.includes(meta.arch)) {
    throw new CoreInputError(
      "model.json",
      "not an adco encoder (userDefinedMetadata.adco missing or unknown arch)",
    );
  }
  const model = await tfjs.loadLayersModel(tf.io.fromMemory(artifacts));
  const encoder = new Encoder(encoderSpec(meta.arch, meta.projectionDim));
  try {
    for (const layer of model.layers) {
      const values = layer.getWeights();
      if (values.length === 0) continue;
      const names =
        layer.getClassName() === "BatchNormalization"
          ? ["gamma", "beta", "moving_mean", "moving_variance"]
          : layer.getClassName() === "Dense"
            ? ["kernel", "bias"]
            : ["kernel"];
      names.forEach((w, i) => {
        const target =
          encoder.params.get(`${layer.name}/${w}`) ?? encoder.runningStats.get(`${layer.name}/${w}`);
        if (!target) throw new CoreInputError("model.json", `unexpected weight ${layer.name}/${w}`);
        target.assign(values[i]!);
      });
    }
  } finally {
    model.dispose();
  }
  return encoder;
}

/**
 * Files of the standard format: model.json plus weight shards of at most shardBytes each (objects
 * stay under the 64 MiB single-put limit of our object store). Keys are file names.
 */
export function artifactsToFiles(
  artifacts: tf.io.ModelArtifacts,
  shardBytes = 32 * 1024 * 1024,
): Map<string, Uint8Array> {
  const data = artifacts.weightData;
  if (!data || !artifacts.weightSpecs) throw new CoreInputError("artifacts", "no weights");
  const bytes = new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
  const shards = Math.max(1, Math.ceil(bytes.byteLength / shardBytes));
  const files = new Map<string, Uint8Array>();
  const paths: string[] = [];
  for (let i = 0; i < shards; i++) {
    const path = `group1-shard${i + 1}of${shards}.bin`;
    paths.push(path);
    files.set(path, bytes.subarray(i * shardBytes, Math.min(bytes.byteLength, (i + 1) * shardBytes)));
  }
  const modelJson = {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    userDefinedMetadata: artifacts.userDefinedMetadata,
    weightsManifest: [{ paths, weights: artifacts.weightSpecs }],
  };
  files.set("model.json", new TextEncoder().encode(JSON.stringify(modelJson)));
  return files;
}

/** The inverse of artifactsToFiles: reads model.json and its shards through `read`. */
export async function artifactsFromFiles(
  read: (path: string) => Promise<Uint8Array>,
): Promise<tf.io.ModelArtifacts> {
  const json = JSON.parse(new TextDecoder().decode(await read("model.json"))) as tf.io.ModelJSON;
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const path of group.paths) parts.push(await read(path));
  }
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const weightData = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    weightData.set(p, offset);
    offset += p.byteLength;
  }
  return {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    userDefinedMetadata: json.userDefinedMetadata,
    weightSpecs: specs,
    weightData: weightData.buffer,
  };
}
