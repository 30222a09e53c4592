"""Quality of the arbitrary-style decoder (engine 3) against the per-style network and Gatys.

    python scripts/eval_arbitrary.py [--decoder any] [--model paintings] [--size 256] \
        [--photos coffee.jpg astronaut.jpg /tmp/heldout/*.jpg] [--gatys-steps 100] \
        [--out docs/any.png]

For each held-out photo and painting (none of them in the decoder's training data; the
paintings are the per-style network's own styles): engine 3's output (alpha 1, one pass),
the per-style network's output, and Gatys (the seed's Keras Adam from the photo) after
`--gatys-steps` steps, all at the same size, scored with the seed loss (same VGG19, layers,
weights and style-image size as the Gatys run), the layout and the grid (`jaxstyle.quality`).
Also the decoder's reconstruction PSNR (alpha 0: the photo's own features decoded) on each
photo. Prints a Markdown table and the medians; with --out writes photo | painting | result
rows for the first photo.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scoring import (  # noqa: E402
    DEFAULT_CACHE,
    IMAGES,
    eval_config,
    gatys_reference,
    image_path,
    load_pair,
    picture,
    score,
)

from jaxstyle import load_image  # noqa: E402
from jaxstyle.arbitrary.apply import apply_any  # noqa: E402
from jaxstyle.arbitrary.decoderfile import load_decoder  # noqa: E402
from jaxstyle.arbitrary.transfer import ArbitraryStylizer  # noqa: E402
from jaxstyle.feedforward.apply import apply_model, make_stylizer, resolve_model  # noqa: E402
from jaxstyle.feedforward.modelfile import load_model  # noqa: E402
from jaxstyle.vgg import prepare_params  # noqa: E402
from jaxstyle.weights.fetch import resolve_params  # noqa: E402

PAINTINGS = ("starry_night", "shipwreck", "woman_with_hat")
__all__ = ["IMAGES", "PAINTINGS", "psnr"]


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1]."""
    mse = float(np.mean(np.square(np.asarray(image, np.float64) - reference)))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default="any")
    parser.add_argument("--model", default="paintings", help="per-style network to compare")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"])
    parser.add_argument("--paintings", nargs="+", default=list(PAINTINGS))
    parser.add_argument("--gatys-steps", type=int, default=100)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", help="picture: photo | painting | result, per pair")
    args = parser.parse_args()
    params = prepare_params(resolve_params(progress=False, log=lambda m: None))
    decoder_params, decoder_header = load_decoder(resolve_model(args.decoder)[0])
    any_style = ArbitraryStylizer(params, decoder_params, decoder_header["width"])
    net_params, net_header = load_model(resolve_model(args.model)[0])
    network = make_stylizer(net_params, net_header)
    cfg = eval_config(args.size, args.gatys_steps)

    def engine3(content, style, alpha=1.0):
        return apply_any(None, decoder_params, decoder_header, content, [style], alpha=alpha,
                         stylizer=any_style)

    print("| photo | reconstruction PSNR (alpha 0) |\n| --- | --- |")
    psnrs = []
    for photo in args.photos:
        content = load_image(image_path(photo), args.size)
        psnrs.append(psnr(engine3(content, content, alpha=0.0), content))
        print(f"| {Path(photo).name} | {psnrs[-1]:.2f} dB |", flush=True)
    print(f"\nmedian reconstruction PSNR: {np.median(psnrs):.2f} dB\n")
    print(f"| photo | painting | engine 3 loss | x network | x Gatys-{args.gatys_steps} | layout: "
          "engine 3 / network / Gatys | grid: engine 3 / network | engine 3 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    panels, rows = [], []
    for photo in args.photos:
        for name in args.paintings:
            content, style = load_pair(photo, f"{name}.jpg", cfg)
            engine3(content, style)  # compile
            started = time.perf_counter()
            ours = engine3(content, style)
            ms = 1e3 * (time.perf_counter() - started)
            trained = apply_model(net_params, net_header, content, style=name, stylizer=network)
            gatys = gatys_reference(params, content, style, cfg, args.cache)
            s_ours, s_net, s_gatys = (score(params, content, style, image, cfg)
                                      for image in (ours, trained, gatys))
            rows.append({"net": s_ours["loss"] / s_net["loss"],
                         "gatys": s_ours["loss"] / s_gatys["loss"],
                         "layout": s_ours["layout"], "grid": s_ours["grid"],
                         "layout_ok": s_ours["layout"] >= min(0.85, s_gatys["layout"] - 0.05)})
            print(f"| {Path(photo).name} | {name} | {s_ours['loss']:.3g} | {rows[-1]['net']:.2f} | "
                  f"{rows[-1]['gatys']:.2f} | {s_ours['layout']:.2f} / {s_net['layout']:.2f} / "
                  f"{s_gatys['layout']:.2f} | {s_ours['grid']:+.3f} / {s_net['grid']:+.3f} | "
                  f"{ms:.0f} |", flush=True)
            if photo == args.photos[0]:  # the picture: one photo, every painting
                panels.append((content, style, ours))
    median = lambda key: np.median([r[key] for r in rows])  # noqa: E731
    print(f"\nmedian engine 3 / per-style network: {median('net'):.2f} (target <= 1.25); "
          f"/ Gatys: {median('gatys'):.2f}; median layout {median('layout'):.3f}, layout "
          f"target met in {sum(r['layout_ok'] for r in rows)} of {len(rows)}; max grid "
          f"{max(r['grid'] for r in rows):+.3f} (target <= 0.05)")
    if args.out:
        picture(panels, args.out)


if __name__ == "__main__":
    main()
