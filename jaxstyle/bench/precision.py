"""fp32 vs bf16: loss after N steps and step time at one size (BENCHMARKS.md).

    jaxstyle bench precision --size 256 --steps 200

Both results are scored by the fp32 loss against full-size targets, so the comparison is of
the images; the wall time is each whole run's (compiling included).
"""

from __future__ import annotations

import argparse
import sys
import time

from jaxstyle.bench.timing import machine_line, markdown_table

EXAMPLES = ["jaxstyle bench precision --size 256 --steps 200"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--size", type=int, default=256,
                   help="longer side of the packaged demo photo, px")
    p.add_argument("--steps", type=int, default=200, help="optimisation steps per precision")
    add_weights_option(p)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from jaxstyle import StyleConfig, stylize
    from jaxstyle.bench.fixtures import demo_inputs, full_size_loss, vgg_params

    print(machine_line())
    p = vgg_params(args.weights)
    content, style = demo_inputs(args.size)
    print(f"{content.shape[1]}x{content.shape[0]} px, {args.steps} steps")
    results = {}
    for precision in ("fp32", "bf16"):
        print(f"precision: {precision}", file=sys.stderr)
        cfg = StyleConfig(steps=args.steps, precision=precision)
        # One whole run's wall time, not repeated calls.
        started = time.perf_counter()
        image, history = stylize(p, content, style, cfg)
        wall = time.perf_counter() - started
        # Both images scored by the fp32 loss, so the comparison is of the results.
        results[precision] = (full_size_loss(p, content, style, image, StyleConfig()),
                              history[-1]["loss"], wall, np.asarray(image))
    rows = [[precision, f"{loss:.5g}", f"{own:.5g}", f"{wall:.1f}"]
            for precision, (loss, own, wall, _) in results.items()]
    print(markdown_table(["precision", "fp32 loss of the result", "its own loss",
                          f"wall s ({args.steps} steps)"], rows))
    rel = abs(results["bf16"][0] - results["fp32"][0]) / results["fp32"][0]
    pixels = np.abs(results["bf16"][3] - results["fp32"][3]).mean() * 255
    print(f"relative loss difference {rel:.2%}; mean pixel difference {pixels:.2f}/255")
    return 0
