"""Regenerate the README's example images with the `jaxstyle` command (docs/*.png), from the
public-domain paintings and CC0 photos in ../shared/images (credited in the README).

    python scripts/make_readme_images.py            # about 10 minutes on 2 CPU cores

It prints the wall time and final loss of each run; the optimizer comparison's numbers go into
the README caption.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle.images import load_image, save_image  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"


def jaxstyle(*args) -> tuple[float, str]:
    """Run the command; returns (wall seconds, its final loss line)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "jaxstyle", *map(str, args)], check=True,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    final = re.findall(r"final loss ([0-9.e+-]+)", result.stderr)
    command = " ".join(map(str, args))
    print(f"{seconds:6.1f} s  loss {final[-1] if final else '?'}  jaxstyle {command}", flush=True)
    return seconds, final[-1] if final else "?"


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
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    out = Path(args.out)
    cat, starry = IMAGES / "chelsea.jpg", IMAGES / "starry_night.jpg"
    shipwreck, hat = IMAGES / "shipwreck.jpg", IMAGES / "woman_with_hat.jpg"
    size = ["--max-dim", args.size]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The demo's settings (jaxstyle demo on a CPU: the fast preset).
        jaxstyle("stylize", cat, starry, "-o", tmp / "demo.png", *size, "--preset", "fast")
        # Optimizers at about equal CPU time (BENCHMARKS.md has the loss curves).
        adam = jaxstyle("stylize", cat, starry, "-o", tmp / "adam.png", *size, "--steps", 300)
        lbfgs = jaxstyle("stylize", cat, starry, "-o", tmp / "lbfgs.png", *size, "--optimizer",
                         "lbfgs", "--steps", 100)
        print(f"optimizers: Adam 300 steps {adam[0]:.0f} s loss {adam[1]}; "
              f"L-BFGS 100 iterations {lbfgs[0]:.0f} s loss {lbfgs[1]}")
        for mode in ("luminance", "histogram"):
            jaxstyle("stylize", cat, hat, "-o", tmp / f"{mode}.png", "--preserve-color", mode,
                     *size, "--optimizer", "lbfgs", "--steps", 100)
        jaxstyle("stylize", cat, hat, "-o", tmp / "hat.png", *size, "--optimizer", "lbfgs",
                 "--steps", 100)
        content = load_image(cat, args.size)
        mask = np.zeros(content.shape[:2], np.uint8)
        mask[:, content.shape[1] // 2:] = 255  # left: The Starry Night, right: The Shipwreck
        Image.fromarray(mask).save(tmp / "mask.png")
        jaxstyle("stylize", cat, starry, shipwreck, "-o", tmp / "regional.png", "--mask",
                 tmp / "mask.png", *size, "--optimizer", "lbfgs", "--steps", 100)
        save_image(tmp / "content.png", content)
        height = content.shape[0]
        save_image(out / "demo.png", panel([cat, starry, tmp / "demo.png"], height))
        save_image(out / "optimizers.png", panel([tmp / "adam.png", tmp / "lbfgs.png"], height))
        save_image(out / "color.png", panel([hat, tmp / "hat.png", tmp / "luminance.png",
                                             tmp / "histogram.png"], height))
        save_image(out / "regional.png", panel([starry, shipwreck, tmp / "mask.png",
                                                tmp / "regional.png"], height))


if __name__ == "__main__":
    main()
