"""Every command's --help: each option's default appears once (issue 28)."""

from __future__ import annotations

import argparse
import re

import pytest

from jaxstyle.bench import BENCHMARKS
from jaxstyle.cli import build_parser
from jaxstyle.cli.bench import benchmark_parser


def _subparsers(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            yield from action.choices.items()


def _help_texts():
    root = build_parser()
    yield "jaxstyle", root.format_help()
    for name, sub in _subparsers(root):
        yield name, sub.format_help()
        for inner, parser in _subparsers(sub):  # e.g. `jaxstyle weights fetch`
            yield f"{name} {inner}", parser.format_help()
    for name in BENCHMARKS:  # each benchmark builds its parser when it runs
        yield f"bench {name}", benchmark_parser(name)[0].format_help()


HELP = list(_help_texts())


def test_every_command_is_walked():
    names = {name for name, _ in HELP}
    assert {"stylize", "apply", "train", "export", "serve", "video", "demo"} <= names
    assert {"bench step", "bench model"} <= names


def test_bench_lists_every_benchmark_sorted():
    text = dict(HELP)["bench"]
    listed = re.findall(r"^  (\S+)  ", text.split("positional arguments")[0], re.MULTILINE)
    assert listed == sorted(BENCHMARKS)


@pytest.mark.parametrize("name,text", HELP, ids=[name for name, _ in HELP])
def test_each_options_default_is_said_once(name, text):
    # One paragraph per option: its lines up to the next option (or the end).
    options = re.split(r"\n(?=  +-)", text)
    for option in options:
        flat = " ".join(option.split())
        assert len(re.findall(r"\(default:", flat)) <= 1, (name, flat)
        assert "(default: None)" not in flat and "(default: False)" not in flat, (name, flat)
        # A choice may be named "default" (`--xla-conv {default,no-ynn}`): not a statement.
        said = re.findall(r"\bdefault\b", re.sub(r"\{[^}]*\}", "", flat), re.IGNORECASE)
        assert len(said) <= 1 or "(default:" not in flat, (name, flat)


# ---------------------------------------------------------------------- every option (issue 35)

def _parsers():
    root = build_parser()
    yield "jaxstyle", root
    for name, sub in _subparsers(root):
        yield name, sub
        for inner, parser in _subparsers(sub):
            yield f"{name} {inner}", parser
    for name in BENCHMARKS:
        yield f"bench {name}", benchmark_parser(name)[0]


def _options():
    """(command, option, its --help paragraph flattened) for every option a user can give."""
    for name, parser in _parsers():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                   argparse._SubParsersAction)):
                continue
            flag = "/".join(action.option_strings) or action.dest
            yield name, flag, action, " ".join(formatter._format_action(action).split())


OPTIONS = list(_options())
# A Python repr where a user's value belongs: ('a',) ['a'] (1, 2) [1] () []
_REPR = re.compile(r"[(\[]\s*'[^']*'\s*[,)\]]|[(\[]-?\d[\d.e+-]*\s*(,\s*-?\d|,\s*\)|\])"
                   r"|\(default: (\(\)|\[\])")


def _has_default(value) -> bool:
    if value is None or value is False or value is argparse.SUPPRESS:
        return False
    return not (isinstance(value, (str, list, tuple)) and len(value) == 0)


@pytest.mark.parametrize("name,flag,action,text", OPTIONS,
                         ids=[f"{name} {flag}" for name, flag, _, _ in OPTIONS])
def test_every_option_has_help_and_shows_its_default(name, flag, action, text):
    assert action.help and action.help.strip(), f"{name} {flag}: no help text"
    if _has_default(action.default):
        assert re.search(r"\bdefault\b", text, re.IGNORECASE), \
            f"{name} {flag}: default {action.default!r} not shown: {text}"
    assert not _REPR.search(text), f"{name} {flag}: a Python repr in --help: {text}"


def test_sequence_defaults_print_as_typed():
    text = dict(HELP)["stylize"]
    flat = " ".join(text.split())
    assert "(default: block5_conv2)" in flat
    assert ("(default: block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1)"
            in flat.replace(", ", ","))
    step = " ".join(dict(HELP)["bench step"].split())
    assert "(default: 128 256 512)" in step  # nargs="+": space-separated, as typed
