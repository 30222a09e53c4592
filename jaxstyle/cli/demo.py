"""`jaxstyle demo`: the packaged photo in the style of The Starry Night, offline.

The demo runs the fast preset (`StyleConfig.preset("fast")`): 0.95-1.00x the seed's
1000-step loss on held-out pairs in 600 L-BFGS steps at 256 px on a CPU (two to five
minutes on two cores), and at 512 px on a GPU/TPU (where the preset grows its budget). L-BFGS
also leaves less high-frequency noise than Adam (README, "Optimizers at equal CPU time").

`--quick` paints fast, then refines: the shipped `paintings` network's Starry Night in one pass
(0.02 s), then 30 Adam steps from that picture, about 24 s in all from a cold start on two
cores. Adam here, not L-BFGS: in the same wall-clock 30 Adam steps reached a lower loss than 10
L-BFGS steps (4.5e7 against 5.7e7), because L-BFGS compiles more and then cost 2-3 Adam steps
per step (measured before it reused its line search's evaluation; not re-measured since).
A one-pass start gets as far in 50 steps as 100 from the photo (BENCHMARKS.md, "Paint
fast, then refine").
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from jaxstyle.cli.common import add_weights_option, log, positive_int
from jaxstyle.config import PRESETS, StyleConfig, preset_fields

# The fast preset (StyleConfig.preset): 0.95-1.00x the seed's 1000-step loss in 600 L-BFGS
# steps at 256 px, 0.73-0.76x TensorFlow's time for them (BENCHMARKS.md, "Issue 36").
CPU_SETTINGS: dict[str, Any] = dict(PRESETS["fast"], max_dim=256)
ACCELERATOR_SETTINGS: dict[str, Any] = dict(PRESETS["fast"], max_dim=512)
QUICK_SETTINGS: dict[str, Any] = dict(max_dim=256, steps=30, optimizer="adam")
QUICK_ACCELERATOR_SETTINGS: dict[str, Any] = dict(max_dim=512, steps=100, optimizer="adam")
QUICK_START = "paintings:starry_night"  # the shipped network's own Starry Night


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_command(commands, "demo", "stylize the packaged photo as The Starry Night (offline)",
                    ["jaxstyle demo", "jaxstyle demo -o demo.png --max-dim 512 --steps 300",
                     "jaxstyle demo --optimizer adam --steps 300",
                     "jaxstyle demo --quick   # one pass, then 30 refining steps"])
    p.add_argument("-o", "--output", default="jaxstyle-demo.png", help="output image")
    p.add_argument("--quick", action="store_true",
                   help=f"start from the shipped network's one-pass picture ({QUICK_START}) "
                        f"and refine it: {QUICK_SETTINGS['steps']} steps on CPU, "
                        f"{QUICK_ACCELERATOR_SETTINGS['steps']} on GPU/TPU")
    p.add_argument("--max-dim", type=positive_int, default=None,
                   help=f"default: {CPU_SETTINGS['max_dim']} on CPU, "
                        f"{ACCELERATOR_SETTINGS['max_dim']} on GPU/TPU")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"default: {CPU_SETTINGS['steps']} on CPU, "
                        f"{ACCELERATOR_SETTINGS['steps']} on GPU/TPU (--quick: fewer)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default=None,
                   help="default: lbfgs (adam: the seed's Keras Adam; --quick: adam)")
    add_weights_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_demo)


def demo_config(on_accelerator: bool, quick: bool = False, **overrides: Any) -> StyleConfig:
    """The demo's settings for this machine, with any the user gave."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if quick:
        settings = dict(QUICK_ACCELERATOR_SETTINGS if on_accelerator else QUICK_SETTINGS)
    else:  # the fast preset's rule: a length the user gives drops its budget growth too
        machine = ACCELERATOR_SETTINGS if on_accelerator else CPU_SETTINGS
        settings = {**preset_fields("fast", set(given)), "max_dim": machine["max_dim"]}
    settings.update(given)
    return StyleConfig(**settings)


def cmd_demo(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle.cli.stylize import run_stylize
    from jaxstyle.demo import demo_content, demo_style

    cfg = demo_config(jax.default_backend() != "cpu", args.quick, max_dim=args.max_dim,
                      steps=args.steps, optimizer=args.optimizer)
    content, style = demo_content(cfg.max_dim), demo_style(cfg.max_dim)
    start = f", starting from {QUICK_START}'s one pass" if args.quick else ""
    log(f"demo on {jax.default_backend()}: Chelsea the cat (CC0) as The Starry Night "
        f"(van Gogh, 1889), {content.shape[1]}x{content.shape[0]} px, {cfg.total_steps} "
        f"{cfg.optimizer} steps{start} (larger: jaxstyle demo --max-dim 512 --steps 300)",
        args.quiet)
    return run_stylize(content, [style], args.output, cfg, weights=args.weights, quiet=args.quiet,
                       init_model=QUICK_START if args.quick else None)
