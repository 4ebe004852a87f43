import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { augmentRgb, decodeRgb, MOCO_V2_COLOR, MOCO_V2_CROP, ViewRandom, viewSeed } from "@adco/augment";
import { AugmentPool } from "./augment-pool.js";

async function jpeg(width: number, height: number, shade: number): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7 + shade * (i >> 8)) % 251;
  return new Uint8Array(
    await sharp(raw, { raw: { width, height, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
}

describe("augment pool", () => {
  it("makes on its threads the very views the calling thread makes, and names a record it cannot decode", async () => {
    const pool = new AugmentPool(2);
    try {
      const crops = [MOCO_V2_CROP, { size: 96, scale: [0.086, 0.429] as const }];
      const records = await Promise.all([0, 1, 2, 3, 4].map((i) => jpeg(200 + 10 * i, 180, i)));
      const fromPool = await Promise.all(
        records.map((data, i) =>
          pool.run({
            data,
            label: `sample ${i}`,
            encoding: "encoded",
            height: 0,
            width: 0,
            crops,
            seed: 7,
            epoch: 3,
            sampleId: 100 + i,
          }),
        ),
      );
      for (const [i, data] of records.entries()) {
        const pixels = await decodeRgb(data);
        const here = crops.map((crop, v) =>
          augmentRgb(pixels, crop, MOCO_V2_COLOR, new ViewRandom(viewSeed(7, 3, 100 + i, v))),
        );
        assert.deepEqual(fromPool[i], here, `record ${i}`);
      }
      assert.notDeepEqual(fromPool[0]![0], fromPool[1]![0]);
      await assert.rejects(
        pool.run({
          data: new Uint8Array(300).fill(1),
          label: "sample 9",
          encoding: "encoded",
          height: 0,
          width: 0,
          crops,
          seed: 7,
          epoch: 0,
          sampleId: 9,
        }),
        /^Error: sample 9: cannot decode/,
      );
    } finally {
      await pool.close();
    }
    await assert.rejects(pool.run({} as never), /closed/);
  });
});
