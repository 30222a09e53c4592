"""Quality of feed-forward models against the optimiser: seed loss, layout and grid.

    python scripts/eval_feedforward.py jaxstyle/models/paintings.jxs [MORE MODELS] --size 256 \
        --photos coffee.jpg astronaut.jpg /tmp/heldout/*.jpg --out docs/fast.png

For each held-out photo and each style of the model: the network's output and Gatys (the
seed's Keras Adam from the photo) after `--gatys-steps` steps, at the same size, each scored
with the seed loss (same VGG19, layers, weights and style-image size as the Gatys run), the
layout (`jaxstyle.quality.layout_score`) and the grid (`grid_excess`). The issue-18 targets
are checked per row: layout >= min(0.85, Gatys' layout - 0.05), loss <= 1.5x Gatys', grid
<= 0.05. Several models are scored on the same cached Gatys references, side by side. Prints
a Markdown table and a per-model summary; --out writes photo | style | network | Gatys rows
for the first model and the first two photos.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scoring import (  # noqa: E402
    DEFAULT_CACHE,
    eval_config,
    gatys_reference,
    load_pair,
    picture,
    score,
)

from jaxstyle.feedforward.apply import make_stylizer, resolve_model, style_weights_for  # noqa: E402
from jaxstyle.feedforward.modelfile import load_model  # noqa: E402
from jaxstyle.vgg import prepare_params  # noqa: E402
from jaxstyle.weights.fetch import resolve_params  # noqa: E402

LOSS_TARGET = 1.5   # x Gatys-100's seed loss, on a CPU
LAYOUT_FLOOR = 0.85
LAYOUT_SLACK = 0.05
GRID_TARGET = 0.05


def layout_target(gatys_layout: float) -> float:
    return min(LAYOUT_FLOOR, gatys_layout - LAYOUT_SLACK)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"])
    parser.add_argument("--gatys-steps", type=int, default=100)
    parser.add_argument("--styles", nargs="+", help="only these styles of the model")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="Gatys references are kept here between runs")
    parser.add_argument("--json", help="write every row here")
    parser.add_argument("--out", help="picture: photo | style | network | Gatys, per style")
    args = parser.parse_args()
    params = prepare_params(resolve_params(progress=False, log=lambda m: None))
    cfg = eval_config(args.size, args.gatys_steps)
    models = []
    for model in args.models:
        path, _ = resolve_model(model)
        net_params, header = load_model(path)
        models.append((model, header, make_stylizer(net_params, header)))
    styles = [s["name"] for s in models[0][1]["styles"]
              if not args.styles or s["name"] in args.styles]
    print(f"| model | photo | style | loss | x Gatys-{args.gatys_steps} | layout (Gatys) | grid | "
          "ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows, panels = [], []
    for photo in args.photos:
        for name in styles:
            content, style = load_pair(photo, f"{name}.jpg", cfg)
            gatys = gatys_reference(params, content, style, cfg, args.cache)
            reference = score(params, content, style, gatys, cfg)
            for label, header, stylizer in models:
                weights = np.asarray(style_weights_for(header, name))[None]
                stylizer(content[None], weights)  # compile
                started = time.perf_counter()
                output = np.asarray(stylizer(content[None], weights))[0]
                ms = 1e3 * (time.perf_counter() - started)
                ours = score(params, content, style, output, cfg)
                ratio = ours["loss"] / reference["loss"]
                passed = (ours["layout"] >= layout_target(reference["layout"]),
                          ratio <= LOSS_TARGET, ours["grid"] <= GRID_TARGET)
                rows.append({"model": label, "photo": Path(photo).name, "style": name,
                             **ours, "ratio": ratio, "gatys": reference, "passed": passed})
                print(f"| {Path(label).name} | {Path(photo).name} | {name} | "
                      f"{ours['loss']:.3g} | {ratio:.2f} | {ours['layout']:.2f} "
                      f"({reference['layout']:.2f}) | {ours['grid']:+.3f} | {ms:.0f} |",
                      flush=True)
                if label == args.models[0] and photo in args.photos[:2]:
                    panels.append((content, style, output, gatys))
    print()
    for label, _, _ in models:
        mine = [r for r in rows if r["model"] == label]
        passed = np.array([r["passed"] for r in mine])
        print(f"{label}: median x Gatys {np.median([r['ratio'] for r in mine]):.2f}, "
              f"median layout {np.median([r['layout'] for r in mine]):.3f}, "
              f"max grid {max(r['grid'] for r in mine):+.3f}; rows meeting the layout / "
              f"loss / grid targets: {passed[:, 0].sum()} / {passed[:, 1].sum()} / "
              f"{passed[:, 2].sum()} of {len(mine)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.out:
        picture(panels, args.out)


if __name__ == "__main__":
    main()
