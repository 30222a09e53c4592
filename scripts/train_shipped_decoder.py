"""Train the arbitrary-style decoder shipped in jaxstyle/models/ (the recipe, as run).

    python scripts/train_shipped_decoder.py [--steps 3000] [--width 0.5] [--size 128]

Photos: `scripts/training_photos.py` (scikit-image / scikit-learn samples; coffee and the
astronaut are held out for scoring). Style images: `scripts/style_textures.py` (generated
painting-like textures) plus the same photos; none of the three paintings in ../shared/images
is used, so every painting the README and BENCHMARKS show was never seen in training. On a
GPU use --size 256 --batch 8 --steps 40000 --width 1 here, or Huang & Belongie's setting with
real folders (`jaxstyle train-decoder --data COCO --style-data WIKIART --size 256 --batch 8
--steps 160000 --width 1 --lr 1e-4`); the CPU settings are what two cores allow in about an
hour, and the README and BENCHMARKS say so. Extra `jaxstyle train-decoder` options go after
`--` (e.g. `-- --resume`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--photos", default="/tmp/jaxstyle-training-photos")
    parser.add_argument("--styles", default="/tmp/jaxstyle-style-data")
    parser.add_argument("--out", default=str(ROOT / "jaxstyle" / "models" / "any.jxs"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="more `jaxstyle train-decoder` options")
    args = parser.parse_args()
    run = lambda *command: subprocess.run([sys.executable, *command], check=True)  # noqa: E731
    run(str(ROOT / "scripts" / "training_photos.py"), args.photos)
    styles = Path(args.styles)
    textures = styles.with_name(styles.name + "-textures")
    run(str(ROOT / "scripts" / "style_textures.py"), str(textures), "--count", "96")
    styles.mkdir(parents=True, exist_ok=True)
    for source in [*Path(textures).iterdir(), *Path(args.photos).iterdir()]:
        if not (styles / source.name).exists():
            shutil.copy(source, styles / source.name)
    command = [sys.executable, "-m", "jaxstyle", "train-decoder", "--data", args.photos,
               "--style-data", str(styles), "-o", args.out, "--steps", str(args.steps),
               "--width", str(args.width), "--size", str(args.size), "--batch", str(args.batch),
               "--lr", str(args.lr), "--workers", str(args.workers), "--checkpoint-every", "100",
               "--preview-every", "100", *args.extra]
    print(" ".join(command), flush=True)
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
