"""`jaxstyle bench step`: time engine 1's compiled step (and peer frameworks' steps) on
square images; `--batch` times the vmapped many-image step instead."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from jaxstyle.bench.harness import format_batch_table, format_table, run_bench
from jaxstyle.bench.timing import machine_line
from jaxstyle.config import PRECISIONS, StyleConfig
from jaxstyle.errors import ConfigError

EXAMPLES = ["jaxstyle bench step --sizes 128 256",
            "jaxstyle bench step --sizes 256 --peer tf torch --json bench.json",
            "jaxstyle bench step --sizes 512 1024 --remat --precision bf16",
            "jaxstyle bench step --batch 1 4 8 --sizes 256"]


def add_timing_arguments(p: argparse.ArgumentParser, steps: int, warmup: int, block: int) -> None:
    """--steps, --warmup, --block: the shared timing options (`timing.time_alternating`)."""
    p.add_argument("--steps", type=int, default=steps, help="timed calls per implementation")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed calls after compiling")
    p.add_argument("--block", type=int, default=block,
                   help="calls per turn when implementations take turns")


def check_timing_arguments(args: argparse.Namespace) -> None:
    if args.steps < 1 or args.warmup < 0 or args.block < 1:
        raise ConfigError("--steps and --block must be >= 1 and --warmup >= 0")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512],
                   help="square image sizes, px")
    add_timing_arguments(p, steps=20, warmup=3, block=5)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="jaxstyle's precision (bf16: convolutions in bfloat16)")
    p.add_argument("--remat", action="store_true", help="recompute activations per VGG block")
    p.add_argument("--peer", nargs="+", default=[], choices=("tf", "torch", "torch-compile"),
                   help="also time these frameworks (pip install -e '.[peers]')")
    p.add_argument("--batch", type=int, nargs="+", metavar="N",
                   help="time the vmapped many-image step at these batch sizes (images/s and "
                        "efficiency against batch 1; sharded when there are several devices)")
    p.add_argument("--tune", action="store_true",
                   help="first measure XLA CPU's convolution paths for the step again and "
                        "cache the faster for this CPU (jaxstyle.cputune; the first step on a "
                        "new CPU does it by itself)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--compile-cache", metavar="DIR", help="JAX persistent compilation cache folder")
    add_weights_option(p)


def write_json(path: str | os.PathLike, report: Any) -> None:
    import json

    from jaxstyle.files import atomic_write

    if path:
        with atomic_write(path) as f:
            f.write(json.dumps(report, indent=2, default=str).encode())


def run(args: argparse.Namespace) -> int:
    from jaxstyle.cli.common import enable_compile_cache, load_params

    check_timing_arguments(args)
    if args.batch and (min(args.batch) < 1 or args.peer):
        raise ConfigError("--batch sizes must be >= 1, and peers time single images only")
    enable_compile_cache(args.compile_cache)
    from jaxstyle import cputune

    if args.tune:
        entry = cputune.tune()
        print(f"# conv paths, ms per {cputune.TUNE_SIZE}px step: "
              + ", ".join(f"{k} {v:.1f}" for k, v in entry["ms"].items())
              + f" -> {entry['conv']} (cached in {cputune.cache_file()})", file=sys.stderr)
    params = load_params(args.weights, quiet=False)
    cfg = StyleConfig(precision=args.precision, remat=args.remat)
    report = run_bench(params, args.sizes, cfg, args.peer, args.steps, args.warmup, args.block,
                       log=lambda message: print(message, file=sys.stderr), batches=args.batch)
    print(f"{machine_line(report['machine'])}  {args.precision}"
          f"{'  remat' if args.remat else ''}  conv path {cputune.conv_path()}")
    table = format_batch_table if args.batch else format_table
    print(table(report["results"]))
    write_json(args.json, report)
    return 0
