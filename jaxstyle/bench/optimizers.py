"""Loss against wall time for each optimizer on the same inputs (BENCHMARKS.md, optimizers).

    jaxstyle bench optimizers --sizes 128 256 --seconds 60

Each optimizer runs for --seconds after compiling, from the content image; the table gives
the seed loss reached at 10%, 25%, 50% and 100% of that time, and the steps taken.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jaxstyle._types import ParamTree
from jaxstyle.bench.fixtures import add_pair_arguments
from jaxstyle.bench.timing import machine_line, markdown_table
from jaxstyle.config import StyleConfig

EXAMPLES = ["jaxstyle bench optimizers --sizes 128 256 --seconds 60",
            "jaxstyle bench optimizers --sizes 128 256 --seconds 60 --content chelsea.jpg"]

OPTIMIZERS = ("adam", "adam-optax", "lbfgs")
FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256],
                   help="longer sides of the content, px")
    p.add_argument("--seconds", type=float, default=60,
                   help="optimisation time per optimizer and size, after compiling")
    add_pair_arguments(p)
    add_weights_option(p)


def curve(p: ParamTree, content: Any, style: Any, cfg: StyleConfig,
          seconds: float) -> list[tuple[float, int, float]]:
    """(elapsed s, step, loss) after each step until `seconds` of optimisation have passed.

    One clock over the whole run (each step synchronised by reading its loss), not
    `timing.time_calls`: what is measured is the loss reached by a time, not a call's time."""
    import time

    import jax

    from jaxstyle import init_state, make_step, make_targets

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


def run(args: argparse.Namespace) -> int:
    from jaxstyle import StyleConfig
    from jaxstyle.bench.fixtures import demo_inputs, image_path, vgg_params

    print(machine_line())
    p = vgg_params(args.weights)
    content_path = args.content and str(image_path(args.content))
    style_path = args.style and str(image_path(args.style))
    rows = []
    for size in args.sizes:
        content, style = demo_inputs(size, content_path, style_path)
        for optimizer in OPTIMIZERS:
            print(f"optimizers: {content.shape[1]}x{content.shape[0]} px, {optimizer}",
                  file=sys.stderr)
            points = curve(p, content, style, StyleConfig(optimizer=optimizer), args.seconds)
            losses = []
            for fraction in FRACTIONS:
                before = [loss for t, _, loss in points if t <= fraction * args.seconds]
                losses.append(f"{before[-1]:.4g}" if before else "-")
            rows.append([f"{content.shape[1]}x{content.shape[0]}", optimizer, *losses,
                         points[-1][1] if points else 0])
    print(f"{args.seconds:g} s of optimisation each, after compiling")
    marks = [f"@{round(f * args.seconds)} s" for f in FRACTIONS]
    print(markdown_table(["size", "optimizer", f"loss {marks[0]}", *marks[1:],
                          f"steps in {args.seconds:g} s"], rows))
    return 0
