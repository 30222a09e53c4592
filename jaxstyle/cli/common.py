"""What every command shares: the parser's house style, option types, options derived from
`StyleConfig`, progress output, loading weights, and output-path checks."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Optional

from jaxstyle.config import StyleConfig
from jaxstyle.errors import JaxstyleError
from jaxstyle.images import DEFAULT_MAX_PIXELS

EXIT_ERROR = 2


class UsageError(JaxstyleError):
    """A bad combination of command-line options."""


def log(message: str, quiet: bool = False) -> None:
    """A status line on stderr (stdout stays for data)."""
    if not quiet:
        print(message, file=sys.stderr)


# --------------------------------------------------------------------------- option types


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def layer_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def float_list(text: str) -> tuple[float, ...]:
    return tuple(finite_float(v) for v in text.replace(",", " ").split())


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default said once, as a user would type it: argparse's "(default: X)" is
    appended only where the help does not state its own default already, and never for None,
    an off flag or an empty list (which would read "(default: None)"). A list or tuple prints
    comma-joined for an option that takes one comma-separated argument (`block5_conv2`, not
    `('block5_conv2',)`), space-joined for one that takes several arguments (`128 256`)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        # `is`, not `in`: 0 == False, and a default of 0 is worth saying.
        if ("default" in text.lower() or default is None or default is False
                or default is argparse.SUPPRESS
                or (isinstance(default, (list, tuple)) and not default)):
            return text
        if "%(default)" in text:  # BooleanOptionalAction (Python < 3.13) says it itself
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL,
                                                              argparse.ZERO_OR_MORE):
            return text  # a required positional: argparse says no default for one either
        shown = format_default(default, several=action.nargs not in (None, argparse.OPTIONAL))
        return f"{text} (default: {shown.replace('%', '%%')})"

    def _split_lines(self, text, width):
        # argparse's wrapping, but a long comma-joined word (a default list) breaks after a
        # comma rather than mid-name.
        return _CommaWrapper(width).wrap(self._whitespace_matcher.sub(" ", text).strip())


class _CommaWrapper(textwrap.TextWrapper):
    def _split(self, text):
        return [piece for chunk in super()._split(text)
                for piece in re.split(r"(?<=,)(?=[^\s,])", chunk)]


def format_default(value: Any, several: bool = False) -> str:
    """A default as a user types it on the command line: lists and tuples joined by commas,
    or by spaces where the option takes several arguments (`several`)."""
    if isinstance(value, (list, tuple)):
        return (" " if several else ",").join(format_default(v) for v in value)
    return str(value)


class Parser(argparse.ArgumentParser):
    """argparse with the tool's one-line `error: ...` (exit 2) instead of usage + error."""

    def error(self, message):
        self.exit(EXIT_ERROR, f"error: {self.prog}: {message} (see --help)\n")


def add_command(commands: argparse._SubParsersAction, name: str, help: str,
                examples: list[str]) -> argparse.ArgumentParser:
    """A sub-command parser in the house style, with its examples as the epilog."""
    return commands.add_parser(name, help=help, formatter_class=Formatter,
                               epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="PATH",
                        help="Keras VGG19 weights (.h5 in any layout, .keras) or a converted "
                             ".npz; default: fetched once and cached")


def add_max_pixels_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                        help="refuse input files with more pixels than this")


# --------------------------------------------------------------------------- StyleConfig options

_OPTION_TYPES: dict[str, dict[str, Any]] = {
    "count": dict(type=positive_int), "int": dict(type=int), "float": dict(type=finite_float),
    "layers": dict(type=layer_list), "floats": dict(type=float_list),
    "floats+": dict(type=finite_float, nargs="+"), "ints+": dict(type=int, nargs="+"),
    "init": dict(), "choice": dict(),
}


class _Given(argparse.Action):
    """Marks its field as given on the command line, so a --preset does not override it."""

    def mark(self, namespace: argparse.Namespace) -> None:
        given = set(getattr(namespace, "given_config", ()))
        namespace.given_config = given | {self.dest}


class _StoreGiven(_Given, argparse._StoreAction):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        self.mark(namespace)


class _FlagGiven(_Given, argparse._StoreTrueAction):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        self.mark(namespace)


def preset_option(parser: argparse.ArgumentParser) -> None:
    """--preset NAME: a `StyleConfig.preset` as the starting point of the options."""
    from jaxstyle.config import PRESETS

    sets = "; ".join(f"{name}: " + (", ".join(f"{k}={v}" for k, v in fields.items()) or
                                   "the TensorFlow tutorial's recipe, every default below")
                     for name, fields in PRESETS.items())
    parser.add_argument("--preset", choices=tuple(PRESETS), default="seed",
                        help=f"starting settings, which options given beside it override "
                             f"({sets})")


def config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One option per `StyleConfig` field, with its default, help and type from the field."""
    preset_option(parser)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(StyleConfig):
        meta = field.metadata
        if field.name in skip or "group" not in meta:
            continue
        if meta["group"] not in groups:
            groups[meta["group"]] = parser.add_argument_group(meta["group"])
        flag = "--" + field.name.replace("_", "-")
        if meta["kind"] == "flag":
            groups[meta["group"]].add_argument(flag, action=_FlagGiven,
                                               help=meta["help"])
            continue
        options = dict(_OPTION_TYPES[meta["kind"]], default=field.default, help=meta["help"],
                       action=_StoreGiven)
        for key in ("choices", "metavar"):
            if key in meta:
                options[key] = meta[key]
        groups[meta["group"]].add_argument(flag, **options)


def config_from_args(args: argparse.Namespace, **overrides: Any) -> StyleConfig:
    """The StyleConfig the parsed options describe (fields the parser lacks keep defaults):
    the --preset's fields, except those given on the command line."""
    from jaxstyle.config import preset_fields

    values: dict[str, Any] = {}
    for field in dataclasses.fields(StyleConfig):
        if hasattr(args, field.name):
            value = getattr(args, field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    given: set[str] = getattr(args, "given_config", set())
    values.update(preset_fields(getattr(args, "preset", None) or "seed", given))
    if values.get("init") not in (None, "content", "noise"):
        values["init"] = "content"  # an init image file: the pipeline starts from it instead
    values.update(overrides)
    return StyleConfig(**values)


# --------------------------------------------------------------------------- progress


class Reporter:
    """Progress output: a tqdm bar plus lasting record lines; silent when quiet."""

    def __init__(self, total: int, quiet: bool, start: int = 0, unit: str = "step"):
        self.quiet = quiet
        self.bar = None
        self.started = time.perf_counter()
        if not quiet:
            from tqdm import tqdm
            # leave=False: the record lines and the final "saved" line are the lasting record.
            self.bar = tqdm(total=total, initial=start, unit=unit, dynamic_ncols=True,
                            leave=False, file=sys.stderr)

    def advance(self, count: int = 1, **postfix: Any) -> None:
        if self.bar is None:
            return
        self.bar.update(count)
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)

    def step(self, step: int, metrics: dict[str, Any], every: int = 10) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if step % every == 0:
            import numpy as np
            self.bar.set_postfix(loss=f"{float(np.mean(metrics['loss'])):.4g}", refresh=False)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif not self.quiet:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_losses(metrics: dict) -> str:
    """'loss L (content C, style S, tv T)', the parts where the metrics have them;
    per-image lists are shown as their mean."""
    import numpy as np

    mean = {k: float(np.mean(v)) for k, v in metrics.items()}
    parts = ", ".join(f"{name} {mean[name]:.4g}" for name in ("content", "style", "tv")
                      if name in mean)  # L-BFGS reports the loss alone
    return f"loss {mean['loss']:.4g}" + (f" ({parts})" if parts else "")


# --------------------------------------------------------------------------- files and weights


def load_params(weights_path: Optional[str | os.PathLike], quiet: bool) -> dict:
    """VGG19 params from `--weights`, or fetched once and cached."""
    from jaxstyle.weights.fetch import resolve_params

    return resolve_params(weights_path, progress=not quiet, log=lambda m: log(m, quiet))


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(output: Path, inputs: list[Path]) -> None:
    """Fail before any work if `output` is an input or cannot be written as an image."""
    from jaxstyle.images import check_writable

    for path in inputs:
        if same_file(output, path) or output.resolve() == path.resolve():
            raise UsageError(f"output {output} is also an input; choose another file name")
    check_writable(output)


def enable_compile_cache(folder: str | os.PathLike) -> None:
    """Turn on JAX's persistent compilation cache in `folder` for every compiled program."""
    import jax

    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
