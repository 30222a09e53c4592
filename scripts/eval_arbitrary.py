"""Quality of the arbitrary-style decoder (engine 3) against the per-style network and Gatys.

    python scripts/eval_arbitrary.py [--decoder any [any-vgg ...]] [--model paintings] \
        [--size 256] [--photos coffee.jpg astronaut.jpg /tmp/heldout/*.jpg] \
        [--gatys-steps 100] [--out docs/any.png]

Several decoders are scored side by side on the same pairs (the first is the one the
picture shows and the medians compare); `--gatys-steps 0` skips the optimiser's references
(the layout floor is then 0.85 alone). A WCT model can be named with its levels, e.g.
`--decoder wct.jxs@4 wct.jxs@3 wct.jxs@4,2,1`, to score several chains of one file, and any
decoder with an alpha after a second @ (`wct.jxs@4,1@0.7`, `any-vgg@@0.8`; default 1).

For each held-out photo and painting (none of them in the decoder's training data; the
paintings are the per-style network's own styles): engine 3's output (alpha 1, one pass),
the per-style network's output, and Gatys (the seed's Keras Adam from the photo) after
`--gatys-steps` steps, all at the same size, scored with the seed loss (same VGG19, layers,
weights and style-image size as the Gatys run), the layout and the grid (`jaxstyle.quality`).
Also the decoder's reconstruction PSNR (alpha 0: the photo's own features decoded) on each
photo. Prints a Markdown table and the medians; with --out writes photo | painting | each
decoder's result (in --decoder order) rows for the first photo.
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
from jaxstyle.arbitrary.apply import apply_any, make_any_stylizer  # noqa: E402
from jaxstyle.arbitrary.decoderfile import load_decoder  # noqa: E402
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
    parser.add_argument("--decoder", nargs="+", default=["any"],
                        help="decoders to score side by side (the first makes the picture)")
    parser.add_argument("--model", default="paintings", help="per-style network to compare")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"])
    parser.add_argument("--paintings", nargs="+", default=list(PAINTINGS))
    parser.add_argument("--gatys-steps", type=int, default=100,
                        help="the optimiser's reference (0: none; the layout floor is 0.85)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", help="picture: photo | painting | each decoder, per painting")
    args = parser.parse_args()
    params = prepare_params(resolve_params(progress=False, log=lambda m: None))
    decoders = {}
    alphas = {}
    for name in args.decoder:
        model, _, levels = name.partition("@")
        levels, _, alpha = levels.partition("@")
        alphas[name] = float(alpha) if alpha else 1.0
        decoder_params, decoder_header = load_decoder(resolve_model(model)[0])
        levels = None if not levels else (int(levels) if levels.isdigit() else tuple(
            int(k) for k in levels.split(",")))
        decoders[name] = (decoder_params, decoder_header, make_any_stylizer(
            params, decoder_params, decoder_header, levels=levels))
    net_params, net_header = load_model(resolve_model(args.model)[0])
    network = make_stylizer(net_params, net_header)
    cfg = eval_config(args.size, max(args.gatys_steps, 1))

    def engine3(name, content, style, alpha=None):
        decoder_params, decoder_header, stylizer = decoders[name]
        alpha = alphas[name] if alpha is None else alpha
        return apply_any(None, decoder_params, decoder_header, content, [style], alpha=alpha,
                         stylizer=stylizer)

    print("| photo | " + " | ".join(f"{name}: reconstruction PSNR (alpha 0)"
                                    for name in decoders) + " |")
    print("| --- |" + " --- |" * len(decoders))
    psnrs = {name: [] for name in decoders}
    for photo in args.photos:
        content = load_image(image_path(photo), args.size)
        for name in decoders:
            psnrs[name].append(psnr(engine3(name, content, content, alpha=0.0), content))
        print(f"| {Path(photo).name} | " + " | ".join(f"{psnrs[name][-1]:.2f} dB"
                                                     for name in decoders) + " |", flush=True)
    for name in decoders:
        print(f"\n{name}: median reconstruction PSNR {np.median(psnrs[name]):.2f} dB")
    gatys_columns = f" x Gatys-{args.gatys_steps} |" if args.gatys_steps else ""
    print(f"\n| photo | painting | decoder | engine 3 loss (block4 Gram) | x network |"
          f"{gatys_columns} layout: engine 3 / network / Gatys | grid: engine 3 / network | "
          "engine 3 ms |")
    print("| --- | --- | --- | --- | --- |" + (" --- |" if args.gatys_steps else "")
          + " --- | --- | --- |")
    panels, rows = [], {name: [] for name in decoders}
    for photo in args.photos:
        for painting in args.paintings:
            content, style = load_pair(photo, f"{painting}.jpg", cfg)
            trained = apply_model(net_params, net_header, content, style=painting,
                                  stylizer=network)
            s_net = score(params, content, style, trained, cfg)
            s_gatys = None
            if args.gatys_steps:
                gatys = gatys_reference(params, content, style, cfg, args.cache)
                s_gatys = score(params, content, style, gatys, cfg)
            floor = 0.85 if s_gatys is None else min(0.85, s_gatys["layout"] - 0.05)
            for name in decoders:
                engine3(name, content, style)  # compile
                started = time.perf_counter()
                ours = engine3(name, content, style)
                ms = 1e3 * (time.perf_counter() - started)
                s_ours = score(params, content, style, ours, cfg)
                row = {"loss": s_ours["loss"], "net": s_ours["loss"] / s_net["loss"],
                       "block4": s_ours["block4"],
                       "layout": s_ours["layout"], "grid": s_ours["grid"],
                       "layout_ok": s_ours["layout"] >= floor}
                if s_gatys is not None:
                    row["gatys"] = s_ours["loss"] / s_gatys["loss"]
                rows[name].append(row)
                gatys_cell = f" {row['gatys']:.2f} |" if s_gatys is not None else ""
                gatys_layout = f"{s_gatys['layout']:.2f}" if s_gatys is not None else "-"
                print(f"| {Path(photo).name} | {painting} | {name} | {s_ours['loss']:.3g} "
                      f"({s_ours['block4']:.3g}) | "
                      f"{row['net']:.2f} |{gatys_cell} {s_ours['layout']:.2f} / "
                      f"{s_net['layout']:.2f} / {gatys_layout} | {s_ours['grid']:+.3f} / "
                      f"{s_net['grid']:+.3f} | {ms:.0f} |", flush=True)
                if photo == args.photos[0]:  # one row per painting: every decoder's result
                    if name == args.decoder[0]:
                        panels.append((content, style))
                    panels[-1] += (ours,)
    for name, found in rows.items():
        def median(key, found=found):
            return np.median([r[key] for r in found])

        versus_gatys = f"; / Gatys: {median('gatys'):.2f}" if args.gatys_steps else ""
        print(f"\n{name}: median engine 3 / per-style network: {median('net'):.2f} (target "
              f"<= 1.25){versus_gatys}; median loss {median('loss'):.3g} (block4 Gram "
              f"{median('block4'):.3g}); median layout {median('layout'):.3f}, layout target "
              f"met in {sum(r['layout_ok'] for r in found)} of {len(found)}; max grid "
              f"{max(r['grid'] for r in found):+.3f} (target <= 0.05)")
    if len(decoders) > 1:
        first, *others = decoders
        for other in others:
            ratios = [a["loss"] / b["loss"] for a, b in zip(rows[first], rows[other])]
            print(f"{first} / {other} seed loss, per pair: median {np.median(ratios):.3f}, "
                  f"range {min(ratios):.3f}-{max(ratios):.3f}")
    if args.out:
        picture(panels, args.out)


if __name__ == "__main__":
    main()
