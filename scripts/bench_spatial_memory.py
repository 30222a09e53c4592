"""Largest image per device count for one spatially sharded step, from XLA's compiled memory
analysis (BENCHMARKS.md, "Largest image"). Nothing is run: each program is only compiled for
abstract inputs, so this works for any size on a laptop.

    python scripts/bench_spatial_memory.py --devices 1 2 4 8 --sides 1024 2048 4096

Each device count runs in a subprocess with JAX_NUM_CPU_DEVICES set (fixed at start-up).
Per device: arguments + outputs + temporaries of the step with --remat, 16:9 images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(devices: int, sides: list[int], precision: str) -> list[dict]:
    import jax
    import jax.numpy as jnp

    sys.path.insert(0, str(ROOT))
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
        per_device = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                      + memory.temp_size_in_bytes - memory.alias_size_in_bytes)
        rows.append({"devices": devices, "width": width, "height": height,
                     "megapixels": width * height / 1e6, "gib_per_device": per_device / 2**30,
                     "temp_gib": memory.temp_size_in_bytes / 2**30})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.sides, args.precision)))
        return
    rows = []
    for devices in args.devices:
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": str(devices)}
        result = subprocess.run([sys.executable, __file__, "--child", str(devices), "--sides",
                                 *map(str, args.sides), "--precision", args.precision], env=env,
                                capture_output=True, text=True, check=True)
        rows.extend(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"{'devices':>7} {'image':>11} {'MPix':>6} {'GiB/device':>10} {'bytes/pixel/device':>18}")
    for row in rows:
        per_pixel = row["gib_per_device"] * 2**30 / (row["megapixels"] * 1e6)
        print(f"{row['devices']:>7} {row['width']:>5}x{row['height']:<5} {row['megapixels']:>6.1f} "
              f"{row['gib_per_device']:>10.2f} {per_pixel:>18.0f}")
    # Memory grows linearly with pixels: extrapolate from the largest size measured.
    for budget_gib, devices, label in ((24, 8, "8 x 24 GB"), (141, 1, "one 141 GB H200")):
        measured = [r for r in rows if r["devices"] == devices]
        if not measured:
            continue
        last = max(measured, key=lambda r: r["megapixels"])
        per_pixel = last["gib_per_device"] / last["megapixels"]
        print(f"{label}: about {budget_gib / per_pixel:.0f} megapixels fit "
              f"(8K, 7680x4320, is 33.2 MP: {'yes' if budget_gib / per_pixel > 33.2 else 'no'})")


if __name__ == "__main__":
    main()
