"""`jaxstyle bench NAME [options]`: the benchmarks of `jaxstyle.bench`, one entry point.

The command parses only the name; the benchmark's own parser (`jaxstyle bench NAME --help`)
is built when it runs, so no benchmark's imports weigh on the others or on `jaxstyle`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from jaxstyle.errors import ConfigError


def _listing() -> str:
    from jaxstyle.bench import BENCHMARKS

    width = max(map(len, BENCHMARKS))
    lines = ["benchmarks (jaxstyle bench NAME --help for each one's options):"]
    for name, (_, summary) in sorted(BENCHMARKS.items()):
        wrapped = textwrap.wrap(summary, 96 - width)
        lines += [f"  {name:<{width}}  {wrapped[0]}"] + [" " * (width + 4) + w for w in wrapped[1:]]
    return "\n".join(lines)


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_command(commands, "bench", "run a benchmark behind BENCHMARKS.md (jaxstyle bench "
                    "NAME; --help lists them)",
                    ["jaxstyle bench step --sizes 128 256",
                     "jaxstyle bench step --sizes 256 --peer tf torch --json bench.json",
                     "jaxstyle bench model --model paintings --sizes 256 --peer onnx",
                     "jaxstyle bench video --help"])
    p.description = _listing()
    p.add_argument("name", metavar="NAME", help="the benchmark (listed above)")
    p.add_argument("options", nargs=argparse.REMAINDER, help="its options")
    p.set_defaults(handler=cmd_bench)


def legacy_argv(argv: list[str]) -> list[str]:
    """`jaxstyle bench --sizes 128` (before the benchmarks had names) -> `... bench step ...`."""
    if len(argv) >= 2 and argv[0] == "bench" and argv[1].startswith("-") and argv[1] not in (
            "-h", "--help"):
        print("jaxstyle bench: no benchmark named; timing the optimisation step (write "
              "`jaxstyle bench step ...`)", file=sys.stderr)
        return ["bench", "step", *argv[1:]]
    return argv


def benchmark_parser(name: str) -> tuple[argparse.ArgumentParser, Any]:
    """The named benchmark's own parser and module."""
    from jaxstyle.bench import BENCHMARKS, benchmark_module
    from jaxstyle.cli.common import Formatter, Parser

    if name not in BENCHMARKS:
        raise ConfigError(f"no benchmark {name!r}; choose from {', '.join(sorted(BENCHMARKS))}")
    module = benchmark_module(name)
    examples = getattr(module, "EXAMPLES", [])
    parser = Parser(prog=f"jaxstyle bench {name}", description=BENCHMARKS[name][1],
                    formatter_class=Formatter,
                    epilog="examples:\n" + "\n".join(f"  {e}" for e in examples)
                    if examples else None)
    module.add_arguments(parser)
    return parser, module


def cmd_bench(args: argparse.Namespace) -> int:
    parser, module = benchmark_parser(args.name)
    return module.run(parser.parse_args(args.options))
