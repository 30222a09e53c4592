"""Every command's --help: each option's default appears once (issue 28)."""

from __future__ import annotations

import re

import pytest

from jaxstyle.cli import build_parser


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


HELP = list(_help_texts())


def test_every_command_is_walked():
    names = {name for name, _ in HELP}
    assert {"stylize", "apply", "train", "export", "serve", "video", "demo"} <= names


@pytest.mark.parametrize("name,text", HELP, ids=[name for name, _ in HELP])
def test_each_options_default_is_said_once(name, text):
    # One paragraph per option: its lines up to the next option (or the end).
    options = re.split(r"\n(?=  +-)", text)
    for option in options:
        flat = " ".join(option.split())
        assert len(re.findall(r"\(default:", flat)) <= 1, (name, flat)
        assert "(default: None)" not in flat and "(default: False)" not in flat, (name, flat)
        said = re.findall(r"\bdefault\b", flat, re.IGNORECASE)
        assert len(said) <= 1 or "(default:" not in flat, (name, flat)
