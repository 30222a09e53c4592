"""Train the multi-style model shipped in jaxstyle/models/ (the recipe, as run).

    python scripts/train_shipped_model.py [--steps 20000] [--width 0.25] [--size 128] \
        [--continue] [-- --time-limit 60m]

Styles: The Starry Night, The Shipwreck and Woman with a Hat from ../shared/images (public
domain). Photos: `scripts/training_photos.py` (the Python wheels' samples and Debian's
wallpaper photographs, 50 in all; its held-out photos, coffee and the astronaut are never
trained on). The recipe, chosen by the A/B in BENCHMARKS.md ("Keeping the photo"):
the identity start (the untrained network returns the photo), the shallow content anchor
at its shipped weight, the layout term (block-averaged luminance against the photo's: it
holds the photo while the style grows) and the stability term (steadier video, and it
penalises an output that depends on position, which is what a grid is). The shipped file's
first 890 steps ran without the layout term (docs/models.md).

`--continue` starts from the model file at --out (`jaxstyle train --init`): several runs
with a --time-limit add up to one long one, each committed in between; the header's
`initialised_from` and the models README keep the history. On a GPU use --size 256
--batch 8 --width 0.5 (Johnson et al.'s setting).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images"
STYLES = ("starry_night.jpg", "shipwreck.jpg", "woman_with_hat.jpg")
RECIPE = ["--identity-start", "--content-layer-weights", "0.004,1", "--stability-weight", "1e9",
          "--layout-weight", "1e10"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument("--style-size", type=int, default=256)
    parser.add_argument("--photos", default="/tmp/jaxstyle-training-photos")
    parser.add_argument("--out", default=str(ROOT / "jaxstyle" / "models" / "paintings.jxs"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--continue", dest="resume_model", action="store_true",
                        help="start from the model at --out instead of from scratch")
    parser.add_argument("extra", nargs="*", help="more `jaxstyle train` options")
    args = parser.parse_args()
    if not (Path(args.photos) / "SOURCES.md").exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "training_photos.py"),
                        args.photos], check=True)
    init = []
    if args.resume_model:
        # Outside the package: --out is overwritten, and a file in jaxstyle/models/ ships.
        start = Path(args.photos).with_name("paintings-start.jxs")
        start.write_bytes(Path(args.out).read_bytes())
        init = ["--init", str(start)]
    command = [sys.executable, "-m", "jaxstyle", "train", *(str(IMAGES / s) for s in STYLES),
               "--data", args.photos, "-o", args.out, "--steps", str(args.steps),
               "--width", str(args.width), "--size", str(args.size), "--batch", str(args.batch),
               "--style-size", str(args.style_size), "--workers", str(args.workers),
               "--checkpoint-every", "250", "--preview-every", "250",
               "--preview", str(IMAGES / "coffee.jpg"), *RECIPE, *init, *args.extra]
    print(" ".join(command), flush=True)
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
