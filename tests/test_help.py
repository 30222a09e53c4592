"""Every command's --help: each option's default appears once (issue 28)."""

from __future__ import annotations

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
