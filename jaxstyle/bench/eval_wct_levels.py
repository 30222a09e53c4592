"""Held-out reconstruction quality of each level of WCT models (issue 25), and merging levels.

    jaxstyle bench eval-wct-levels MODEL.jxs [MODEL2.jxs ...] \
        [--photos coffee.jpg astronaut.jpg /tmp/heldout/*.jpg] \
        [--paintings starry_night.jpg shipwreck.jpg woman_with_hat.jpg] [--size 256] \
        [--merge-into wct.jxs]

For every level each file holds: the PSNR of decoder(VGG19 relu{k}_1(image)) against the image
and the relu{k}_1 feature error of that reconstruction (mean squared, in units of the layer's
mean activation, `FEATURE_MEANS`, as the trainer's content term), on photos and paintings none
of the decoders trained on. --merge-into writes every level of the files given (later files
win) into one WCT model file, e.g. levels trained in parallel into separate files, and
--default-levels names the chain it runs by default. Prints a Markdown table (each row also
to stderr as it is measured).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle.arbitrary.decoder import FEATURE_MEANS, LEVEL_LAYERS, Decoder
from jaxstyle.arbitrary.decoderfile import load_decoder, save_wct_level
from jaxstyle.arbitrary.transfer import encode
from jaxstyle.bench.fixtures import image_path
from jaxstyle.bench.scoring import psnr
from jaxstyle.bench.timing import machine_line, markdown_table
from jaxstyle.errors import ConfigError
from jaxstyle.feedforward.apply import resolve_model
from jaxstyle.images import load_image
from jaxstyle.paramfile import read_param_file, write_param_file

EXAMPLES = ["jaxstyle bench eval-wct-levels wct --photos coffee.jpg astronaut.jpg "
            "/tmp/heldout/*.jpg",
            "jaxstyle bench eval-wct-levels l4c.jxs l3.jxs l2.jxs l1.jxs --merge-into wct.jxs "
            "--default-levels 4,1"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="WCT model files (or built-in names), every level of each scored")
    p.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"],
                   help="held-out photos (paths, or names among the shared images)")
    p.add_argument("--paintings", nargs="+",
                   default=["starry_night.jpg", "shipwreck.jpg", "woman_with_hat.jpg"],
                   help="held-out paintings (paths, or names among the shared images)")
    p.add_argument("--size", type=int, default=256, help="longer side of the images, px")
    p.add_argument("--merge-into", type=Path, metavar="OUT",
                   help="write every level of the files given (later files win) into this "
                        "WCT model file")
    p.add_argument("--default-levels", metavar="LEVELS",
                   help="with --merge-into: the chain `jaxstyle apply` runs without --levels, "
                        "e.g. 4,1 (header field default_levels)")
    add_weights_option(p)


def run(args: argparse.Namespace) -> int:
    from jaxstyle.weights.fetch import resolve_params

    if args.default_levels and not args.merge_into:
        raise ConfigError("--default-levels goes with --merge-into")
    try:
        default_levels = [int(k) for k in (args.default_levels or "").split(",") if k]
    except ValueError:
        raise ConfigError(f"--default-levels {args.default_levels}: levels such as 4,1"
                          ) from None
    print(machine_line(), flush=True)
    paths = [resolve_model(model)[0] for model in args.models]
    vgg = resolve_params(args.weights, progress=False, log=lambda message: None)
    images = {}
    for name in args.photos + args.paintings:
        image = load_image(image_path(name), args.size)
        images[Path(name).name] = image[:image.shape[0] // 16 * 16, :image.shape[1] // 16 * 16]
    headers = ["model", "level", *images, "median PSNR", "median relu error"]
    rows = []
    for path in paths:
        params, header = load_decoder(path)
        for level in sorted(header["levels"], reverse=True):
            layer = LEVEL_LAYERS[level]
            decode = jax.jit(lambda p, f, level=level, width=header["width"]: Decoder(
                width=width, level=level).apply({"params": p}, f))
            scores, errors = [], []
            for image in images.values():
                x = jnp.asarray(image)[None]
                features = encode(vgg, x, (layer,))[layer]
                out = decode(params[f"relu{level}_1"], features)
                again = encode(vgg, out, (layer,))[layer]
                scores.append(psnr(np.asarray(out[0]), image))
                errors.append(float(jnp.mean(jnp.square((again - features)
                                                        / FEATURE_MEANS[layer]))))
            rows.append([path.name, f"relu{level}_1", *(f"{s:.2f}" for s in scores),
                         f"{np.median(scores):.2f} dB", f"{np.median(errors):.3f}"])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print(markdown_table(headers, rows))
    if args.merge_into:
        for path in paths:
            params, header = load_decoder(path)
            for level in header["levels"]:
                training = (header.get("level_training") or {}).get(f"relu{level}_1", {})
                save_wct_level(args.merge_into, level, params[f"relu{level}_1"],
                               {"width": header["width"], "training": training,
                                "data_count": header.get("data_count"), "style_count": 0})
        if default_levels:
            merged, header, _ = read_param_file(args.merge_into)
            header["default_levels"] = default_levels
            write_param_file(args.merge_into, merged, header)
        print(f"\nmerged into {args.merge_into}: levels "
              f"{load_decoder(args.merge_into)[1]['levels']}")
    return 0
