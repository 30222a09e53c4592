"""Built-in demo inputs, drawn by code (no image files in git, nothing downloaded)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _vertical_gradient(width: int, height: int, top, bottom) -> Image.Image:
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    rows = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
    return Image.fromarray(np.repeat(rows, width, axis=1).astype(np.uint8), "RGB")


def demo_content(width: int = 384, height: int = 256) -> np.ndarray:
    """A landscape (sky, sun, hills, lake, house, trees): (height, width, 3) float32 in [0, 1]."""
    s = width / 384
    image = _vertical_gradient(width, height, (90, 150, 225), (205, 225, 245))
    draw = ImageDraw.Draw(image)
    draw.ellipse([290 * s, 25 * s, 340 * s, 75 * s], fill=(255, 225, 120))
    draw.polygon([(0, 170 * s), (90 * s, 95 * s), (170 * s, 160 * s), (250 * s, 85 * s),
                  (384 * s, 165 * s), (384 * s, 256 * s), (0, 256 * s)], fill=(80, 110, 150))
    draw.polygon([(0, 200 * s), (120 * s, 150 * s), (260 * s, 190 * s), (384 * s, 160 * s),
                  (384 * s, 256 * s), (0, 256 * s)], fill=(70, 140, 70))
    draw.ellipse([20 * s, 205 * s, 200 * s, 250 * s], fill=(60, 120, 190))
    draw.rectangle([230 * s, 165 * s, 300 * s, 215 * s], fill=(230, 210, 180))
    draw.polygon([(222 * s, 167 * s), (265 * s, 130 * s), (308 * s, 167 * s)], fill=(170, 50, 40))
    draw.rectangle([258 * s, 188 * s, 274 * s, 215 * s], fill=(100, 60, 30))
    draw.rectangle([238 * s, 175 * s, 252 * s, 188 * s], fill=(120, 170, 220))
    for x in (320, 345, 365):
        draw.rectangle([(x - 3) * s, 195 * s, (x + 3) * s, 225 * s], fill=(90, 60, 30))
        draw.ellipse([(x - 14) * s, 160 * s, (x + 14) * s, 205 * s], fill=(40, 100, 45))
    return np.asarray(image.filter(ImageFilter.SMOOTH), np.float32) / 255.0


def demo_style(width: int = 256, height: int = 256, seed: int = 7) -> np.ndarray:
    """Bold swirling brush strokes in a starry-night palette: (height, width, 3) float32."""
    rng = np.random.default_rng(seed)
    palette = np.array([(25, 45, 110), (40, 80, 160), (70, 130, 200), (240, 200, 60),
                        (250, 230, 140), (20, 25, 40), (200, 90, 40), (110, 170, 210)])
    image = _vertical_gradient(width, height, (30, 50, 120), (20, 30, 60))
    draw = ImageDraw.Draw(image)
    scale = min(width, height) / 256
    for _ in range(700):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(8, 60) * scale
        start = rng.uniform(0, 2 * np.pi)
        sweep = rng.uniform(0.6, 2.2)
        angles = np.linspace(start, start + sweep, 12)
        points = [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]
        color = tuple(int(c) for c in np.clip(palette[rng.integers(len(palette))]
                                              + rng.normal(0, 18, 3), 0, 255))
        draw.line(points, fill=color, width=max(2, int(rng.uniform(3, 9) * scale)), joint="curve")
    for _ in range(25):  # stars
        x, y, r = rng.uniform(0, width), rng.uniform(0, height * 0.6), rng.uniform(4, 10) * scale
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(250, 235, 120))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)), np.float32) / 255.0
