"""Write into each shipped model's card (`jaxstyle/models/NAME.md`) what `jaxstyle apply NAME
--list` prints, so the card that ships beside the model says what the file holds.

Run it after a model file changes; the rest of each card (purpose, training time, data and
licences) is written by hand, and the recipe behind it is in docs/models.md.
`tests/test_model_cards.py` fails when a card's listing and its model disagree, or a model
has no card.

    python scripts/model_cards.py
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

from jaxstyle.cli import main as jaxstyle_main

MODELS = Path(__file__).resolve().parent.parent / "jaxstyle" / "models"
BLOCK = re.compile(r"(<!-- listing:[^\n]*-->\n```text\n)(.*?)(```)", re.DOTALL)


def listing(name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if jaxstyle_main(["apply", name, "--list"]) != 0:
            raise SystemExit(f"jaxstyle apply {name} --list failed")
    return out.getvalue()


def main() -> int:
    for model in sorted(MODELS.glob("*.jxs")):
        card = model.with_suffix(".md")
        if not card.is_file():
            print(f"error: {model.name} has no card {card.name}", file=sys.stderr)
            return 1
        text = card.read_text()
        if not BLOCK.search(text):
            print(f"error: {card.name} has no listing block", file=sys.stderr)
            return 1
        printed = listing(model.stem)
        card.write_text(BLOCK.sub(lambda m, new=printed: m[1] + new + m[3], text, count=1))
        print(f"wrote {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
