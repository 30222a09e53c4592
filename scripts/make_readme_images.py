"""Regenerate the README's example images with the `jaxstyle` command (docs/*.png).

    python scripts/make_readme_images.py --size 192 --steps 200
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle.demo import demo_content, demo_style  # noqa: E402
from jaxstyle.images import load_image, save_image  # noqa: E402


def jaxstyle(*args) -> None:
    subprocess.run([sys.executable, "-m", "jaxstyle", *map(str, args), "--quiet"], check=True)


def panel(paths, height: int) -> np.ndarray:
    """Images side by side at one height, with white gaps."""
    tiles = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        width = round(image.width * height / image.height)
        tiles.append(np.asarray(image.resize((width, height), Image.LANCZOS)))
        tiles.append(np.full((height, 6, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1).astype(np.float32) / 255


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_image(tmp / "content.png", demo_content())
        save_image(tmp / "style.png", demo_style())
        # A second, very different style: warm diagonal bands.
        y, x = np.mgrid[0:256, 0:256] / 256
        bands = 0.5 + 0.5 * np.sin(30 * (x + y))[..., None] * np.array([0.9, 0.5, -0.6])
        save_image(tmp / "bands.png", np.clip(bands, 0, 1))
        common = ["--max-dim", args.size, "--steps", args.steps]
        jaxstyle("stylize", tmp / "content.png", tmp / "style.png", "-o", tmp / "plain.png",
                 *common)
        for mode in ("luminance", "histogram"):
            jaxstyle("stylize", tmp / "content.png", tmp / "style.png", "-o", tmp / f"{mode}.png",
                     "--preserve-color", mode, *common)
        mask = np.zeros((256, 384), np.uint8)
        mask[:, 192:] = 255  # left: first style, right: second
        Image.fromarray(mask).save(tmp / "mask.png")
        jaxstyle("stylize", tmp / "content.png", tmp / "style.png", tmp / "bands.png", "-o",
                 tmp / "regional.png", "--mask", tmp / "mask.png", *common)
        height = load_image(tmp / "plain.png", None).shape[0]
        save_image(out / "demo.png", panel([tmp / "content.png", tmp / "style.png",
                                            tmp / "plain.png"], height))
        save_image(out / "color.png", panel([tmp / "content.png", tmp / "plain.png",
                                             tmp / "luminance.png", tmp / "histogram.png"],
                                            height))
        save_image(out / "regional.png", panel([tmp / "style.png", tmp / "bands.png",
                                                tmp / "mask.png", tmp / "regional.png"], height))


if __name__ == "__main__":
    main()
