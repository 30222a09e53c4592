"""Quality of the arbitrary-style decoder (engine 3) against the per-style network and Gatys.

    jaxstyle bench eval-arbitrary [--decoder any [any-vgg ...]] [--model paintings] \
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
photo. Prints Markdown tables (each row also to stderr as it is scored) and the medians;
with --out writes photo | painting | each decoder's result (in --decoder order) rows for the
first photo. Engine 3's ms is one warm call after a compiling one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from jaxstyle.arbitrary.apply import apply_any, make_any_stylizer
from jaxstyle.arbitrary.decoderfile import load_decoder
from jaxstyle.bench.fixtures import image_path, vgg_params
from jaxstyle.bench.scoring import (
    DEFAULT_CACHE,
    eval_config,
    gatys_reference,
    load_pair,
    picture,
    psnr,
    score,
    warm_call,
)
from jaxstyle.bench.timing import machine_line, markdown_table
from jaxstyle.errors import ConfigError
from jaxstyle.feedforward.apply import apply_model, make_stylizer, resolve_model
from jaxstyle.feedforward.modelfile import load_model
from jaxstyle.images import load_image

EXAMPLES = ["jaxstyle bench eval-arbitrary --decoder any any-vgg --model paintings "
            "--photos coffee.jpg astronaut.jpg /tmp/heldout/*.jpg --out docs/any.png",
            "jaxstyle bench eval-arbitrary --decoder wct@4,1 wct@4,1@0.6 any-vgg "
            "--gatys-steps 0"]

PAINTINGS = ("starry_night", "shipwreck", "woman_with_hat")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--decoder", nargs="+", default=["any"], metavar="DECODER",
                   help="decoders to score side by side (the first makes the picture): "
                        "MODEL[@LEVELS][@ALPHA], e.g. wct@4,1@0.7 or any-vgg@@0.8")
    p.add_argument("--model", default="paintings", help="per-style network to compare")
    p.add_argument("--size", type=int, default=256, help="longer side of the photos, px")
    p.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"],
                   help="held-out photos (paths, or names among the shared images)")
    p.add_argument("--paintings", nargs="+", default=list(PAINTINGS),
                   help="styles of --model (NAME.jpg among the shared images)")
    p.add_argument("--gatys-steps", type=int, default=100,
                   help="the optimiser's reference (0: none; the layout floor is 0.85)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help="Gatys references are kept here between runs")
    p.add_argument("--out", metavar="PNG",
                   help="picture: photo | painting | each decoder, per painting")
    add_weights_option(p)


def parse_decoder(name: str) -> tuple[str, int | tuple[int, ...] | None, float]:
    """MODEL[@LEVELS][@ALPHA] -> (model, levels or None, alpha)."""
    model, _, rest = name.partition("@")
    levels_text, _, alpha_text = rest.partition("@")
    try:
        alpha = float(alpha_text) if alpha_text else 1.0
        levels = None if not levels_text else (int(levels_text) if levels_text.isdigit() else tuple(
            int(k) for k in levels_text.split(",")))
    except ValueError:
        raise ConfigError(f"--decoder {name}: write MODEL[@LEVELS][@ALPHA], e.g. wct@4,1@0.7"
                          ) from None
    return model, levels, alpha


def run(args: argparse.Namespace) -> int:
    print(machine_line(), flush=True)
    params = vgg_params(args.weights)
    decoders = {}
    alphas = {}
    for name in args.decoder:
        model, levels, alphas[name] = parse_decoder(name)
        decoder_params, decoder_header = load_decoder(resolve_model(model)[0])
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

    psnrs: dict[str, list[float]] = {name: [] for name in decoders}
    psnr_rows = []
    for photo in args.photos:
        content = load_image(image_path(photo), args.size)
        for name in decoders:
            psnrs[name].append(psnr(engine3(name, content, content, alpha=0.0), content))
        psnr_rows.append([Path(photo).name] + [f"{psnrs[name][-1]:.2f} dB" for name in decoders])
        print(" | ".join(psnr_rows[-1]), file=sys.stderr, flush=True)
    print(markdown_table(["photo"] + [f"{name}: reconstruction PSNR (alpha 0)"
                                      for name in decoders], psnr_rows))
    for name in decoders:
        print(f"\n{name}: median reconstruction PSNR {np.median(psnrs[name]):.2f} dB")

    headers = (["photo", "painting", "decoder", "engine 3 loss (block4 Gram)", "x network"]
               + ([f"x Gatys-{args.gatys_steps}"] if args.gatys_steps else [])
               + ["layout: engine 3 / network / Gatys", "grid: engine 3 / network",
                  "engine 3 ms"])
    panels: list[tuple[np.ndarray, ...]] = []
    rows: dict[str, list[dict]] = {name: [] for name in decoders}
    cells: list[list[str]] = []
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
                ours, seconds = warm_call(engine3, name, content, style)
                s_ours = score(params, content, style, ours, cfg)
                row = {"loss": s_ours["loss"], "net": s_ours["loss"] / s_net["loss"],
                       "block4": s_ours["block4"],
                       "layout": s_ours["layout"], "grid": s_ours["grid"],
                       "layout_ok": s_ours["layout"] >= floor}
                if s_gatys is not None:
                    row["gatys"] = s_ours["loss"] / s_gatys["loss"]
                rows[name].append(row)
                gatys_layout = f"{s_gatys['layout']:.2f}" if s_gatys is not None else "-"
                cells.append([Path(photo).name, painting, name,
                              f"{s_ours['loss']:.3g} ({s_ours['block4']:.3g})",
                              f"{row['net']:.2f}"]
                             + ([f"{row['gatys']:.2f}"] if s_gatys is not None else [])
                             + [f"{s_ours['layout']:.2f} / {s_net['layout']:.2f} / "
                                f"{gatys_layout}",
                                f"{s_ours['grid']:+.3f} / {s_net['grid']:+.3f}",
                                f"{1e3 * seconds:.0f}"])
                print(" | ".join(cells[-1]), file=sys.stderr, flush=True)
                if photo == args.photos[0]:  # one row per painting: every decoder's result
                    if name == args.decoder[0]:
                        panels.append((content, style))
                    panels[-1] += (ours,)
    print()
    print(markdown_table(headers, cells))
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
    return 0
