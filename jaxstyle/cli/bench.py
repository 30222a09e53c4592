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
                     "jaxstyle bench --batch 1 4 8 --sizes 256",
                     "jaxstyle bench --model starry_night --sizes 256 512 1024 --batch 1 8 "
                     "--peer torch onnx"])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512],
                   help="square image sizes, px")
    p.add_argument("--steps", type=int, default=20, help="timed steps per implementation")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after compiling")
    p.add_argument("--block", type=int, default=5,
                   help="steps per turn when alternating with peers")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--remat", action="store_true", help="recompute activations per VGG block")
    p.add_argument("--peer", nargs="+", default=[],
                   choices=("tf", "torch", "torch-compile", "onnx"),
                   help="also time these frameworks (pip install -e '.[peers]'); with --model: "
                        "torch (eager) and onnx (ONNX Runtime) on the same network")
    p.add_argument("--model", help="time a feed-forward model (a file or built-in name) "
                                   "instead of the optimisation step")
    p.add_argument("--batch", type=int, nargs="+", metavar="N",
                   help="time the vmapped many-image step at these batch sizes (images/s and "
                        "efficiency against batch 1; sharded when there are several devices)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--compile-cache", metavar="DIR", help="JAX persistent compilation cache folder")
    add_weights_option(p)
    p.set_defaults(handler=cmd_bench)


def _model_bench(args) -> int:
    import numpy as np

    from jaxstyle.bench.model_bench import format_model_table, run_model_bench
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.feedforward.modelfile import load_model

    if set(args.peer) - {"torch", "onnx"}:
        raise ConfigError("with --model the peers are torch and onnx")
    path, _ = resolve_model(args.model)
    params, header = load_model(path)
    # The path `jaxstyle apply` runs: CPU convs kept off YNNPACK (see fastconv).
    report = run_model_bench(params, int(header["num_styles"]), float(header["width"]),
                             args.sizes, args.batch or [1], [args.precision], args.peer,
                             args.steps, args.warmup, args.block,
                             log=lambda message: print(message, file=sys.stderr),
                             conv_paths=["no-ynn"])
    machine = report["machine"]
    print(f"# {machine['date']}  {machine['device']} ({machine['backend']}, "
          f"{machine['cpus']} CPUs)  jax {machine['jax']}  {path.name}: width "
          f"{header['width']}, {header['num_styles']} style(s)")
    print(format_model_table(report["results"]))
    rows = [r for r in report["results"] if "ms_per_image" in r]
    if rows and not args.json:
        print(f"best: {min(np.asarray([r['ms_per_image'] for r in rows])):.1f} ms per image")
    return _write_json(args, report)


def _write_json(args, report) -> int:
    from jaxstyle.files import atomic_write

    if args.json:
        with atomic_write(args.json) as f:
            f.write(json.dumps(report, indent=2, default=str).encode())
    return 0


def cmd_bench(args) -> int:
    from jaxstyle.bench.harness import format_batch_table, format_table, run_bench

    if args.steps < 1 or args.warmup < 0 or args.block < 1:
        raise ConfigError("--steps and --block must be >= 1 and --warmup >= 0")
    if args.batch and (min(args.batch) < 1 or (args.peer and not args.model)):
        raise ConfigError("--batch sizes must be >= 1, and peers time single images only")
    enable_compile_cache(args.compile_cache)
    if args.model:
        return _model_bench(args)
    if "onnx" in args.peer:
        raise ConfigError("the onnx peer times feed-forward models: add --model")
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
    return _write_json(args, report)
