"""The `jaxstyle` command: a thin layer of argparse over the library.

One module per command; each adds its parser and sets its handler. Defaults are read from
StyleConfig, never repeated here. Errors the user can fix are printed as one `error: ...` line
with exit code 2; Ctrl-C or SIGTERM saves what there is and exits 130 or 143 (128 + the
signal).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Optional

from jaxstyle.cli import (
    apply,
    bench,
    demo,
    export,
    serve,
    stylize,
    train,
    train_decoder,
    train_encoder,
    video,
    weights,
)
from jaxstyle.cli.common import EXIT_ERROR, Formatter, Parser, add_command
from jaxstyle.errors import JaxstyleError
from jaxstyle.interrupts import by_signal, exit_code, signum_of, stop_signals_raise

COMMANDS = (stylize, demo, weights, bench, train, train_decoder, train_encoder, apply, video,
            export, serve)


def build_parser() -> Parser:
    from jaxstyle import __version__

    parser = Parser(
        prog="jaxstyle", formatter_class=Formatter,
        description="Neural style transfer in JAX: optimisation (Gatys et al. 2015), "
                    "trained networks (Johnson et al. 2016) and any style in one pass "
                    "(AdaIN, Huang & Belongie 2017).",
        epilog="examples:\n  jaxstyle demo\n  jaxstyle stylize photo.jpg painting.jpg -o out.png\n"
               "  jaxstyle weights fetch\n  jaxstyle bench step --sizes 128 256\n"
               "  jaxstyle train starry.jpg --data photos/ -o starry.jxs\n"
               "  jaxstyle apply starry.jxs photo.jpg -o out.png\n"
               "  jaxstyle apply any photo.jpg --style-image painting.jpg -o out.png\n"
               "  jaxstyle export paintings -o paintings.onnx\n"
               "  jaxstyle serve --open")
    parser.add_argument("--version", action="version", version=f"jaxstyle {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands, add_command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(bench.legacy_argv(sys.argv[1:] if argv is None else list(argv)))
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        # Schedulers stop a job with SIGTERM: it must stop it as Ctrl-C does, saving what
        # there is, not kill it on the spot.
        with stop_signals_raise():
            return args.handler(args)
    except JaxstyleError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as stop:
        print(f"interrupted{by_signal(signum_of(stop))}; no file was left half-written",
              file=sys.stderr)
        return exit_code(signum_of(stop))
    except MemoryError:
        print("error: out of memory; try a smaller --max-dim or --remat", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # XLA reports device OOM as a runtime error
        if args.debug or "RESOURCE_EXHAUSTED" not in str(exc):
            raise
        print("error: out of device memory; try a smaller --max-dim, --remat or --precision "
              "bf16", file=sys.stderr)
        return EXIT_ERROR


def entry_point() -> None:
    sys.exit(main())
