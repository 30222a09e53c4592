"""Train the multi-style model shipped in jaxstyle/models/ (the recipe, as run).

    python scripts/train_shipped_model.py [--steps 1500] [--width 0.25] [--size 128]

Styles: The Starry Night, The Shipwreck and Woman with a Hat from ../shared/images (public
domain). Photos: `scripts/training_photos.py` (scikit-image / scikit-learn samples; coffee and
the astronaut are held out for scoring). On a GPU, use --size 256 --batch 8 --steps 40000
--width 0.5 (Johnson et al.'s setting); the CPU settings below are what two cores allow in
about half an hour, and the README and BENCHMARKS say so.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images"
STYLES = ("starry_night.jpg", "shipwreck.jpg", "woman_with_hat.jpg")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--style-size", type=int, default=256)
    parser.add_argument("--photos", default="/tmp/jaxstyle-training-photos")
    parser.add_argument("--out", default=str(ROOT / "jaxstyle" / "models" / "paintings.jxs"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="more `jaxstyle train` options")
    args = parser.parse_args()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "training_photos.py"), args.photos],
                   check=True)
    command = [sys.executable, "-m", "jaxstyle", "train", *(str(IMAGES / s) for s in STYLES),
               "--data", args.photos, "-o", args.out, "--steps", str(args.steps),
               "--width", str(args.width), "--size", str(args.size), "--batch", str(args.batch),
               "--style-size", str(args.style_size), "--workers", str(args.workers),
               "--checkpoint-every", "100", "--preview-every", "100",
               "--preview", str(IMAGES / "coffee.jpg"), *args.extra]
    print(" ".join(command), flush=True)
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
