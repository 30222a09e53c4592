"""Quality of feed-forward models against the optimiser: seed loss, layout and grid.

    jaxstyle bench eval-feedforward jaxstyle/models/paintings.jxs [MORE MODELS] --size 256 \
        --photos coffee.jpg astronaut.jpg /tmp/heldout/*.jpg --out docs/fast.png

For each held-out photo and each style of the model: the network's output and Gatys (the
seed's Keras Adam from the photo) after `--gatys-steps` steps, at the same size, each scored
with the seed loss (same VGG19, layers, weights and style-image size as the Gatys run), the
layout (`jaxstyle.quality.layout_score`) and the grid (`grid_excess`). The issue-18 targets
are checked per row: layout >= min(0.85, Gatys' layout - 0.05), loss <= 1.5x Gatys', grid
<= 0.05. Several models are scored on the same cached Gatys references, side by side. Prints
a Markdown table (each row also to stderr as it is scored) and a per-model summary; --out
writes photo | style | network | Gatys rows for the first model and the first two photos.
The network's ms is one warm call after a compiling one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle.bench.fixtures import vgg_params
from jaxstyle.bench.scoring import (
    DEFAULT_CACHE,
    eval_config,
    gatys_reference,
    load_pair,
    picture,
    score,
    warm_call,
)
from jaxstyle.bench.timing import machine_line, markdown_table
from jaxstyle.errors import ConfigError
from jaxstyle.feedforward.apply import make_stylizer, resolve_model, style_weights_for
from jaxstyle.feedforward.modelfile import load_model

EXAMPLES = ["jaxstyle bench eval-feedforward paintings --photos coffee.jpg astronaut.jpg "
            "/tmp/heldout/*.jpg",
            "jaxstyle bench eval-feedforward jaxstyle/models/paintings.jxs OLD.jxs --size 256 "
            "--json /tmp/scores.json --out docs/fast.png"]

LOSS_TARGET = 1.5   # x Gatys-100's seed loss, on a CPU
LAYOUT_FLOOR = 0.85
LAYOUT_SLACK = 0.05
GRID_TARGET = 0.05


def layout_target(gatys_layout: float) -> float:
    return min(LAYOUT_FLOOR, gatys_layout - LAYOUT_SLACK)


def one_pass(stylizer: Any, content: Any, weights: Any) -> np.ndarray:
    return np.asarray(stylizer(content[None], weights))[0]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="feed-forward models (.jxs files or built-in names), scored side by "
                        "side; the first one's styles are scored")
    p.add_argument("--size", type=int, default=256, help="longer side of the photos, px")
    p.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"],
                   help="held-out photos (paths, or names among the shared images)")
    p.add_argument("--gatys-steps", type=int, default=100,
                   help="Adam steps of the Gatys reference")
    p.add_argument("--styles", nargs="+", help="only these styles of the model")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help="Gatys references are kept here between runs")
    p.add_argument("--json", metavar="OUT", help="write every row here")
    p.add_argument("--out", metavar="PNG",
                   help="picture: photo | style | network | Gatys, per style")
    add_weights_option(p)


def run(args: argparse.Namespace) -> int:
    print(machine_line(), flush=True)
    params = vgg_params(args.weights)
    cfg = eval_config(args.size, args.gatys_steps)
    models = []
    for model in args.models:
        path, _ = resolve_model(model)
        net_params, header = load_model(path)
        models.append((model, header, make_stylizer(net_params, header)))
    styles = [s["name"] for s in models[0][1]["styles"]
              if not args.styles or s["name"] in args.styles]
    if not styles:
        raise ConfigError(f"none of --styles {args.styles} is a style of {args.models[0]}")
    headers = ["model", "photo", "style", "loss", f"x Gatys-{args.gatys_steps}",
               "layout (Gatys)", "grid", "ms"]
    rows, cells, panels = [], [], []
    for photo in args.photos:
        for name in styles:
            content, style = load_pair(photo, f"{name}.jpg", cfg)
            gatys = gatys_reference(params, content, style, cfg, args.cache)
            reference = score(params, content, style, gatys, cfg)
            for label, header, stylizer in models:
                weights = np.asarray(style_weights_for(header, name))[None]
                output, seconds = warm_call(one_pass, stylizer, content, weights)
                ours = score(params, content, style, output, cfg)
                ratio = ours["loss"] / reference["loss"]
                passed = (ours["layout"] >= layout_target(reference["layout"]),
                          ratio <= LOSS_TARGET, ours["grid"] <= GRID_TARGET)
                rows.append({"model": label, "photo": Path(photo).name, "style": name,
                             **ours, "ratio": ratio, "gatys": reference, "passed": passed})
                cells.append([Path(label).name, Path(photo).name, name, f"{ours['loss']:.3g}",
                              f"{ratio:.2f}",
                              f"{ours['layout']:.2f} ({reference['layout']:.2f})",
                              f"{ours['grid']:+.3f}", f"{1e3 * seconds:.0f}"])
                print(" | ".join(cells[-1]), file=sys.stderr, flush=True)
                if label == args.models[0] and photo in args.photos[:2]:
                    panels.append((content, style, output, gatys))
    print(markdown_table(headers, cells))
    print()
    for label, _, _ in models:
        mine = [r for r in rows if r["model"] == label]
        flags = np.array([r["passed"] for r in mine])
        print(f"{label}: median x Gatys {np.median([r['ratio'] for r in mine]):.2f}, "
              f"median layout {np.median([r['layout'] for r in mine]):.3f}, "
              f"max grid {max(r['grid'] for r in mine):+.3f}; rows meeting the layout / "
              f"loss / grid targets: {flags[:, 0].sum()} / {flags[:, 1].sum()} / "
              f"{flags[:, 2].sum()} of {len(mine)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.out:
        picture(panels, args.out)
    return 0
