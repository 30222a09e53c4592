"""Loss against wall time for each optimizer on the same inputs (BENCHMARKS.md, optimizers).

    python scripts/bench_optimizers.py --sizes 128 256 --seconds 60
"""

from __future__ import annotations

import argparse
import time

import jax

from common import inputs, params
from jaxstyle import StyleConfig, init_state, make_step, make_targets


def curve(p, content, style, cfg: StyleConfig, seconds: float):
    """(elapsed s, step, loss) after each step until `seconds` of optimisation have passed."""
    targets = make_targets(p, content, style, cfg)
    state = init_state(content, cfg)
    step = make_step(cfg)
    state, metrics = step(p, targets, state)  # compile outside the clock
    jax.block_until_ready(state)
    state = init_state(content, cfg)
    points, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds:
        state, metrics = step(p, targets, state)
        points.append((time.perf_counter() - started, int(state.step), float(metrics["loss"])))
    return points


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--content")
    parser.add_argument("--style")
    args = parser.parse_args()
    p = params()
    for size in args.sizes:
        content, style = inputs(size, args.content, args.style)
        print(f"\n## {content.shape[1]}x{content.shape[0]} px, {args.seconds:.0f} s each")
        print(f"{'optimizer':<11} " + " ".join(f"{'loss@' + str(round(f * args.seconds)) + 's':>11}"
                                               for f in (0.1, 0.25, 0.5, 1.0)) + "   steps")
        for optimizer in ("adam", "adam-optax", "lbfgs"):
            points = curve(p, content, style, StyleConfig(optimizer=optimizer), args.seconds)
            row = []
            for fraction in (0.1, 0.25, 0.5, 1.0):
                before = [loss for t, _, loss in points if t <= fraction * args.seconds]
                row.append(f"{before[-1]:>11.4g}" if before else f"{'-':>11}")
            print(f"{optimizer:<11} " + " ".join(row) + f"   {points[-1][1]}")


if __name__ == "__main__":
    main()
