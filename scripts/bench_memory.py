"""Memory of one step with and without remat: XLA's buffer sizes and measured peak RSS.

Each configuration runs in its own process (peak RSS is per process).

    python scripts/bench_memory.py --sizes 512 1024 2048
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, "scripts")
import jax
from common import params
from jaxstyle import StyleConfig, init_state, make_step, make_targets
from jaxstyle.bench.harness import bench_images
size, remat, run = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3] == "1"
p = params()
content, style = bench_images(size)
cfg = StyleConfig(remat=remat)
targets = make_targets(p, content, style, cfg)
state = init_state(content, cfg)
compiled = make_step(cfg).lower(p, targets, state).compile()
m = compiled.memory_analysis()
out = {"temp": m.temp_size_in_bytes, "args": m.argument_size_in_bytes,
       "outputs": m.output_size_in_bytes}
if run:
    started = time.perf_counter()
    state, metrics = compiled(p, targets, state)
    jax.block_until_ready(state)
    out["step_s"] = time.perf_counter() - started
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
"""

GIB = 2**30


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--run-up-to", type=int, default=1024,
                        help="also run one step (peak RSS) up to this size")
    parser.add_argument("--budget-gib", type=float, default=24)
    args = parser.parse_args()
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    print(f"{'size':>6} {'remat':>6} {'XLA temp GiB':>13} {'args GiB':>9} {'peak RSS GiB':>13} "
          f"{'step s':>7}")
    per_pixel = {}
    for size in args.sizes:
        for remat in (False, True):
            run = size <= args.run_up_to
            result = subprocess.run([sys.executable, "-c", CHILD, str(size), str(int(remat)),
                                     str(int(run))], env=env, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"{size:>6} {str(remat):>6} failed: {result.stderr.strip()[-200:]}")
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            per_pixel[remat] = r["temp"] / size**2
            rss = f"{r['peak_rss'] / GIB:>13.2f}" if "peak_rss" in r else f"{'-':>13}"
            step = f"{r['step_s']:>7.1f}" if "step_s" in r else f"{'-':>7}"
            print(f"{size:>6} {str(remat):>6} {r['temp'] / GIB:>13.2f} {r['args'] / GIB:>9.2f} "
                  f"{rss} {step}")
    # Temp memory grows with pixels; weights, Python and XLA add about 1.5 GiB (measured RSS).
    for remat, bytes_per_pixel in per_pixel.items():
        side = int(((args.budget_gib - 1.5) * GIB / bytes_per_pixel) ** 0.5)
        print(f"remat={remat}: {bytes_per_pixel:.0f} B of XLA temp per pixel -> largest square "
              f"in {args.budget_gib:g} GiB about {side} px")


if __name__ == "__main__":
    main()
