// The augmentation a stream asked for, applied to one decoded record. Every random choice comes
// from (run seed, epoch, sample id, view), so any worker makes the same views of a sample.
import { augmentSmallGrayBytes, SMALL_GRAY_DEFAULTS, ViewRandom, viewSeed } from "@adco/augment";
import { type AugmentSpec, Pipeline } from "@adco/proto/data_worker";
import type { DatasetManifest } from "@adco/storage";
import { failedPrecondition, unimplemented } from "@adco/service-kit";

export interface ViewShape {
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

export interface PreparedPipeline {
  /** Shape of each view, in order. */
  readonly views: readonly ViewShape[];
  /** Writes view `view` of a record into out (height x width x channels bytes). */
  make(data: Uint8Array, sampleId: number, epoch: number, view: number, out: Uint8Array): void;
}

export const SUPPORTED_PIPELINES = [Pipeline.PIPELINE_TWO_VIEW_GRAY_SMALL, Pipeline.PIPELINE_NONE];

export function preparePipeline(spec: AugmentSpec, manifest: DatasetManifest): PreparedPipeline {
  const { height, width } = manifest;
  const seed = Number(spec.seed % 2 ** 32);
  switch (spec.pipeline) {
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
        make(data, sampleId, epoch, view, out) {
          augmentSmallGrayBytes(
            data,
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
        throw failedPrecondition(`PIPELINE_NONE needs raw pixels; ${manifest.name} is ${manifest.encoding}`);
      }
      return {
        views: [{ height, width, channels: manifest.encoding === "gray8" ? 1 : 3 }],
        make(data, _id, _epoch, _view, out) {
          out.set(data);
        },
      };
    }
    default:
      throw unimplemented(
        `pipeline ${Pipeline[spec.pipeline]} is not built yet; this worker serves ${SUPPORTED_PIPELINES.map((p) => Pipeline[p]).join(", ")}`,
      );
  }
}
