"""Quality of the arbitrary-style decoder (engine 3) against the per-style network and Gatys.

    python scripts/eval_arbitrary.py [--decoder any] [--model paintings] [--size 256] \
        [--photos coffee.jpg astronaut.jpg] [--gatys-steps 100] [--out docs/any.png]

For each held-out photo and painting (none of them in the decoder's training data; the
paintings are the per-style network's own styles): engine 3's output (alpha 1, one pass),
the per-style network's output, and Gatys (the seed's Keras Adam from the photo) after
`--gatys-steps` steps, all at the same size and scored with the seed loss (same VGG19,
layers, weights and style-image size as the Gatys run). Prints a Markdown table; with --out
writes photo | painting | any-style result rows for the first photo.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle import StyleConfig, load_image, save_image  # noqa: E402
from jaxstyle.arbitrary.apply import apply_any  # noqa: E402
from jaxstyle.arbitrary.decoderfile import load_decoder  # noqa: E402
from jaxstyle.arbitrary.transfer import ArbitraryStylizer  # noqa: E402
from jaxstyle.feedforward.apply import apply_model, make_stylizer, resolve_model  # noqa: E402
from jaxstyle.feedforward.modelfile import load_model  # noqa: E402
from jaxstyle.gatys import stylize  # noqa: E402
from jaxstyle.gatys.pipeline import style_size  # noqa: E402
from jaxstyle.images import resize  # noqa: E402
from jaxstyle.vgg import prepare_params  # noqa: E402
from jaxstyle.weights.fetch import resolve_params  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from eval_feedforward import IMAGES, seed_loss  # noqa: E402

PAINTINGS = ("starry_night", "shipwreck", "woman_with_hat")


def picture(rows: list[tuple[np.ndarray, ...]], path: str) -> None:
    """Rows of images side by side at one height, white gaps between."""
    height = rows[0][0].shape[0]
    lines = []
    for images in rows:
        tiles = []
        for image in images:
            width = round(image.shape[1] * height / image.shape[0])
            tiles += [resize(image, (height, width)), np.ones((height, 6, 3), np.float32)]
        lines.append(np.concatenate(tiles[:-1], axis=1))
    width = min(line.shape[1] for line in lines)
    gap = np.ones((6, width, 3), np.float32)
    stacked = [part for line in lines for part in (line[:, :width], gap)][:-1]
    save_image(path, np.concatenate(stacked))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default="any")
    parser.add_argument("--model", default="paintings", help="per-style network to compare")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"])
    parser.add_argument("--paintings", nargs="+", default=list(PAINTINGS))
    parser.add_argument("--gatys-steps", type=int, default=100)
    parser.add_argument("--out", help="picture: photo | painting | result, per pair")
    args = parser.parse_args()
    params = prepare_params(resolve_params(progress=False, log=lambda m: None))
    decoder_params, decoder_header = load_decoder(resolve_model(args.decoder)[0])
    any_style = ArbitraryStylizer(params, decoder_params, decoder_header["width"])
    net_params, net_header = load_model(resolve_model(args.model)[0])
    network = make_stylizer(net_params, net_header)
    cfg = StyleConfig(steps=args.gatys_steps, steps_per_epoch=args.gatys_steps,
                      max_dim=args.size)
    print(f"| photo | painting | any style (engine 3) | per-style network | ratio | Gatys "
          f"{args.gatys_steps} | photo itself | engine 3 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    panels, ratios = [], []
    for photo in args.photos:
        content = load_image(IMAGES / photo, args.size)
        for name in args.paintings:
            style = load_image(IMAGES / f"{name}.jpg", None)
            style = resize(style, style_size(style.shape[:2], content.shape[:2], cfg))
            apply_any(None, decoder_params, decoder_header, content, [style],
                      stylizer=any_style)  # compile
            started = time.perf_counter()
            ours = apply_any(None, decoder_params, decoder_header, content, [style],
                             stylizer=any_style)
            ms = 1e3 * (time.perf_counter() - started)
            trained = apply_model(net_params, net_header, content, style=name, stylizer=network)
            gatys, history = stylize(params, content, style, cfg)
            ours_loss = seed_loss(params, content, style, ours, cfg)
            net_loss = seed_loss(params, content, style, trained, cfg)
            gatys_loss = seed_loss(params, content, style, np.asarray(gatys)[0], cfg)
            ratios.append(ours_loss / net_loss)
            print(f"| {photo} | {name} | {ours_loss:.3g} | {net_loss:.3g} | "
                  f"{ours_loss / net_loss:.2f} | {gatys_loss:.3g} | {history[0]['loss']:.3g} | "
                  f"{ms:.0f} |", flush=True)
            if photo == args.photos[0]:  # the picture: one photo, every painting
                panels.append((content, style, ours))
    print(f"\nmedian ratio engine 3 / per-style network: {np.median(ratios):.2f} "
          f"(target <= 1.25)")
    if args.out:
        picture(panels, args.out)


if __name__ == "__main__":
    main()
