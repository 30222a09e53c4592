"""fp32 vs bf16: loss after N steps and step time at one size (BENCHMARKS.md).

    python scripts/bench_precision.py --size 256 --steps 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import full_size_loss, inputs, params
from jaxstyle import StyleConfig, stylize


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    p = params()
    content, style = inputs(args.size)
    results = {}
    for precision in ("fp32", "bf16"):
        cfg = StyleConfig(steps=args.steps, precision=precision)
        started = time.perf_counter()
        image, history = stylize(p, content, style, cfg)
        wall = time.perf_counter() - started
        # Both images scored by the fp32 loss, so the comparison is of the results.
        results[precision] = (full_size_loss(p, content, style, image, StyleConfig()),
                              history[-1]["loss"], wall, np.asarray(image))
    print(f"{content.shape[1]}x{content.shape[0]} px, {args.steps} steps")
    print(f"{'precision':<9} {'fp32 loss of result':>20} {'own loss':>12} {'wall s':>8}")
    for precision, (loss, own, wall, _) in results.items():
        print(f"{precision:<9} {loss:>20.5g} {own:>12.5g} {wall:>8.1f}")
    rel = abs(results["bf16"][0] - results["fp32"][0]) / results["fp32"][0]
    pixels = np.abs(results["bf16"][3] - results["fp32"][3]).mean() * 255
    print(f"relative loss difference {rel:.2%}; mean pixel difference {pixels:.2f}/255")


if __name__ == "__main__":
    main()
