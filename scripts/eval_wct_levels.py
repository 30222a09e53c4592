"""Held-out reconstruction quality of each level of WCT models (issue 25), and merging levels.

    python scripts/eval_wct_levels.py MODEL.jxs [MODEL2.jxs ...] \
        [--photos coffee.jpg astronaut.jpg /tmp/heldout/*.jpg] \
        [--paintings starry_night.jpg shipwreck.jpg woman_with_hat.jpg] [--size 256] \
        [--merge-into wct.jxs]

For every level each file holds: the PSNR of decoder(VGG19 relu{k}_1(image)) against the image
and the relu{k}_1 feature error of that reconstruction (mean squared, in units of the layer's
mean activation, `FEATURE_MEANS`, as the trainer's content term), on photos and paintings none
of the decoders trained on. --merge-into writes every level of the files given (later files
win) into one WCT model file, e.g. levels trained in parallel into separate files, and
--default-levels names the chain it runs by default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from eval_arbitrary import psnr  # noqa: E402
from scoring import image_path  # noqa: E402

from jaxstyle import load_image  # noqa: E402
from jaxstyle.arbitrary.decoder import FEATURE_MEANS, LEVEL_LAYERS, Decoder  # noqa: E402
from jaxstyle.arbitrary.decoderfile import load_decoder, save_wct_level  # noqa: E402
from jaxstyle.arbitrary.transfer import encode  # noqa: E402
from jaxstyle.paramfile import read_param_file, write_param_file  # noqa: E402
from jaxstyle.weights.fetch import resolve_params  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"])
    parser.add_argument("--paintings", nargs="+",
                        default=["starry_night.jpg", "shipwreck.jpg", "woman_with_hat.jpg"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--merge-into", type=Path)
    parser.add_argument("--default-levels", help="with --merge-into: the chain `jaxstyle apply` "
                        "runs without --levels, e.g. 4,1 (header field default_levels)")
    args = parser.parse_args()
    vgg = resolve_params(progress=False, log=lambda message: None)
    images = {}
    for name in args.photos + args.paintings:
        image = load_image(image_path(name), args.size)
        images[Path(name).name] = image[:image.shape[0] // 16 * 16, :image.shape[1] // 16 * 16]
    print("| model | level | " + " | ".join(images) + " | median PSNR | median relu error |")
    print("| --- | --- |" + " --- |" * (len(images) + 2))
    for path in args.models:
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
            print(f"| {path.name} | relu{level}_1 | " + " | ".join(f"{s:.2f}" for s in scores)
                  + f" | {np.median(scores):.2f} dB | {np.median(errors):.3f} |", flush=True)
    if args.merge_into:
        for path in args.models:
            params, header = load_decoder(path)
            for level in header["levels"]:
                training = (header.get("level_training") or {}).get(f"relu{level}_1", {})
                save_wct_level(args.merge_into, level, params[f"relu{level}_1"],
                               {"width": header["width"], "training": training,
                                "data_count": header.get("data_count"), "style_count": 0})
        if args.default_levels:
            merged, header, _ = read_param_file(args.merge_into)
            header["default_levels"] = [int(k) for k in args.default_levels.split(",")]
            write_param_file(args.merge_into, merged, header)
        print(f"\nmerged into {args.merge_into}: levels "
              f"{load_decoder(args.merge_into)[1]['levels']}")


if __name__ == "__main__":
    main()
