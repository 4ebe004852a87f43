// A thread of the augmentation pool (augment-pool.ts): decodes a record and makes its RGB views.
// The views are pure functions of (seed, epoch, sample id, view), so which thread makes them does
// not change them.
import { parentPort } from "node:worker_threads";
import { augmentRgb, decodeRgb, MOCO_V2_COLOR, type Pixels, ViewRandom, viewSeed } from "@adco/augment";
import type { AugmentTask, AugmentReply } from "./augment-pool.js";

function pixelsOf(task: AugmentTask): Promise<Pixels> | Pixels {
  const { data, encoding, height, width } = task;
  switch (encoding) {
    case "encoded":
      return decodeRgb(data, task.label);
    case "rgb8":
      return { data, height, width };
    case "gray8": {
      const rgb = new Uint8Array(data.length * 3);
      for (let i = 0; i < data.length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i]!;
      return { data: rgb, height, width };
    }
  }
}

parentPort!.on("message", async (task: AugmentTask) => {
  let reply: AugmentReply;
  try {
    const pixels = await pixelsOf(task);
    const views = task.crops.map((crop, view) =>
      augmentRgb(
        pixels,
        crop,
        MOCO_V2_COLOR,
        new ViewRandom(viewSeed(task.seed, task.epoch, task.sampleId, view)),
      ),
    );
    reply = { id: task.id, views };
    parentPort!.postMessage(
      reply,
      views.map((v) => v.buffer as ArrayBuffer),
    );
  } catch (e) {
    reply = { id: task.id, error: (e as Error).message };
    parentPort!.postMessage(reply);
  }
});
