#!/usr/bin/env python3
"""Writes the torchvision fixtures that libs/augment/src/torchvision.test.ts compares our RGB ops with.
A test fixture generator, never part of the product. Needs Debian's python3-torchvision (0.14) and
python3-pil; run it with the system interpreter:

  /usr/bin/python3 tools/reference/augment_fixtures.py [--out libs/augment/fixtures/torchvision]
  npx prettier --write libs/augment/fixtures/torchvision/cases.json

It writes, all small:
  source.png      a 72x60 synthetic photo (smooth colour fields, noise, saturated discs, edges)
  base.png        torchvision's RandomResizedCrop output for a fixed box, 40x40: the input of every
                  colour, blur and flip case, so those are tested apart from the resize
  <case>.png      torchvision's output for each case below, on fixed parameters
  cases.json      the cases (op, parameters, file) and the distributions of torchvision's random
                  parameters over many draws (RandomResizedCrop's area fraction and aspect ratio, as
                  quantiles, on a 300x256 image), which the test compares our draws with
"""

import argparse
import json
import os

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image, ImageFilter
from torchvision import transforms

SIZE = 40


def synthetic_photo(height=60, width=72):
    rng = np.random.default_rng(16)
    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3))
    img[..., 0] = 128 + 100 * np.sin(x / 9.0)
    img[..., 1] = 128 + 90 * np.cos(y / 7.0 + x / 13.0)
    img[..., 2] = 128 + 80 * np.sin((x + y) / 11.0)
    img += rng.normal(0, 12, img.shape)
    for cx, cy, colour in [(15, 15, (230, 30, 30)), (52, 22, (30, 200, 40)), (30, 46, (40, 60, 220)), (60, 50, (240, 220, 20))]:
        img[(x - cx) ** 2 + (y - cy) ** 2 < 70] = colour
    img[:, 38:40] = 250  # a sharp bright edge for the blur
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def jitter(img, order, b, c, s, h):
    """ColorJitter.forward with its random draws fixed (the same loop, torchvision 0.14)."""
    for fn_id in order:
        if fn_id == 0:
            img = F.adjust_brightness(img, b)
        elif fn_id == 1:
            img = F.adjust_contrast(img, c)
        elif fn_id == 2:
            img = F.adjust_saturation(img, s)
        elif fn_id == 3:
            img = F.adjust_hue(img, h)
    return img


def quantiles(values):
    return [float(np.quantile(values, q)) for q in np.linspace(0.05, 0.95, 19)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="libs/augment/fixtures/torchvision")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    source = synthetic_photo()
    source.save(os.path.join(args.out, "source.png"))
    base_box = (6, 8, 48, 56)  # top, left, height, width
    base = F.resized_crop(source, *base_box, [SIZE, SIZE])
    base.save(os.path.join(args.out, "base.png"))
    cases = []

    def case(name, op, params, image, on="base"):
        file = f"{name}.png"
        image.save(os.path.join(args.out, file))
        cases.append({"name": name, "op": op, "params": params, "input": on, "file": file})

    for name, box in [("crop-down", (0, 0, 60, 72)), ("crop-up", (20, 15, 24, 30)), ("crop-wide", (8, 4, 30, 66))]:
        case(name, "resizedCrop", {"box": dict(zip(["top", "left", "h", "w"], box))}, F.resized_crop(source, *box, [SIZE, SIZE]), on="source")
    for f in [0.6, 1.37]:
        case(f"brightness-{f}", "brightness", {"factor": f}, F.adjust_brightness(base, f))
    for f in [0.65, 1.3]:
        case(f"contrast-{f}", "contrast", {"factor": f}, F.adjust_contrast(base, f))
    for f in [0.62, 1.4]:
        case(f"saturation-{f}", "saturation", {"factor": f}, F.adjust_saturation(base, f))
    for f in [0.08, -0.07, 0.02]:
        case(f"hue-{f}", "hue", {"factor": f}, F.adjust_hue(base, f))
    case("grayscale", "grayscale", {}, F.rgb_to_grayscale(base, num_output_channels=3))
    for sigma in [0.1, 0.5, 1.0, 2.0]:
        case(f"blur-{sigma}", "blur", {"sigma": sigma}, base.filter(ImageFilter.GaussianBlur(radius=sigma)))
    case("flip", "flip", {}, F.hflip(base))
    for i, (order, b, c, s, h) in enumerate(
        [([3, 1, 0, 2], 1.3, 0.7, 1.2, 0.05), ([1, 3, 2, 0], 0.7, 1.35, 0.65, -0.09), ([0, 2, 1, 3], 1.1, 1.25, 1.35, 0.03)]
    ):
        params = {"order": order, "brightness": b, "contrast": c, "saturation": s, "hue": h}
        case(f"jitter-{i}", "jitter", params, jitter(base, order, b, c, s, h))

    # The distributions of torchvision's own draws.
    torch.manual_seed(0)
    image = Image.new("RGB", (256, 300))
    scale, ratio = (0.2, 1.0), (3 / 4, 4 / 3)
    areas, aspects = [], []
    for _ in range(20000):
        top, left, h, w = transforms.RandomResizedCrop.get_params(image, scale, ratio)
        areas.append(h * w / (300 * 256))
        aspects.append(w / h)
    distributions = {
        "resizedCrop": {"height": 300, "width": 256, "scale": scale, "draws": 20000, "quantiles": [0.05 * (i + 1) for i in range(19)],
                        "areaFraction": quantiles(areas), "aspect": quantiles(aspects)},
    }
    meta = {"torchvision": torchvision.__version__, "pil": Image.__version__, "size": SIZE, "baseBox": dict(zip(["top", "left", "h", "w"], base_box))}
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump({**meta, "cases": cases, "distributions": distributions}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
