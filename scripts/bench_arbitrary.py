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

from jaxstyle.arbitrary.decoder import decoder_flops_per_pixel  # noqa: E402
from jaxstyle.arbitrary.decoderfile import load_decoder  # noqa: E402
from jaxstyle.arbitrary.transfer import style_statistics, stylize_arrays  # noqa: E402
from jaxstyle.fastconv import cpu_conv_compiler_options  # noqa: E402
from jaxstyle.feedforward.apply import resolve_model  # noqa: E402
from jaxstyle.images import load_image  # noqa: E402
from jaxstyle.vgg import VGG19_CONV_LAYERS, prepare_params  # noqa: E402
from jaxstyle.weights.fetch import resolve_params  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"


def encoder_flops_per_pixel() -> float:
    """VGG19 convs up to block4_conv1, per input pixel (each block at 1/4 the previous area)."""
    flops = 0.0
    for name, cin, cout in VGG19_CONV_LAYERS:
        block = int(name[5])
        flops += 2 * 9 * cin * cout / 4 ** (block - 1)
        if name == "block4_conv1":
            return flops
    raise AssertionError("block4_conv1 missing")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default="any")
    parser.add_argument("--sizes", nargs="+", default=["512x512", "1024x768", "1024x1024"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    vgg = jax.device_put(prepare_params(resolve_params(progress=False, log=lambda m: None)))
    decoder, header = load_decoder(resolve_model(args.decoder)[0])
    decoder = jax.device_put(decoder)
    width = float(header["width"])
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
    flops = encoder_flops_per_pixel() + decoder_flops_per_pixel(width)
    print(f"{jax.devices()[0].device_kind}, decoder width {width:g}, batch {args.batch}; "
          f"{flops / 1e3:.0f}k FLOPs per pixel (encoder {encoder_flops_per_pixel() / 1e3:.0f}k, "
          f"decoder {decoder_flops_per_pixel(width) / 1e3:.0f}k); painting statistics "
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
