"""Time the default jaxstyle step at one size under different XLA CPU flags, side by side.

Each flag set runs in its own subprocess (XLA reads flags once per process); the sets take
turns for several rounds so a noisy shared machine hits them alike. Prints median ms/step.

For where the time goes inside a step, trace a few steps with `jax.profiler.start_trace(DIR)`
/ `stop_trace()` and sum the events of `DIR/plugins/profile/*/*.trace.json.gz` by name (that
is how BENCHMARKS.md's profile was read).

    python scripts/tune_cpu.py --size 256 --rounds 3 --steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

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

CHILD = r"""
import json, os, statistics, sys, time
import jax
from jaxstyle import StyleConfig, init_state, make_step, make_targets
from jaxstyle.bench.harness import bench_images
from jaxstyle.weights import load_vgg19
from jaxstyle.vgg import prepare_params
size, steps = int(sys.argv[1]), int(sys.argv[2])
params = jax.device_put(prepare_params(load_vgg19(sys.argv[3])))
content, style = bench_images(size)
cfg = StyleConfig()
targets = make_targets(params, content, style, cfg)
state = init_state(content, cfg)
step = make_step(cfg)
t = time.perf_counter(); state, m = step(params, targets, state); jax.block_until_ready(state)
compile_s = time.perf_counter() - t
for _ in range(2):
    state, m = step(params, targets, state)
jax.block_until_ready(state)
times = []
for _ in range(steps):
    t = time.perf_counter(); state, m = step(params, targets, state); jax.block_until_ready(state)
    times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "compile_s": compile_s, "loss": float(m["loss"])}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sets", nargs="+", default=list(FLAG_SETS))
    parser.add_argument("--weights", default="weights/vgg19.npz")
    args = parser.parse_args()
    variants = list(args.sets)
    times = {v: [] for v in variants}
    info = {}
    for _ in range(args.rounds):
        for name in variants:
            env = {**os.environ, "XLA_FLAGS": FLAG_SETS[name], "JAX_PLATFORMS": "cpu"}
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.size), str(args.steps),
                                  args.weights], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                info[name] = out.stderr.strip().splitlines()[-1][:100]
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            times[name].extend(result["times"])
            info[name] = f"compile {result['compile_s']:.1f} s, loss {result['loss']:.6g}"
    base = statistics.median(times[variants[0]]) if times[variants[0]] else None
    print(f"{'flags':<26} {'median ms':>10} {'min ms':>8} {'vs first':>8}  notes")
    for variant in variants:
        t = times[variant]
        if not t:
            print(f"{variant:<26} {'failed':>10}  {info.get(variant)}")
            continue
        median = 1e3 * statistics.median(t)
        ratio = f"{median / (1e3 * base):.2f}" if base else ""
        print(f"{variant:<26} {median:>10.1f} {1e3 * min(t):>8.1f} {ratio:>8}  {info[variant]}")


if __name__ == "__main__":
    main()
