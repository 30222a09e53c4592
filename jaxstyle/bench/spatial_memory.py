"""Largest image per device count for one spatially sharded step, from XLA's compiled memory
analysis (BENCHMARKS.md, "Largest image"). Nothing is run: each program is only compiled for
abstract inputs, so this works for any size on a laptop.

    jaxstyle bench spatial-memory --devices 1 2 4 8 --sides 1024 2048 4096

Each device count runs in a subprocess with JAX_NUM_CPU_DEVICES set (fixed at start-up).
Per device: arguments + outputs + temporaries of the step with --remat, 16:9 images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from jaxstyle.bench.timing import machine_line, markdown_table
from jaxstyle.config import PRECISIONS
from jaxstyle.errors import ConfigError

EXAMPLES = ["jaxstyle bench spatial-memory --devices 1 2 4 8 --sides 1024 2048 4096",
            "jaxstyle bench spatial-memory --devices 1 2 4 8 --sides 2048 4096 7680"]

# Memory grows linearly with pixels: the budgets to extrapolate to, from the largest size
# measured at that device count.
BUDGETS = ((24, 8, "8 x 24 GB"), (141, 1, "one 141 GB H200"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8],
                   help="device counts (CPU devices, one process each), rows x 1")
    p.add_argument("--sides", type=int, nargs="+", default=[1024, 2048, 4096],
                   help="longer sides of the 16:9 images, px")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="precision of the step's convolutions")
    # The device count measured in this process (JAX_NUM_CPU_DEVICES set); prints JSON.
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)


def measure(devices: int, sides: list[int], precision: str) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from jaxstyle import StyleConfig, init_state, make_targets
    from jaxstyle.gatys.spatial import round_up_size, spatial_shardings
    from jaxstyle.gatys.state import make_step
    from jaxstyle.mesh import spatial_mesh
    from jaxstyle.vgg import VGG19_CONV_LAYERS, prepare_params

    cfg = StyleConfig(remat=True, precision=precision)
    params = prepare_params({name: {"kernel": jnp.zeros((3, 3, cin, cout)),
                                    "bias": jnp.zeros((cout,))}
                             for name, cin, cout in VGG19_CONV_LAYERS})
    mesh = spatial_mesh(devices, 1)
    rows = []
    for side in sides:
        height, width = round_up_size((round(side * 9 / 16), side), mesh)
        content = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
        style = jax.ShapeDtypeStruct((1, 512, 512, 3), jnp.float32)
        targets = jax.eval_shape(lambda p, c, s: make_targets(p, c, s, cfg), params, content,
                                 style)
        state = jax.eval_shape(lambda c: init_state(c, cfg), content)
        shardings = spatial_shardings(mesh, targets, state)
        compiled = make_step(cfg, shardings=shardings).lower(params, targets, state).compile()
        memory = compiled.memory_analysis()
        if memory is None:
            raise ConfigError(f"{jax.default_backend()} reports no memory analysis")
        per_device = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                      + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
        rows.append({"devices": devices, "width": width, "height": height,
                     "megapixels": width * height / 1e6, "gib_per_device": per_device / 2**30,
                     "temp_gib": memory.temp_size_in_bytes / 2**30})
    return rows


def run(args: argparse.Namespace) -> int:
    if args.child:
        from jaxstyle.bench.timing import machine_info

        rows = measure(args.child, args.sides, args.precision)
        print(json.dumps({"rows": rows, "machine": machine_info()}))
        return 0
    rows, machine = [], None
    for devices in args.devices:
        print(f"spatial-memory: {devices} device(s)", file=sys.stderr)
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices)}
        result = subprocess.run([sys.executable, "-m", "jaxstyle.bench.spatial_memory",
                                 "--child", str(devices), "--sides", *map(str, args.sides),
                                 "--precision", args.precision], env=env, capture_output=True,
                                text=True)
        if result.returncode != 0:  # as before, a failed device count ends the run
            print(result.stderr.strip()[-2000:], file=sys.stderr)
            print(f"spatial-memory: {devices} device(s) failed", file=sys.stderr)
            return 1
        report = json.loads(result.stdout.strip().splitlines()[-1])
        rows.extend(report["rows"])
        machine = machine or report["machine"]
    print(machine_line(machine))
    table = []
    for row in rows:
        per_pixel = row["gib_per_device"] * 2**30 / (row["megapixels"] * 1e6)
        table.append([row["devices"], f"{row['width']}x{row['height']}",
                      f"{row['megapixels']:.1f}", f"{row['gib_per_device']:.2f}",
                      f"{per_pixel:.0f}"])
    print(markdown_table(["devices (rows x 1)", "image", "MPix", "GiB per device",
                          "bytes per pixel per device"], table))
    for budget_gib, devices, label in BUDGETS:
        measured = [r for r in rows if r["devices"] == devices]
        if not measured:
            continue
        last = max(measured, key=lambda r: r["megapixels"])
        per_pixel = last["gib_per_device"] / last["megapixels"]
        print(f"{label}: about {budget_gib / per_pixel:.0f} megapixels fit "
              f"(8K, 7680x4320, is 33.2 MP: {'yes' if budget_gib / per_pixel > 33.2 else 'no'})")
    return 0


if __name__ == "__main__":  # the per-device-count child process (`--child`)
    _parser = argparse.ArgumentParser()
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
