"""Memory of one step with and without remat: XLA's buffer sizes and measured peak RSS.

Each configuration runs in its own process (peak RSS is per process), on the CPU.

    jaxstyle bench memory --sizes 512 1024 2048
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from jaxstyle.bench.timing import machine_line, markdown_table
from jaxstyle.errors import ConfigError

EXAMPLES = ["jaxstyle bench memory --sizes 512 1024 2048",
            "jaxstyle bench memory --sizes 512 1024 2048 --run-up-to 2048"]

GIB = 2**30


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024],
                   help="square image sizes, px")
    p.add_argument("--run-up-to", type=int, default=1024,
                   help="also run one step (peak RSS, step time) up to this size")
    p.add_argument("--budget-gib", type=float, default=24,
                   help="memory for which to extrapolate the largest square image, GiB")
    add_weights_option(p)
    # One configuration measured in this process: SIZE REMAT(0/1) RUN(0/1); prints JSON.
    p.add_argument("--child", type=int, nargs=3, help=argparse.SUPPRESS)


def measure(size: int, remat: bool, run_step: bool, weights: str | None) -> dict:
    """XLA's buffer sizes of the compiled step, and with `run_step` one step's wall time and
    this process's peak RSS."""
    import resource
    import time

    import jax

    from jaxstyle import StyleConfig, init_state, make_step, make_targets
    from jaxstyle.bench.fixtures import vgg_params
    from jaxstyle.bench.harness import bench_images
    from jaxstyle.bench.timing import machine_info

    p = vgg_params(weights)
    content, style = bench_images(size)
    cfg = StyleConfig(remat=remat)
    targets = make_targets(p, content, style, cfg)
    state = init_state(content, cfg)
    compiled = make_step(cfg).lower(p, targets, state).compile()
    m = compiled.memory_analysis()
    if m is None:
        raise ConfigError(f"{jax.default_backend()} reports no memory analysis")
    out = {"temp": m.temp_size_in_bytes, "args": m.argument_size_in_bytes,
           "outputs": m.output_size_in_bytes}
    if run_step:
        # One first step, not repeated calls: its wall time and the peak it reaches.
        started = time.perf_counter()
        state, metrics = compiled(p, targets, state)
        jax.block_until_ready(state)
        out["step_s"] = time.perf_counter() - started
        out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["machine"] = machine_info()
    return out


def run(args: argparse.Namespace) -> int:
    if args.child:
        size, remat, run_step = args.child
        print(json.dumps(measure(size, bool(remat), bool(run_step), args.weights)))
        return 0
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    rows, per_pixel, machine = [], {}, None
    for size in args.sizes:
        for remat in (False, True):
            run_step = size <= args.run_up_to
            print(f"memory: {size} px, remat {'yes' if remat else 'no'}", file=sys.stderr)
            command = [sys.executable, "-m", "jaxstyle.bench.memory", "--child", str(size),
                       str(int(remat)), str(int(run_step))]
            if args.weights:
                command += ["--weights", os.path.abspath(args.weights)]
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            label = "yes" if remat else "no"
            if result.returncode != 0:
                message = " ".join(result.stderr.strip()[-200:].split())
                print(f"memory: {size} px, remat {label} failed: {message}", file=sys.stderr)
                rows.append([size, label, "failed", "", "", ""])
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            machine = machine or r["machine"]
            per_pixel[remat] = r["temp"] / size**2
            rows.append([size, label, f"{r['temp'] / GIB:.2f}", f"{r['args'] / GIB:.2f}",
                         f"{r['peak_rss'] / GIB:.2f}" if "peak_rss" in r else "-",
                         f"{r['step_s']:.1f}" if "step_s" in r else "-"])
    # The children's machine (the CPU they were pinned to), else this process's.
    print(machine_line(machine))
    print(markdown_table(["size", "remat", "XLA temp GiB", "args GiB",
                          "peak RSS GiB (one step, own process)", "first step s"], rows))
    # Temp memory grows with pixels; weights, Python and XLA add about 1.5 GiB (measured RSS).
    for remat, bytes_per_pixel in per_pixel.items():
        side = int(((args.budget_gib - 1.5) * GIB / bytes_per_pixel) ** 0.5)
        print(f"remat={remat}: {bytes_per_pixel:.0f} B of XLA temp per pixel -> largest square "
              f"in {args.budget_gib:g} GiB about {side} px")
    return 0 if per_pixel else 1


if __name__ == "__main__":  # the per-configuration child process (`--child`)
    _parser = argparse.ArgumentParser()
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
