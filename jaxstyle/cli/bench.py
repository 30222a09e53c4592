"""`jaxstyle bench`: time the compiled step (and peer frameworks' steps) on square images."""

from __future__ import annotations

import json
import sys

from jaxstyle.cli.common import add_weights_option, enable_compile_cache, load_params
from jaxstyle.config import PRECISIONS, StyleConfig
from jaxstyle.errors import ConfigError


def add_parser(commands, add_command) -> None:
    p = add_command(commands, "bench", "time the optimisation step (and peers) on square images",
                    ["jaxstyle bench --sizes 128 256",
                     "jaxstyle bench --sizes 256 --peer tf torch --json bench.json",
                     "jaxstyle bench --sizes 512 1024 --remat --precision bf16",
                     "jaxstyle bench --batch 1 4 8 --sizes 256"])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512],
                   help="square image sizes, px")
    p.add_argument("--steps", type=int, default=20, help="timed steps per implementation")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after compiling")
    p.add_argument("--block", type=int, default=5,
                   help="steps per turn when alternating with peers")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--remat", action="store_true", help="recompute activations per VGG block")
    p.add_argument("--peer", nargs="+", default=[], choices=("tf", "torch", "torch-compile"),
                   help="also time these frameworks (pip install -e '.[peers]')")
    p.add_argument("--batch", type=int, nargs="+", metavar="N",
                   help="time the vmapped many-image step at these batch sizes (images/s and "
                        "efficiency against batch 1; sharded when there are several devices)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--compile-cache", metavar="DIR", help="JAX persistent compilation cache folder")
    add_weights_option(p)
    p.set_defaults(handler=cmd_bench)


def cmd_bench(args) -> int:
    from jaxstyle.bench.harness import format_batch_table, format_table, run_bench
    from jaxstyle.files import atomic_write

    if args.steps < 1 or args.warmup < 0 or args.block < 1:
        raise ConfigError("--steps and --block must be >= 1 and --warmup >= 0")
    if args.batch and (min(args.batch) < 1 or args.peer):
        raise ConfigError("--batch sizes must be >= 1, and peers time single images only")
    enable_compile_cache(args.compile_cache)
    params = load_params(args.weights, quiet=False)
    cfg = StyleConfig(precision=args.precision, remat=args.remat)
    report = run_bench(params, args.sizes, cfg, args.peer, args.steps, args.warmup, args.block,
                       log=lambda message: print(message, file=sys.stderr), batches=args.batch)
    machine = report["machine"]
    print(f"# {machine['date']}  {machine['device']} ({machine['backend']}, "
          f"{machine['cpus']} CPUs)  jax {machine['jax']}  {args.precision}"
          f"{'  remat' if args.remat else ''}")
    table = format_batch_table if args.batch else format_table
    print(table(report["results"]))
    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(report, indent=2).encode())
    return 0
