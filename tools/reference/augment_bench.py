#!/usr/bin/env python3
"""A benchmark reference, never part of the product: MoCo v2's augmentation as torchvision + PIL
run it, on the JPEG files that `npm run -s bench:data` wrote, one thread, so the bench can print our
views per core next to torchvision's on the same machine, in the same run.

  two-view    decode (PIL open + convert RGB), then two views of RandomResizedCrop(224, 0.2-1),
              ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, RandomGrayscale p 0.2, PIL GaussianBlur
              (sigma 0.1-2) p 0.5, flip; each view made a uint8 array (what our worker sends)
  multi-crop  the same with 2 views at 224 (scale 0.2-1) and 6 at 96 (scale 0.086-0.429)
  probe       whether torchvision imports, as JSON; exits 0 either way

Prints one JSON line: sources/s and views/s per CPU second (time.process_time), and ms per source.
  /usr/bin/python3 tools/reference/augment_bench.py two-view --dir DIR --seconds 10
"""

import argparse
import json
import os
import random
import sys
import time


def probe():
    try:
        import torchvision  # noqa: F401

        print(json.dumps({"torchvision": torchvision.__version__}))
    except Exception as e:  # any failure to import means no reference
        print(json.dumps({"torchvision": None, "error": str(e)}))


class PilGaussianBlur:
    """MoCo v2's moco.loader.GaussianBlur: PIL's GaussianBlur with sigma uniform in the range."""

    def __init__(self, sigma):
        self.sigma = sigma

    def __call__(self, x):
        from PIL import ImageFilter

        return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.sigma[0], self.sigma[1])))


def moco_v2(size, scale):
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.RandomResizedCrop(size, scale=scale),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.RandomApply([PilGaussianBlur([0.1, 2.0])], p=0.5),
            transforms.RandomHorizontalFlip(),
        ]
    )


def run(mode, directory, seconds):
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    random.seed(0)
    torch.manual_seed(0)
    files = sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".jpg"))
    if mode == "two-view":
        views = [moco_v2(224, (0.2, 1.0))] * 2
    else:
        views = [moco_v2(224, (0.2, 1.0))] * 2 + [moco_v2(96, (0.086, 0.429))] * 6
    decode_s = augment_s = 0.0
    sources = 0
    started = time.process_time()
    while time.process_time() - started < seconds:
        path = files[sources % len(files)]
        t = time.process_time()
        with Image.open(path) as image:
            pixels = image.convert("RGB")
        decode_s += time.process_time() - t
        t = time.process_time()
        for view in views:
            np.asarray(view(pixels))
        augment_s += time.process_time() - t
        sources += 1
    total = decode_s + augment_s
    print(
        json.dumps(
            {
                "mode": mode,
                "sources": sources,
                "sourcesPerCpuSecond": sources / total,
                "viewsPerCpuSecond": sources * len(views) / total,
                "decodeMsPerSource": 1000 * decode_s / sources,
                "augmentMsPerSource": 1000 * augment_s / sources,
            }
        )
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["two-view", "multi-crop", "probe"])
    parser.add_argument("--dir")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    if args.mode == "probe":
        probe()
        return
    if not args.dir:
        sys.exit("--dir is required")
    run(args.mode, args.dir, args.seconds)


if __name__ == "__main__":
    main()
