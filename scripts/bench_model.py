r"""Time the feed-forward TransformerNet (fp32, bf16) beside PyTorch eager and ONNX Runtime.

    python scripts/bench_model.py --width 0.5 --sizes 256 512 1024 --batch 1 8 \
        --peer torch onnx --steps 10
    python scripts/bench_model.py --model styles.jaxstyle --sizes 512 --peer onnx --json out.json
    python scripts/bench_model.py --width 0.5 --sizes 256 --precision fp32 \
        --xla-conv default no-ynn --peer onnx

Random params of the given width and style count unless --model names a saved model. The
peers need `pip install -e ".[peers]"`; a missing one is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxstyle.bench.model_bench import (  # noqa: E402
    PEERS,
    PRECISIONS,
    XLA_CONV_PATHS,
    format_model_table,
    run_model_bench,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", metavar="FILE", help="a saved feed-forward model")
    parser.add_argument("--width", type=float, default=1.0, help="width of random params")
    parser.add_argument("--styles", type=int, default=1, help="style count of random params")
    parser.add_argument("--seed", type=int, default=0, help="seed of random params")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square px")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="images per call")
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="jaxstyle precisions (peers run fp32); the first is the peers' "
                             "reference")
    parser.add_argument("--xla-conv", nargs="+", choices=XLA_CONV_PATHS, default=["default"],
                        help="XLA conv paths to time; no-ynn keeps CPU convs off YNNPACK")
    parser.add_argument("--peer", nargs="+", choices=PEERS, default=[])
    parser.add_argument("--steps", type=int, default=10, help="timed calls per implementation")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls after compiling")
    parser.add_argument("--block", type=int, default=3, help="calls per turn when alternating")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.block < 1:
        parser.error("--steps and --block must be >= 1 and --warmup >= 0")

    if args.model:
        from jaxstyle.feedforward.modelfile import load_model

        params, header = load_model(args.model)
        num_styles, width = int(header["num_styles"]), float(header["width"])
    else:
        from jaxstyle.feedforward.network import init_params

        num_styles, width = args.styles, args.width
        params = init_params(args.seed, num_styles, width)

    report = run_model_bench(params, num_styles, width, args.sizes, args.batch, args.precision,
                             args.peer, args.steps, args.warmup, args.block,
                             log=lambda message: print(message, file=sys.stderr),
                             conv_paths=args.xla_conv)
    machine = report["machine"]
    print(f"# {machine['date']}  {machine['device']} ({machine['backend']}, {machine['cpus']} "
          f"CPUs)  jax {machine['jax']}  width {width}  {num_styles} style(s)")
    print(format_model_table(report["results"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
