"""Each shipped model has a card beside it, and its card's listing is what the model says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jaxstyle.cli import main

MODELS = Path(__file__).resolve().parent.parent / "jaxstyle" / "models"
SHIPPED = sorted(MODELS.glob("*.jxs"))


def test_every_model_has_a_card_and_nothing_else_ships_there():
    assert {p.stem for p in SHIPPED} >= {"paintings", "any", "any-vgg", "wct"}
    assert {p.name for p in MODELS.iterdir()} == (
        {p.name for p in SHIPPED} | {p.with_suffix(".md").name for p in SHIPPED})


@pytest.mark.parametrize("model", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_the_cards_listing_is_what_apply_list_prints(model, capsys):
    card = model.with_suffix(".md").read_text()
    block = re.search(r"<!-- listing:[^\n]*-->\n```text\n(.*?)```", card, re.DOTALL)
    assert block, f"{model.stem}.md has no listing block"
    assert main(["apply", model.stem, "--list"]) == 0
    assert block[1] == capsys.readouterr().out, (
        f"{model.stem}.md is stale: run python scripts/model_cards.py")
    for section in ("**Time:**", "**Data:**", "**Licences:**"):
        assert section in card
