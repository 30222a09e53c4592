"""`jaxstyle bench model`: time a feed-forward network's one pass (a shipped or saved model,
or random params of a width) in fp32 and bf16 and under XLA's CPU conv paths, beside PyTorch
eager and ONNX Runtime running the same network."""

from __future__ import annotations

import argparse
import sys

from jaxstyle.bench.model_bench import (
    PEERS,
    PRECISIONS,
    XLA_CONV_PATHS,
    format_model_table,
    run_model_bench,
)
from jaxstyle.bench.step import add_timing_arguments, check_timing_arguments, write_json
from jaxstyle.bench.timing import machine_line

EXAMPLES = ["jaxstyle bench model --model paintings --sizes 256 512 1024 --batch 1 8 "
            "--peer torch onnx",
            "jaxstyle bench model --width 0.5 --sizes 256 --precision fp32 "
            "--xla-conv default no-ynn --peer onnx"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="MODEL",
                   help="a .jxs file or built-in name; default: random params (--width, --styles)")
    p.add_argument("--width", type=float, default=1.0, help="width of random params")
    p.add_argument("--styles", type=int, default=1, help="style count of random params")
    p.add_argument("--seed", type=int, default=0, help="seed of random params")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square sizes, px")
    p.add_argument("--batch", type=int, nargs="+", default=[1], help="images per call")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=["fp32"],
                   help="jaxstyle precisions (peers run fp32); the first is the peers' "
                        "reference")
    # no-ynn is the path `jaxstyle apply` runs (CPU convs kept off YNNPACK; see fastconv).
    p.add_argument("--xla-conv", nargs="+", choices=XLA_CONV_PATHS, default=["no-ynn"],
                   help="XLA CPU conv paths to time; no-ynn keeps convs off YNNPACK")
    p.add_argument("--peer", nargs="+", choices=PEERS, default=[],
                   help="also time these (pip install -e '.[peers]'); a missing one is skipped")
    add_timing_arguments(p, steps=10, warmup=2, block=3)
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON")


def run(args: argparse.Namespace) -> int:
    check_timing_arguments(args)
    if args.model:
        from jaxstyle.feedforward.apply import resolve_model
        from jaxstyle.feedforward.modelfile import load_model

        path, _ = resolve_model(args.model)
        params, header = load_model(path)
        num_styles, width, name = int(header["num_styles"]), float(header["width"]), path.name
    else:
        from jaxstyle.feedforward.network import init_params

        num_styles, width, name = args.styles, args.width, "random params"
        params = init_params(args.seed, num_styles, width)
    report = run_model_bench(params, num_styles, width, args.sizes, args.batch, args.precision,
                             args.peer, args.steps, args.warmup, args.block,
                             log=lambda message: print(message, file=sys.stderr),
                             conv_paths=args.xla_conv)
    print(f"{machine_line(report['machine'])}  {name}: width {width}, {num_styles} style(s)")
    print(format_model_table(report["results"]))
    write_json(args.json, report)
    return 0
