"""Time the default jaxstyle step at one size under different XLA CPU flags, side by side.

Each flag set runs in its own subprocess (XLA reads flags once per process); the sets take
turns for several rounds so a noisy shared machine hits them alike. Prints median ms/step.

For where the time goes inside a step, trace a few steps with `jax.profiler.start_trace(DIR)`
/ `stop_trace()` and sum the events of `DIR/plugins/profile/*/*.trace.json.gz` by name (that
is how BENCHMARKS.md's profile was read).

    jaxstyle bench tune-cpu --size 256 --rounds 3 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from jaxstyle.bench.timing import Timing, machine_line, markdown_table

EXAMPLES = ["jaxstyle bench tune-cpu --size 256 --rounds 3 --steps 5",
            "jaxstyle bench tune-cpu --size 256 --sets default fast-math --weights "
            "weights/vgg19.npz"]

FLAG_SETS = {
    "default": "",
    "no-thunk-runtime": "--xla_cpu_use_thunk_runtime=false",
    "xnn-dot,eltwise,reduce": "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce",
    "onednn-dot,eltwise": "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise,reduce",
    "ynn-greedy": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "fast-math": "--xla_cpu_enable_fast_math=true",
    "legacy+onednn": "--xla_cpu_use_thunk_runtime=false "
                     "--xla_cpu_experimental_onednn_custom_call=true",
    "onednn-custom-call": "--xla_cpu_experimental_onednn_custom_call=true",
}

WARMUP = 2  # untimed steps after the first (compiling) one


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--size", type=int, default=256, help="square image size, px")
    p.add_argument("--steps", type=int, default=5, help="timed steps per flag set and round")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds in which the flag sets take turns (one process each)")
    p.add_argument("--sets", nargs="+", choices=list(FLAG_SETS), default=list(FLAG_SETS),
                   metavar="SET", help="flag sets to time, the first the reference for "
                                       "`vs first`; default: all of " + ", ".join(FLAG_SETS))
    add_weights_option(p)
    # One flag set measured in this process (XLA_FLAGS already set); prints JSON.
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def measure(size: int, steps: int, weights: str | None) -> dict:
    """The compile time of the first step, then `steps` timed steps after WARMUP untimed."""
    import time

    import jax

    from jaxstyle import StyleConfig, init_state, make_step, make_targets
    from jaxstyle.bench.fixtures import vgg_params
    from jaxstyle.bench.harness import bench_images
    from jaxstyle.bench.timing import machine_info, time_calls

    params = vgg_params(weights)
    content, style = bench_images(size)
    cfg = StyleConfig()
    targets = make_targets(params, content, style, cfg)
    step = make_step(cfg)
    carried: dict[str, Any] = {"state": init_state(content, cfg)}

    def one_step():
        carried["state"], carried["metrics"] = step(params, targets, carried["state"])
        jax.block_until_ready(carried["state"])

    started = time.perf_counter()  # one call: the compile (and first step), not a repeat
    one_step()
    compile_s = time.perf_counter() - started
    timing = time_calls(one_step, repeats=steps, warmup=WARMUP)
    return {"times": list(timing.samples), "compile_s": compile_s,
            "loss": float(carried["metrics"]["loss"]), "machine": machine_info()}


def run(args: argparse.Namespace) -> int:
    from jaxstyle.errors import ConfigError

    if args.steps < 1 or args.rounds < 1:
        raise ConfigError("--steps and --rounds must be >= 1")
    if args.child:
        print(json.dumps(measure(args.size, args.steps, args.weights)))
        return 0
    variants = list(dict.fromkeys(args.sets))
    times: dict[str, list[float]] = {v: [] for v in variants}
    info: dict[str, str] = {}
    machine = None
    for round_ in range(args.rounds):
        for name in variants:
            print(f"tune-cpu: round {round_ + 1}/{args.rounds}, {name}", file=sys.stderr)
            env = {**os.environ, "XLA_FLAGS": FLAG_SETS[name], "JAX_PLATFORMS": "cpu"}
            command = [sys.executable, "-m", "jaxstyle.bench.tune_cpu", "--child", "--size",
                       str(args.size), "--steps", str(args.steps)]
            if args.weights:
                command += ["--weights", os.path.abspath(args.weights)]
            out = subprocess.run(command, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                lines = out.stderr.strip().splitlines()
                info[name] = (lines[-1] if lines else f"exit status {out.returncode}")[:100]
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            machine = machine or result["machine"]
            times[name].extend(result["times"])
            info[name] = f"compile {result['compile_s']:.1f} s, loss {result['loss']:.6g}"
    timings = {name: Timing(tuple(t)) for name, t in times.items() if t}
    base = timings.get(variants[0])
    rows = []
    for variant in variants:
        if variant not in timings:
            rows.append([variant, "failed", "", "", info.get(variant, "")])
            continue
        t = timings[variant]
        ratio = f"{t.median / base.median:.2f}" if base else ""
        rows.append([variant, f"{1e3 * t.median:.1f}", f"{1e3 * t.min:.1f}", ratio,
                     info[variant]])
    print(machine_line(machine))  # the children's (CPU) machine, else this process's
    print(f"{args.size} px, median of {args.rounds} x {args.steps} steps per flag set")
    print(markdown_table(["flags", "median ms", "min ms", "vs first", "notes"], rows))
    return 0 if timings else 1


if __name__ == "__main__":  # the per-flag-set child process (`--child`)
    _parser = argparse.ArgumentParser()
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
