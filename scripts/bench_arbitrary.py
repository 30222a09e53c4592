"""Speed of engine 3 (AdaIN arbitrary style): ms per image at full resolution, CPU or GPU.

    python scripts/bench_arbitrary.py [--decoder any] [--sizes 512x512 1024x768 1024x1024] \
        [--repeats 5] [--batch 1]

For each size: the warm median of `--repeats` calls of the compiled forward pass (encoder to
relu4_1, AdaIN, decoder), interleaved between variants so all see the same machine load: XLA
CPU's default convolution library, the no-YNNPACK option engine 2 uses (`jaxstyle.fastconv`),
and that option with landscape photos run as they are rather than transposed
(`jaxstyle.arbitrary.transfer.runs_transposed`; the default, used, is the second column).
Also the one-off cost of a painting's statistics. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle.arbitrary.decoder import decoder_flops_per_pixel, init_decoder  # noqa: E402
from jaxstyle.arbitrary.decoderfile import load_decoder  # noqa: E402
from jaxstyle.arbitrary.transfer import (  # noqa: E402
    conv_params,
    split_params,
    style_statistics,
    stylize_arrays,
)
from jaxstyle.fastconv import cpu_conv_compiler_options  # noqa: E402
from jaxstyle.feedforward.apply import resolve_model  # noqa: E402
from jaxstyle.images import load_image  # noqa: E402
from jaxstyle.vgg import VGG19_CONV_LAYERS, prepare_params, scaled_channels  # noqa: E402
from jaxstyle.weights.fetch import resolve_params  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"


def encoder_flops_per_pixel(width: float = 1.0) -> float:
    """VGG19 convs up to block4_conv1 at a width (1: VGG19 itself), per input pixel (each
    block at 1/4 the previous area)."""
    flops = 0.0
    for name, cin, cout in VGG19_CONV_LAYERS:
        block = int(name[5])
        cin = cin if cin == 3 else scaled_channels(cin, width)
        flops += 2 * 9 * cin * scaled_channels(cout, width) / 4 ** (block - 1)
        if name == "block4_conv1":
            return flops
    raise AssertionError("block4_conv1 missing")


def random_encoder(width: float) -> dict:
    """Random encoder convs of a width (VGG19's names and shapes at that width)."""
    from jaxstyle.arbitrary.encoder import encoder_shapes

    rng = np.random.default_rng(0)
    return {path[0]: {"kernel": rng.standard_normal(shape).astype(np.float32) * 0.05,
                      "bias": np.zeros(shape[-1], np.float32)}
            for path, shape in encoder_shapes(width).items()
            if path[0] != "embed" and path[-1] == "kernel"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default="any")
    parser.add_argument("--sizes", nargs="+", default=["512x512", "1024x768", "1024x1024"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--random", nargs=2, type=float, metavar=("ENCODER", "DECODER"),
                        help="time random params of these widths instead of a model file "
                             "(speed does not depend on the values; 1 for the encoder: VGG19)")
    args = parser.parse_args()
    if args.random:
        encoder_width, width = args.random
        decoder = init_decoder(0, width, scaled_channels(512, encoder_width))
        vgg = random_encoder(encoder_width)
    else:
        params, header = load_decoder(resolve_model(args.decoder)[0])
        decoder, own = split_params(params)
        width = float(header["width"])
        encoder_width = float(header.get("encoder_width", 1.0))
        vgg = conv_params(own) if own is not None else prepare_params(
            resolve_params(progress=False, log=lambda m: None))
    vgg, decoder = jax.device_put(vgg), jax.device_put(decoder)
    painting = load_image(IMAGES / "starry_night.jpg", 512)
    style_statistics(vgg, painting)
    started = time.perf_counter()
    stats = jax.block_until_ready(style_statistics(vgg, painting))
    stats_ms = 1e3 * (time.perf_counter() - started)
    run = lambda v, d, x, s: stylize_arrays(v, d, width, x, s)  # noqa: E731
    untransposed = lambda v, d, x, s: stylize_arrays(  # noqa: E731
        v, d, width, x, s, transpose_landscape=False)
    fast = cpu_conv_compiler_options()
    variants = {"default convs": jax.jit(run),
                "no YNNPACK convs (used)": jax.jit(run, compiler_options=fast),
                "no YNNPACK, landscape not transposed": jax.jit(untransposed,
                                                                compiler_options=fast)}
    in_channels = scaled_channels(512, encoder_width)
    encoder_flops = encoder_flops_per_pixel(encoder_width)
    decoder_flops = decoder_flops_per_pixel(width, in_channels)
    flops = encoder_flops + decoder_flops
    print(f"{jax.devices()[0].device_kind}, encoder width {encoder_width:g}, decoder width "
          f"{width:g}, batch {args.batch}; {flops / 1e3:.0f}k FLOPs per pixel (encoder "
          f"{encoder_flops / 1e3:.0f}k, decoder {decoder_flops / 1e3:.0f}k); painting statistics "
          f"(512 px, once per painting) {stats_ms:.0f} ms")
    print("| size | " + " | ".join(f"{name} ms/image" for name in variants) +
          " | GFLOP/s (faster) |")
    print("| --- | " + " | ".join("---" for _ in variants) + " | --- |")
    photo = load_image(IMAGES / "coffee.jpg", None)
    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        images = np.repeat(np.resize(photo, (h, w, 3))[None], args.batch, axis=0)
        times = {name: [] for name in variants}
        for fn in variants.values():
            jax.block_until_ready(fn(vgg, decoder, images, stats))  # compile
        for _ in range(args.repeats):
            for name, fn in variants.items():  # interleaved: both see the same load
                started = time.perf_counter()
                jax.block_until_ready(fn(vgg, decoder, images, stats))
                times[name].append((time.perf_counter() - started) / args.batch)
        medians = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        best = min(medians.values())
        print(f"| {w}x{h} | " + " | ".join(f"{m:.0f}" for m in medians.values()) +
              f" | {flops * w * h / (best / 1e3) / 1e9:.0f} |", flush=True)


if __name__ == "__main__":
    main()
