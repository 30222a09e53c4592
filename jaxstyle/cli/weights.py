"""`jaxstyle weights fetch|info`: fetch the VGG19 weights now, or describe a weights file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from jaxstyle.cli.common import UsageError, add_weights_option


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_command(commands, "weights", "fetch or describe the VGG19 weights",
                    ["jaxstyle weights fetch", "jaxstyle weights info --weights my_vgg19.h5"])
    p.add_argument("action", choices=("fetch", "info"),
                   help="fetch: download and cache the default weights; info: describe a "
                        "weights file's layers")
    add_weights_option(p)
    p.set_defaults(handler=cmd_weights)


def cmd_weights(args: argparse.Namespace) -> int:
    from jaxstyle.weights.fetch import fetch_weights, weights_info

    if args.action == "fetch":
        if args.weights:
            raise UsageError("weights fetch downloads the default weights; --weights is for "
                             "the other commands")
        print(fetch_weights(progress=True, log=lambda m: print(m, file=sys.stderr)))
        return 0
    for key, value in weights_info(args.weights).items():
        if isinstance(value, dict):
            print(f"{key}:")
            for name, shape in value.items():
                print(f"  {name}: {shape}")
        else:
            print(f"{key}: {value}")
    return 0
