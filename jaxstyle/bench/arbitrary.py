"""Speed of engine 3 (AdaIN arbitrary style): ms per image at full resolution, CPU or GPU.

    jaxstyle bench arbitrary [--decoder any] [--sizes 512x512 1024x768 1024x1024] \\
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
import sys
from typing import Any

from jaxstyle.bench.timing import Timing, machine_line, markdown_table, time_alternating, time_calls
from jaxstyle.cli.common import positive_int

EXAMPLES = ["jaxstyle bench arbitrary --sizes 512x512 1024x768 1024x1024 --repeats 3",
            "jaxstyle bench arbitrary --decoder any-vgg --sizes 1024x768 768x1024 --repeats 3",
            "jaxstyle bench arbitrary --random 0.25 0.25 --sizes 1024x768 512x512 --repeats 3"]

PAINTING = "starry_night.jpg"  # whose statistics are timed (512 px) and used for every size
PHOTO = "coffee.jpg"  # resized (np.resize: tiled, not scaled) to each size


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WxH, e.g. 1024x768; got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"a size must be positive; got {text!r}")
    return w, h


def size_text(text: str) -> str:
    """--sizes' type: checked, kept as written (so --help shows the defaults as WxH)."""
    parse_size(text)
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decoder", default="any",
                   help="a decoder .jxs file or built-in name (its encoder too, if it has one; "
                        "else VGG19)")
    p.add_argument("--sizes", nargs="+", type=size_text,
                   default=["512x512", "1024x768", "1024x1024"], metavar="WxH",
                   help="photo sizes, width x height")
    p.add_argument("--repeats", type=positive_int, default=5,
                   help="timed calls per variant and size, variants taking turns")
    p.add_argument("--batch", type=positive_int, default=1, help="images per call")
    p.add_argument("--random", nargs=2, type=float, metavar=("ENCODER", "DECODER"),
                   help="time random params of these widths instead of a model file "
                        "(speed does not depend on the values; 1 for the encoder: VGG19)")


def encoder_flops_per_pixel(width: float = 1.0) -> float:
    """VGG19 convs up to block4_conv1 at a width (1: VGG19 itself), per input pixel (each
    block at 1/4 the previous area)."""
    from jaxstyle.vgg import VGG19_CONV_LAYERS, scaled_channels

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
    import numpy as np

    from jaxstyle.arbitrary.encoder import encoder_shapes

    rng = np.random.default_rng(0)
    return {path[0]: {"kernel": rng.standard_normal(shape).astype(np.float32) * 0.05,
                      "bias": np.zeros(shape[-1], np.float32)}
            for path, shape in encoder_shapes(width).items()
            if path[0] != "embed" and path[-1] == "kernel"}


def load_networks(args: argparse.Namespace) -> tuple[Any, Any, float, float]:
    """(encoder params, decoder params, encoder width, decoder width): a model file's, or
    random ones of `--random`'s widths."""
    from jaxstyle.arbitrary.decoder import init_decoder
    from jaxstyle.vgg import scaled_channels

    if args.random:
        encoder_width, width = args.random
        return (random_encoder(encoder_width),
                init_decoder(0, width, scaled_channels(512, encoder_width)), encoder_width, width)
    from jaxstyle.arbitrary.decoderfile import is_wct_header, load_decoder
    from jaxstyle.arbitrary.transfer import conv_params, split_params
    from jaxstyle.bench.fixtures import vgg_params
    from jaxstyle.errors import ConfigError
    from jaxstyle.feedforward.apply import resolve_model

    params, header = load_decoder(resolve_model(args.decoder)[0])
    if is_wct_header(header):
        raise ConfigError(f"{args.decoder} is a WCT model; this benchmark times AdaIN "
                          "decoders (e.g. any, any-vgg)")
    decoder, own = split_params(params)
    vgg = conv_params(own) if own is not None else vgg_params()
    return vgg, decoder, float(header.get("encoder_width", 1.0)), float(header["width"])


def run(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from jaxstyle.arbitrary.decoder import decoder_flops_per_pixel
    from jaxstyle.arbitrary.transfer import style_statistics, stylize_arrays
    from jaxstyle.bench.fixtures import image_path
    from jaxstyle.fastconv import cpu_conv_compiler_options
    from jaxstyle.images import load_image
    from jaxstyle.vgg import scaled_channels

    print(machine_line(), flush=True)
    vgg, decoder, encoder_width, width = load_networks(args)
    vgg, decoder = jax.device_put(vgg), jax.device_put(decoder)
    painting = load_image(image_path(PAINTING), 512)
    # One untimed call (compiling), one timed: the one-off cost per painting.
    computed = []
    stats_time = time_calls(lambda: computed.append(
        jax.block_until_ready(style_statistics(vgg, painting))), repeats=1, warmup=1)
    stats = computed[-1]
    run_ = lambda v, d, x, s: stylize_arrays(v, d, width, x, s)
    untransposed = lambda v, d, x, s: stylize_arrays(v, d, width, x, s, transpose_landscape=False)
    fast = cpu_conv_compiler_options()
    variants = {"default convs": jax.jit(run_),
                "no YNNPACK convs (used)": jax.jit(run_, compiler_options=fast),
                "no YNNPACK, landscape not transposed": jax.jit(untransposed,
                                                                compiler_options=fast)}
    in_channels = scaled_channels(512, encoder_width)
    encoder_flops = encoder_flops_per_pixel(encoder_width)
    decoder_flops = decoder_flops_per_pixel(width, in_channels)
    flops = encoder_flops + decoder_flops
    print(f"encoder width {encoder_width:g}, decoder width {width:g}, batch {args.batch}; "
          f"{flops / 1e3:.0f}k FLOPs per pixel (encoder {encoder_flops / 1e3:.0f}k, decoder "
          f"{decoder_flops / 1e3:.0f}k); painting statistics (512 px, once per painting) "
          f"{1e3 * stats_time.median:.0f} ms", flush=True)
    photo = load_image(image_path(PHOTO), None)
    rows = []
    for w, h in map(parse_size, args.sizes):
        images = np.repeat(np.resize(photo, (h, w, 3))[None], args.batch, axis=0)
        calls = {name: (lambda fn=fn, x=images: jax.block_until_ready(fn(vgg, decoder, x, stats)))
                 for name, fn in variants.items()}
        # One untimed (compiling) call each, then the variants take turns call by call.
        per_call = time_alternating(calls, repeats=args.repeats, warmup=1, block=1)
        per_image = {name: Timing(tuple(s / args.batch for s in t.samples))
                     for name, t in per_call.items()}
        medians = [1e3 * t.median for t in per_image.values()]
        rows.append([f"{w}x{h}", *(f"{m:.0f}" for m in medians),
                     f"{flops * w * h / (min(medians) / 1e3) / 1e9:.0f}"])
        print(f"{w}x{h}: " + "; ".join(f"{name} {t.summary()}" for name, t in per_image.items()),
              file=sys.stderr, flush=True)
    headers = ["size", *(f"{name} ms/image" for name in variants), "GFLOP/s (faster)"]
    print(markdown_table(headers, rows))
    return 0
