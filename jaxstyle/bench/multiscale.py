"""Single- vs multi-scale at one size for about the same wall time (BENCHMARKS.md).

Prints wall time and the full-size seed loss of each result, and writes the images side by
side to --out.

    jaxstyle bench multiscale --size 512 --steps 200 --coarse-steps 300 --fine-steps 130
"""

from __future__ import annotations

import argparse
import sys
import time

from jaxstyle.bench.fixtures import add_pair_arguments
from jaxstyle.bench.timing import machine_line, markdown_table

EXAMPLES = ["jaxstyle bench multiscale --size 512 --steps 200 --coarse-steps 300 "
            "--fine-steps 130",
            "jaxstyle bench multiscale --size 512 --steps 200 --coarse-steps 300 "
            "--fine-steps 130 --content coffee.jpg --out multiscale.png"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--size", type=int, default=512, help="longer side of the content, px")
    p.add_argument("--steps", type=int, default=200, help="single-scale steps")
    p.add_argument("--coarse-steps", type=int, default=300,
                   help="steps at half size in the 2-scale runs")
    p.add_argument("--fine-steps", type=int, default=130,
                   help="steps at full size in the 2-scale runs")
    add_pair_arguments(p)
    p.add_argument("--out", default="multiscale.png",
                   help="where to write the single-scale and 2-scale results side by side")
    add_weights_option(p)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from jaxstyle import StyleConfig, save_image, stylize
    from jaxstyle.bench.fixtures import demo_inputs, full_size_loss, image_path, vgg_params

    print(machine_line())
    p = vgg_params(args.weights)
    content, style = demo_inputs(args.size, args.content and str(image_path(args.content)),
                                 args.style and str(image_path(args.style)))
    runs = {
        "single": StyleConfig(steps=args.steps),
        "2 scales": StyleConfig(scales=2, scale_steps=(args.coarse_steps, args.fine_steps)),
        "2 scales, carried Adam": StyleConfig(scales=2, carry_optimizer=True,
                                              scale_steps=(args.coarse_steps, args.fine_steps)),
    }
    print(f"{content.shape[1]}x{content.shape[0]} px")
    rows, images = [], []
    for name, cfg in runs.items():
        print(f"multiscale: {name}", file=sys.stderr)
        # One whole run's wall time (compiles included), not repeated calls.
        started = time.perf_counter()
        image, _ = stylize(p, content, style, cfg)
        wall = time.perf_counter() - started
        loss = full_size_loss(p, content, style, image, cfg)
        steps = "+".join(map(str, cfg.scale_steps)) if cfg.scale_steps else str(cfg.total_steps)
        rows.append([name, steps, f"{wall:.1f}", f"{loss:.4g}"])
        images.append(image)
    print(markdown_table(["run", "steps", "wall s", "full-size loss"], rows))
    gap = np.ones((images[0].shape[0], 8, 3), np.float32)
    save_image(args.out, np.concatenate([images[0], gap, images[1]], axis=1))
    print(f"wrote {args.out} (left: single scale, right: 2 scales)", file=sys.stderr)
    return 0
