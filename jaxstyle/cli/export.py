"""`jaxstyle export`: a trained model as an ONNX or serialized StableHLO file (jaxstyle.export)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxstyle.cli.common import (
    UsageError,
    add_max_pixels_option,
    add_weights_option,
    finite_float,
    load_params,
    log,
    positive_int,
)
from jaxstyle.cli.train import check_model_output

RUN_ONNX = """run it (pip install onnxruntime):
  import onnxruntime, numpy as np
  out = onnxruntime.InferenceSession("{path}").run(None, {{{feeds}}})[0]"""
RUN_STABLEHLO = """run it (jax, pip install flatbuffers):
  import jax, numpy as np
  out = jax.export.deserialize(open("{path}", "rb").read()).call({args})"""


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_command(commands, "export", "write a trained model as ONNX or StableHLO, any photo "
                    "size", [
                        "jaxstyle export paintings -o paintings.onnx     # blend vector input",
                        "jaxstyle export starry_night -o starry.onnx     # one style, fixed",
                        "jaxstyle export paintings -o mix.onnx --style-blend 0.7 0.3 0",
                        "jaxstyle export any -o any.onnx                 # painting as input",
                        "jaxstyle export any -o starry-any.stablehlo --style-image art.jpg"])
    p.add_argument("model", help="a built-in name (paintings, starry_night, any, any-vgg) or "
                                 "a .jxs file")
    p.add_argument("-o", "--output", required=True,
                   help=".onnx, .stablehlo or .bin (StableHLO gets FILE.json beside it)")
    p.add_argument("--format", choices=("onnx", "stablehlo"),
                   help="default: from the output's suffix")
    engine2 = p.add_argument_group("a network trained for its styles (engine 2)")
    engine2.add_argument("--style", metavar="NAME|INDEX", help="fix this style in the file")
    engine2.add_argument("--style-blend", type=float, nargs="+", metavar="W",
                         help="fix this blend, one weight per style")
    p.add_argument("--strength", type=finite_float, default=1.0,
                   help="mix with the photo in pixels, fixed in the file")
    engine3 = p.add_argument_group("an any-painting model (engine 3: any, any-vgg, wct)")
    engine3.add_argument("--style-image", metavar="PATH",
                         help="bake this painting's statistics in (else: a second input)")
    engine3.add_argument("--style-size", type=positive_int, default=512,
                         help="longer side of --style-image, which sets the strokes")
    engine3.add_argument("--alpha", type=finite_float, default=1.0,
                         help="style strength in feature space, fixed in the file")
    engine3.add_argument("--structure", type=finite_float, metavar="S",
                         help="0..1 share of the photo's blurred luminance put back, fixed in "
                              "the file (default: the model's own, 1 for wct, 0 for AdaIN)")
    engine3.add_argument("--whitening", choices=("eigh", "newton-schulz"),
                         help="wct's whitening: eigh (StableHLO only, as apply does) or "
                              "newton-schulz (matrix products; ONNX). Default: eigh for "
                              "StableHLO, newton-schulz for ONNX")
    engine3.add_argument("--transform", choices=("wct", "efdm"), default="wct",
                         help="wct's feature transform at each level: wct (whitening and "
                              "colouring) or efdm (exact feature distribution matching; "
                              "StableHLO only, takes no --whitening)")
    add_weights_option(p)
    add_max_pixels_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_export)


def export_spec(args: argparse.Namespace, fmt: str) -> Any:
    """The ExportSpec the options ask for (every check before any tracing)."""
    from jaxstyle.arbitrary.decoderfile import (
        is_decoder_header,
        is_wct_header,
        load_decoder,
        needs_vgg,
    )
    from jaxstyle.export import any_style_export, feedforward_export
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.feedforward.modelfile import load_model
    from jaxstyle.images import load_image
    from jaxstyle.paramfile import read_header

    path, builtin_style = resolve_model(args.model)
    header = read_header(path)
    if is_decoder_header(header):
        if args.style is not None or args.style_blend is not None:
            raise UsageError(f"{args.model} paints with any painting: give --style-image, "
                             "not --style/--style-blend")
        if is_wct_header(header) and args.style_image is None:
            raise UsageError(f"{args.model} is a WCT model: it exports with its painting "
                             "baked in (--style-image)")
        if args.transform != "wct" and not is_wct_header(header):
            raise UsageError(f"--transform works with a WCT model; {args.model} is an AdaIN "
                             "decoder")
        if args.transform == "efdm":
            if fmt == "onnx":
                raise UsageError("--transform efdm exports to StableHLO only: its sort and "
                                 "scatter are not converted to ONNX")
            if args.whitening not in (None, "eigh"):
                raise UsageError("--whitening chooses WCT's whitening; --transform efdm "
                                 "whitens nothing")
        whitening = args.whitening or ("newton-schulz" if fmt == "onnx" else "eigh")
        if is_wct_header(header) and fmt == "onnx" and whitening == "eigh":
            raise UsageError("--whitening eigh exports to StableHLO only: ONNX has no "
                             "eigendecomposition")
        params, header = load_decoder(path)
        vgg = load_params(args.weights, args.quiet) if needs_vgg(header) else None
        painting = None if args.style_image is None else load_image(
            args.style_image, args.style_size, args.max_pixels, what="style image")
        return any_style_export(vgg, params, header, style_image=painting, alpha=args.alpha,
                                strength=args.strength, whitening=whitening,
                                transform=args.transform, structure=args.structure)
    if (args.style_image is not None or args.alpha != 1.0 or args.whitening is not None
            or args.transform != "wct" or args.structure is not None):
        raise UsageError(f"{args.model} is a network trained for its styles: choose one with "
                         "--style or --style-blend (--style-image, --alpha, --whitening, "
                         "--transform and --structure are for any, any-vgg, wct)")
    params, header = load_model(path)
    style = args.style if args.style is not None else builtin_style
    if style is not None and args.style_blend is not None:
        raise UsageError("give --style or --style-blend, not both")
    return feedforward_export(params, header, style=style, blend=args.style_blend,
                              strength=args.strength)


def how_to_run(spec: Any, fmt: str, output: Path) -> str:
    shapes = {"photos": "photo[None]", "style_weights": "weights", "style": "painting[None]"}
    names = [name for name, _ in spec.inputs]
    if fmt == "onnx":
        feeds = ", ".join(f'"{name}": {shapes[name]}' for name in names)
        return RUN_ONNX.format(path=output, feeds=feeds)
    return RUN_STABLEHLO.format(path=output, args=", ".join(shapes[name] for name in names))


def cmd_export(args: argparse.Namespace) -> int:
    import time

    from jaxstyle.export import format_for, write_onnx, write_stablehlo

    output = Path(args.output)
    fmt = format_for(output, args.format)
    if fmt == "onnx":  # before loading anything: the extra may be missing
        try:
            import jax2onnx  # noqa: F401
        except ImportError:
            raise UsageError("--format onnx needs the export extra: pip install "
                             "\"jaxstyle[export]\" (or pip install -e \".[export]\")") from None
    check_model_output(output)
    spec = export_spec(args, fmt)
    started = time.perf_counter()
    (write_onnx if fmt == "onnx" else write_stablehlo)(spec, output)
    size = os.path.getsize(output) / 1e6
    inputs = ", ".join(f"{name} ({dims})" for name, dims in spec.inputs)
    log(f"wrote {output} ({fmt}, {size:.1f} MB) in {time.perf_counter() - started:.1f} s; "
        f"inputs: {inputs}; photos are {spec.metadata['layout']}", args.quiet)
    log(how_to_run(spec, fmt, output), args.quiet)
    return 0
