"""Generate painting-like style images for training the arbitrary-style decoder (engine 3).

    python scripts/style_textures.py OUT_DIR [--count 96] [--size 320] [--seed 0]

Huang & Belongie trained on WikiArt; these machines have three paintings, and all three are
held out to judge the decoder on paintings it never saw. So the style set is made here:
brush strokes that follow a swirling flow field, overlapping blotches, dots (pointillism),
a mosaic with dark leading, and warped colour bands, each in a random palette. They cover
what the decoder must learn to draw (strokes, edges, flat colour, texture at several scales),
not any painter's look. Numpy and Pillow only; the same seed gives the same images.
"""

from __future__ import annotations

import argparse
import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def palette(rng: np.random.Generator, count: int = 6) -> list[tuple[int, int, int]]:
    """Colours around one or two random hues, with varied saturation and value."""
    hues = rng.uniform(0, 1, size=2)
    colours = []
    for _ in range(count):
        hue = (hues[rng.integers(2)] + rng.normal(0, 0.06)) % 1.0
        rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.2, 1.0), rng.uniform(0.15, 1.0))
        colours.append(tuple(int(255 * c) for c in rgb))
    return colours


def flow_angle(x: float, y: float, params: np.ndarray) -> float:
    """A smooth swirling direction field (a few sine waves), radians."""
    a, b, c, d, e = params
    return a * np.sin(b * x + c) + d * np.cos(e * y - c) + a * np.sin(0.5 * (x + y))


def strokes(rng, size):
    colours = palette(rng)
    image = Image.new("RGB", (size, size), colours[0])
    draw = ImageDraw.Draw(image)
    params = rng.uniform([1.0, 0.005, 0, 1.0, 0.005], [3.0, 0.03, 6.28, 3.0, 0.03])
    width = int(rng.integers(3, 12))
    length = int(rng.integers(8, 30))
    for _ in range(int(6 * size * size / (width * length))):
        x, y = rng.uniform(0, size, 2)
        points = [(x, y)]
        for _ in range(4):
            angle = flow_angle(x, y, params)
            x, y = x + length / 4 * np.cos(angle), y + length / 4 * np.sin(angle)
            points.append((x, y))
        draw.line(points, fill=colours[rng.integers(len(colours))], width=width, joint="curve")
    return image


def blotches(rng, size):
    colours = palette(rng)
    image = Image.new("RGB", (size, size), colours[0])
    draw = ImageDraw.Draw(image)
    scale = rng.uniform(0.03, 0.2) * size
    for _ in range(int(rng.integers(60, 400))):
        x, y = rng.uniform(0, size, 2)
        rx, ry = rng.uniform(0.3, 1.0, 2) * scale
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=colours[rng.integers(len(colours))])
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2)))


def dots(rng, size):
    colours = palette(rng, 8)
    image = Image.new("RGB", (size, size), colours[0])
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(1.5, 5)
    for _ in range(int(size * size / (radius * radius * 2))):
        x, y = rng.uniform(0, size, 2)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius],
                     fill=colours[rng.integers(len(colours))])
    return image


def mosaic(rng, size):
    colours = palette(rng, 8)
    count = int(rng.integers(20, 200))
    seeds = rng.uniform(0, size, (count, 2))
    ys, xs = np.mgrid[0:size, 0:size]
    distance = (xs[..., None] - seeds[:, 0]) ** 2 + (ys[..., None] - seeds[:, 1]) ** 2
    nearest = np.argsort(distance, axis=-1)[..., :2]
    first = np.take_along_axis(distance, nearest[..., :1], -1)[..., 0]
    second = np.take_along_axis(distance, nearest[..., 1:], -1)[..., 0]
    table = np.array([colours[i] for i in rng.integers(len(colours), size=count)], np.uint8)
    pixels = table[nearest[..., 0]]
    edge = (np.sqrt(second) - np.sqrt(first)) < rng.uniform(1.5, 4)
    pixels[edge] = np.array(palette(rng, 1)[0]) // 4  # dark leading between the pieces
    return Image.fromarray(pixels)


def bands(rng, size):
    colours = np.array(palette(rng, 6), np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    warp = sum(rng.uniform(0.02, 0.15) * np.sin(2 * np.pi * (rng.uniform(1, 6) * xs
                                                               + rng.uniform(1, 6) * ys)
                                                + rng.uniform(0, 6.28)) for _ in range(3))
    phase = (xs * rng.uniform(-4, 4) + ys * rng.uniform(-4, 4) + warp) * rng.uniform(2, 6)
    index = phase - np.floor(phase)
    position = index * (len(colours) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(colours) - 1)
    t = (position - low)[..., None]
    pixels = (1 - t) * colours[low] + t * colours[high]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


KINDS = (strokes, strokes, blotches, dots, mosaic, bands)  # strokes most: paintings have them


def make_texture(index: int, size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng([seed, index])
    image = KINDS[index % len(KINDS)](rng, size)
    if rng.uniform() < 0.5:  # a second kind on top, half transparent, for mixed textures
        other = KINDS[rng.integers(len(KINDS))](rng, size)
        image = Image.blend(image, other, rng.uniform(0.2, 0.5))
    return image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=96)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        path = args.out / f"texture_{i:03d}.png"
        if not path.exists():
            make_texture(i, args.size, args.seed).save(path)
    print(f"{args.count} style images in {args.out}")


if __name__ == "__main__":
    main()
