"""Single- vs multi-scale at one size for about the same wall time (BENCHMARKS.md).

Prints wall time and the full-size seed loss of each result, and writes the images side by
side to --out.

    python scripts/bench_multiscale.py --size 512 --steps 200 --coarse-steps 300 --fine-steps 130
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import full_size_loss, inputs, params
from jaxstyle import StyleConfig, save_image, stylize


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200, help="single-scale steps")
    parser.add_argument("--coarse-steps", type=int, default=300)
    parser.add_argument("--fine-steps", type=int, default=130)
    parser.add_argument("--content")
    parser.add_argument("--style")
    parser.add_argument("--out", default="multiscale.png")
    args = parser.parse_args()
    p = params()
    content, style = inputs(args.size, args.content, args.style)
    runs = {
        "single": StyleConfig(steps=args.steps),
        "2 scales": StyleConfig(scales=2, scale_steps=(args.coarse_steps, args.fine_steps)),
        "2 scales, carried Adam": StyleConfig(scales=2, carry_optimizer=True,
                                              scale_steps=(args.coarse_steps, args.fine_steps)),
    }
    print(f"{content.shape[1]}x{content.shape[0]} px")
    print(f"{'run':<24} {'steps':>10} {'wall s':>8} {'full-size loss':>15}")
    images = []
    for name, cfg in runs.items():
        started = time.perf_counter()
        image, _ = stylize(p, content, style, cfg)
        image = np.asarray(image)
        wall = time.perf_counter() - started
        loss = full_size_loss(p, content, style, image, cfg)
        steps = "+".join(map(str, cfg.scale_steps)) if cfg.scale_steps else str(cfg.total_steps)
        print(f"{name:<24} {steps:>10} {wall:>8.1f} {loss:>15.4g}")
        images.append(image[0])
    gap = np.ones((images[0].shape[0], 8, 3), np.float32)
    save_image(args.out, np.concatenate([images[0], gap, images[1]], axis=1))


if __name__ == "__main__":
    main()
