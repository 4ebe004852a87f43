// The augmentation a stream asked for, applied to one record. Every random choice comes from
// (run seed, epoch, sample id, view), so any worker makes the same views of a sample.
import {
  augmentRgb,
  augmentSmallGrayBytes,
  type CropOptions,
  decodeRgb,
  MOCO_V2_COLOR,
  type Pixels,
  SMALL_GRAY_DEFAULTS,
  ViewRandom,
  viewSeed,
} from "@adco/augment";
import { type AugmentSpec, Pipeline } from "@adco/proto/data_worker";
import type { DatasetManifest } from "@adco/storage";
import { failedPrecondition, unimplemented } from "@adco/service-kit";
import type { AugmentPool } from "./augment-pool.js";

export interface ViewShape {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

export interface PreparedPipeline {
  /** Shape of each view, in order. */
  readonly views: readonly ViewShape[];
  /** Turns a record's bytes into pixels (decoding images); throws on a corrupt record. */
  decode(data: Uint8Array, label: string): Promise<Pixels> | Pixels;
  /** Writes view `view` of decoded pixels into out (height x width x channels bytes). */
  make(pixels: Pixels, sampleId: number, epoch: number, view: number, out: Uint8Array): Promise<void> | void;
  /**
   * Decode and every view of one record, off this thread (the augment pool), when the pipeline has
   * one; the same views as decode + make.
   */
  makeAll?(data: Uint8Array, label: string, sampleId: number, epoch: number): Promise<Uint8Array[]>;
}

export const SUPPORTED_PIPELINES = [
  Pipeline.PIPELINE_TWO_VIEW,
  Pipeline.PIPELINE_MULTI_CROP,
  Pipeline.PIPELINE_TWO_VIEW_GRAY_SMALL,
  Pipeline.PIPELINE_NONE,
];

/** RGB pixels of a record, whatever the dataset stores (gray is replicated to three channels). */
function rgbDecoder(
  manifest: DatasetManifest,
): (data: Uint8Array, label: string) => Promise<Pixels> | Pixels {
  const { height, width } = manifest;
  switch (manifest.encoding) {
    case "encoded":
      return (data, label) => decodeRgb(data, label);
    case "rgb8":
      return (data) => ({ data, height: height!, width: width! });
    case "gray8":
      return (data) => {
        const rgb = new Uint8Array(data.length * 3);
        for (let i = 0; i < data.length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i]!;
        return { data: rgb, height: height!, width: width! };
      };
  }
}

function rgbCrops(
  crops: readonly CropOptions[],
  manifest: DatasetManifest,
  seed: number,
  pool: AugmentPool | undefined,
): PreparedPipeline {
  const { encoding, height = 0, width = 0 } = manifest;
  return {
    views: crops.map((c) => ({ height: c.size, width: c.size, channels: 3 })),
    decode: rgbDecoder(manifest),
    make(pixels, sampleId, epoch, view, out) {
      augmentRgb(
        pixels,
        crops[view]!,
        MOCO_V2_COLOR,
        new ViewRandom(viewSeed(seed, epoch, sampleId, view)),
        out,
      );
    },
    ...(pool
      ? {
          makeAll: (data: Uint8Array, label: string, sampleId: number, epoch: number) =>
            pool.run({ data, label, encoding, height, width, crops, seed, epoch, sampleId }),
        }
      : {}),
  };
}

/** The pipeline a stream asked for; RGB views are made on `pool`'s threads when one is given. */
export function preparePipeline(
  spec: AugmentSpec,
  manifest: DatasetManifest,
  pool?: AugmentPool,
): PreparedPipeline {
  const { height, width } = manifest;
  const seed = spec.seed >>> 0;
  switch (spec.pipeline) {
    case Pipeline.PIPELINE_TWO_VIEW: {
      const crop = { size: spec.outputSize, scale: [0.2, 1.0] as const };
      return rgbCrops([crop, crop], manifest, seed, pool);
    }
    case Pipeline.PIPELINE_MULTI_CROP:
      return rgbCrops(
        spec.crops.flatMap((c) =>
          Array.from({ length: c.count }, () => ({ size: c.size, scale: [c.minScale, c.maxScale] as const })),
        ),
        manifest,
        seed,
        pool,
      );
    case Pipeline.PIPELINE_TWO_VIEW_GRAY_SMALL: {
      if (manifest.encoding !== "gray8" || !height || !width) {
        throw failedPrecondition(
          `PIPELINE_TWO_VIEW_GRAY_SMALL needs a gray8 dataset; ${manifest.name} is ${manifest.encoding}`,
        );
      }
      const options = { ...SMALL_GRAY_DEFAULTS, size: spec.outputSize };
      const shape = { height: spec.outputSize, width: spec.outputSize, channels: 1 };
      return {
        views: [shape, shape],
        decode: (data) => ({ data, height, width }),
        make(pixels, sampleId, epoch, view, out) {
          augmentSmallGrayBytes(
            pixels.data,
            height,
            width,
            new ViewRandom(viewSeed(seed, epoch, sampleId, view)),
            out,
            options,
          );
        },
      };
    }
    case Pipeline.PIPELINE_NONE: {
      if ((manifest.encoding !== "gray8" && manifest.encoding !== "rgb8") || !height || !width) {
        throw failedPrecondition(
          `PIPELINE_NONE needs raw pixels of one size; ${manifest.name} is ${manifest.encoding}`,
        );
      }
      return {
        views: [{ height, width, channels: manifest.encoding === "gray8" ? 1 : 3 }],
        decode: (data) => ({ data, height, width }),
        make(pixels, _id, _epoch, _view, out) {
          out.set(pixels.data);
        },
      };
    }
    default:
      throw unimplemented(`pipeline ${Pipeline[spec.pipeline]} is not served by this worker`);
  }
}
