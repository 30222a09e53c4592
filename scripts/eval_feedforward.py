"""Quality of a feed-forward model against the optimiser, scored by the seed loss.

    python scripts/eval_feedforward.py jaxstyle/models/paintings.jxs --size 256 \
        --photos coffee.jpg astronaut.jpg --steps 300 --out docs/fast.png

For each held-out photo and each style of the model: the network's output, and Gatys (the
seed's Keras Adam from the content image) after 100 and after `--steps` steps, all at the
same size, each scored with the seed loss (same VGG19, layers, weights and style-image size as
the Gatys run). Also times the network and the optimisation to the network's loss. Prints a
Markdown table; writes a picture row photo | style | network | Gatys per style with --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle import StyleConfig, load_image, loss_fn, make_targets, save_image  # noqa: E402
from jaxstyle.feedforward.apply import make_stylizer, resolve_model, style_weights_for  # noqa: E402
from jaxstyle.feedforward.modelfile import load_model  # noqa: E402
from jaxstyle.gatys import stylize  # noqa: E402
from jaxstyle.gatys.pipeline import style_size  # noqa: E402
from jaxstyle.images import resize  # noqa: E402
from jaxstyle.vgg import prepare_params  # noqa: E402
from jaxstyle.weights.fetch import resolve_params  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"


def seed_loss(params, content, style, image, cfg) -> float:
    targets = make_targets(params, content, style, cfg)
    return float(loss_fn(params, targets, np.asarray(image)[None], cfg)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--photos", nargs="+", default=["coffee.jpg"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--styles", nargs="+", help="only these styles of the model")
    parser.add_argument("--out", help="picture: photo | style | network | Gatys, per style")
    args = parser.parse_args()
    params = prepare_params(resolve_params(progress=False, log=lambda m: None))
    path, _ = resolve_model(args.model)
    net_params, header = load_model(path)
    stylizer = make_stylizer(net_params, header)
    cfg = StyleConfig(steps=args.steps, steps_per_epoch=args.steps, max_dim=args.size)
    styles = {s["name"]: s for s in header["styles"]
              if not args.styles or s["name"] in args.styles}
    rows, panels = [], []
    print("| photo | style | network | Gatys 100 | Gatys " + str(args.steps) +
          " | content image | network ms | Gatys s to network's loss |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for photo in args.photos:
        content = load_image(IMAGES / photo, args.size)
        for name in styles:
            style_file = IMAGES / f"{name}.jpg"
            style = load_image(style_file, None)
            style = resize(style, style_size(style.shape[:2], content.shape[:2], cfg))
            weights = np.asarray(style_weights_for(header, name))[None]
            stylizer(content[None], weights)  # compile
            started = time.perf_counter()
            network = np.asarray(stylizer(content[None], weights))[0]
            network_ms = 1e3 * (time.perf_counter() - started)
            net_loss = seed_loss(params, content, style, network, cfg)
            started = time.perf_counter()
            reached = [None]

            def when_reached(step, metrics, state, began=started, target=net_loss,
                             reached=reached):
                if reached[0] is None and float(metrics["loss"]) <= target:
                    reached[0] = time.perf_counter() - began

            gatys, history = stylize(params, content, style, cfg, callback=when_reached)
            losses = [h["loss"] for h in history]
            gatys_100 = losses[100] if len(losses) > 100 else float("nan")
            gatys_final = seed_loss(params, content, style, np.asarray(gatys)[0], cfg)
            content_loss = losses[0]
            to_match = f"{reached[0]:.0f}" if reached[0] is not None else f"> {args.steps} steps"
            print(f"| {photo} | {name} | {net_loss:.3g} | {gatys_100:.3g} | {gatys_final:.3g} | "
                  f"{content_loss:.3g} | {network_ms:.0f} | {to_match} |", flush=True)
            rows.append((photo, name, net_loss, gatys_100, gatys_final))
            panels.append((content, style, network, np.asarray(gatys)[0]))
    if args.out:
        height = panels[0][0].shape[0]
        gap = np.ones((height, 6, 3), np.float32)
        lines = []
        for images in panels:
            tiles = []
            for image in images:
                tiles += [resize(image, (height, round(image.shape[1] * height / image.shape[0]))),
                          gap]
            lines.append(np.concatenate(tiles[:-1], axis=1))
            lines.append(np.ones((6, lines[-1].shape[1], 3), np.float32))
        width = min(line.shape[1] for line in lines)
        save_image(args.out, np.concatenate([line[:, :width] for line in lines[:-1]]))


if __name__ == "__main__":
    main()
