"""Engine 2's recipe A/B: equal training steps for every arm, then one side-by-side score.
It trains each arm of ARMS (identity or random start, the block3_conv3 anchor at 40 or 200)
for the same steps on the same photos with `jaxstyle train`, one after another (run it alone
on the machine), then scores them together on held-out photos with `jaxstyle bench
eval-feedforward` (seed loss, layout, grid: the table on stdout, scores.json and ab.png in
--out). The arms differ only in flags that cost nothing per step (the identity start adds one
logit of the input; block3_conv3 is computed on the way to block4_conv1 anyway), so equal
steps are equal CPU time, as each arm's log of per-step times shows. BENCHMARKS.md's "Engine
2: the A/B, at equal CPU time" (under "Keeping the photo") is its table, made with `python
scripts/training_photos.py /tmp/photos --held-out /tmp/heldout` and `python
scripts/ab_feedforward.py --data /tmp/photos --out /tmp/ab --steps 300 --photos coffee.jpg
astronaut.jpg /tmp/heldout/*.jpg`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from jaxstyle.bench.fixtures import image_path

# name -> extra `jaxstyle train` flags. The anchor: block3_conv3 beside the seed's
# block5_conv2, at the shipped effective weight (about 40) or 5x it (about 196), where it
# matches the style term of Gatys-100's output on the held-out photos (BENCHMARKS.md).
ARMS = {
    "random-anchor40": ["--no-identity-start", "--content-layer-weights", "0.004,1"],
    "identity-anchor40": ["--identity-start", "--content-layer-weights", "0.004,1"],
    "identity-anchor200": ["--identity-start", "--content-layer-weights", "0.02,1"],
    "random-anchor200": ["--no-identity-start", "--content-layer-weights", "0.02,1"],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ab"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--style", default="starry_night.jpg")
    parser.add_argument("--width", default="0.25")
    parser.add_argument("--size", default="128")
    parser.add_argument("--batch", default="2")
    parser.add_argument("--arms", nargs="+", default=list(ARMS))
    parser.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = []
    for arm in args.arms:
        model = args.out / f"{arm}.jxs"
        if not model.exists():
            command = [sys.executable, "-m", "jaxstyle", "train", str(image_path(args.style)),
                       "--data", args.data, "-o", str(model), "--steps", str(args.steps),
                       "--width", args.width, "--size", args.size, "--batch", args.batch,
                       "--style-size", "256", "--workers", "1", "--checkpoint-every", "0",
                       "--preview-every", "0", "-q", *ARMS[arm]]
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True)
        models.append(str(model))
        log = [json.loads(line) for line in model.with_suffix(".log.jsonl").read_text()
               .splitlines() if line.startswith("{") and '"step"' in line]
        rates = sorted(r["images_per_s"] for r in log if "images_per_s" in r)
        if rates:
            print(f"{arm}: median {rates[len(rates) // 2]:.2f} images/s", flush=True)
    subprocess.run([sys.executable, "-m", "jaxstyle", "bench", "eval-feedforward", *models,
                    "--photos", *args.photos, "--json", str(args.out / "scores.json"),
                    "--out", str(args.out / "ab.png")], check=True)


if __name__ == "__main__":
    main()
