"""`jaxstyle apply`: stylise photos in one pass with a trained model: a feed-forward network
(engine 2), or the arbitrary-style decoder (engine 3: `jaxstyle apply any ... --style-image
PAINTING`). The model file's header says which."""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

from jaxstyle.cli.common import (
    EXIT_ERROR,
    Reporter,
    UsageError,
    add_max_pixels_option,
    add_weights_option,
    finite_float,
    load_params,
    log,
    positive_int,
    same_file,
)

STDIO = "-"
EXAMPLES = [
    "jaxstyle apply starry.jxs photo.jpg -o out.png",
    "jaxstyle apply starry_night photos/ -o stylised/ --max-dim 1024",
    "jaxstyle apply three.jxs photo.jpg -o out.png --style-blend 0.5 0.5 0",
    "jaxstyle apply three.jxs photo.jpg -o out.jpg --style scream --strength 0.7",
    "cat photo.jpg | jaxstyle apply starry.jxs - > out.png",
    "jaxstyle apply three.jxs --list",
    "jaxstyle apply any photo.jpg --style-image painting.jpg -o out.png --alpha 0.8",
    "jaxstyle apply any photos/ --style-image a.jpg b.jpg --style-blend 0.7 0.3 -o out/",
    "jaxstyle apply any photo.jpg --style-image sky.jpg land.jpg --mask sky_mask.png -o out.png",
    "jaxstyle apply wct photo.jpg --style-image painting.jpg -o out.png --levels 3",
    "jaxstyle apply wct photo.jpg --style-image painting.jpg -o out.png --whitening "
    "newton-schulz",
    "jaxstyle apply wct photo.jpg --style-image painting.jpg -o out.png --transform efdm",
]


def tile_size(text: str) -> int:
    """--tile: 0 (never tile), or a multiple of 8 of at least 56 px (a core inside its margins)."""
    value = int(text)
    if value != 0 and (value < 56 or value % 8):
        raise argparse.ArgumentTypeError(f"must be 0 or a multiple of 8 >= 56, got {value}")
    return value


def levels_option(text: str) -> int | tuple[int, ...]:
    """--levels: N (relu{N}_1 .. relu1_1) or a comma-separated list of levels 1-5."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and 1 <= int(part) <= 5 for part in parts):
        raise argparse.ArgumentTypeError(f"must be a level 1-5 or a list such as 4,2,1, got "
                                         f"{text!r}")
    return int(parts[0]) if len(parts) == 1 else tuple(int(part) for part in parts)


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_command(commands, "apply", "stylise photos with a trained model in one pass",
                    EXAMPLES)
    p.add_argument("model", metavar="MODEL",
                   help="model file (.jxs), or the name of a built-in model or style")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files, folders (searched recursively), or - for stdin")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output image for one input, else a folder (<name>.png inside); "
                        "default for -: stdout (PNG)")
    p.add_argument("--style", metavar="NAME|INDEX", help="the model's style to use "
                   "(default: the first, or the built-in style named)")
    p.add_argument("--style-blend", type=finite_float, nargs="+", metavar="W",
                   help="blend all the model's styles with these weights (one per style)")
    p.add_argument("--strength", type=finite_float, default=1.0,
                   help="1: fully stylised, 0: the photo")
    p.add_argument("--preserve-color", choices=("luminance",),
                   help="keep the photo's colours (stylised luminance, photo's chroma)")
    p.add_argument("--max-dim", type=positive_int,
                   help="shrink inputs so the longer side is at most this (default: full size)")
    p.add_argument("--batch", type=positive_int, default=4,
                   help="images of the same size stylised per call")
    p.add_argument("--list", action="store_true", help="describe the model and its styles")
    p.add_argument("--timings", action="store_true",
                   help="print where the time went, per stage (decode, resize, transfer, "
                        "network, encode), at the end")
    any_style = p.add_argument_group("any style (model `any` or another decoder file)")
    any_style.add_argument("--style-image", nargs="+", metavar="PATH",
                           help="painting(s) to use as the style; several are blended "
                                "(--style-blend) or placed by --mask")
    any_style.add_argument("--alpha", type=finite_float, default=1.0,
                           help="style strength in feature space: 1 full, 0 the photo")
    any_style.add_argument("--style-size", type=positive_int, default=512,
                           help="longer side the style images are resized to, px: larger "
                                "paints smaller strokes relative to the photo")
    any_style.add_argument("--mask", action="append", metavar="PATH",
                           help="greyscale mask per style image (white = that style here), "
                                "or one mask for two style images")
    any_style.add_argument("--levels", type=levels_option, metavar="N|LIST",
                           help="WCT models: run relu{N}_1 down to relu1_1, or the levels "
                                "listed (e.g. 4,2,1); fewer are faster and keep more of the "
                                "photo (default: the model's own choice, --list)")
    any_style.add_argument("--whitening", choices=("eigh", "newton-schulz"), default="eigh",
                           help="WCT models: the photo's whitening, by eigendecomposition "
                                "(eigh) or by Newton-Schulz iterations (matrix products only, "
                                "as the ONNX export runs it; nearly the same picture)")
    any_style.add_argument("--transform", choices=("wct", "efdm"), default="wct",
                           help="WCT models: each level's feature transform, whitening and "
                                "colouring (wct) or exact feature distribution matching "
                                "(efdm: each channel takes the painting's values "
                                "rank for rank, keeping more of the photo's layout)")
    any_style.add_argument("--structure", type=finite_float, metavar="S",
                           help="0..1: how much of the photo's blurred luminance (its light "
                                "and dark areas) is put back under the picture (default: the "
                                "model's own, 1 for WCT models, 0 for AdaIN ones)")
    any_style.add_argument("--tile", type=tile_size, metavar="PX",
                           help="photos over (2 x PX)^2 pixels run in PX-pixel tiles: the same "
                                "result in bounded memory; 0: never (default: 1024 for AdaIN "
                                "models, about 1 GB a tile; 512 for WCT)")
    add_weights_option(p)
    add_max_pixels_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_apply)


class Job(NamedTuple):
    source: Union[Path, str]   # a file, or STDIO
    target: Union[Path, str]   # a file, or STDIO


def _folder_images(folder: Path) -> list[Path]:
    from jaxstyle.data import list_images

    return list_images(folder)


def plan_jobs(inputs: list[str], output: Optional[str]) -> list[Job]:
    """Where each input goes; UsageError for combinations that cannot work, before any work."""
    from jaxstyle.images import save_format

    if STDIO in inputs:
        if len(inputs) > 1:
            raise UsageError("- (stdin) must be the only input")
        if output in (None, STDIO):
            return [Job(STDIO, STDIO)]
        save_format(output)
        return [Job(STDIO, Path(output))]
    if output is None:
        raise UsageError("give -o OUT (an image file for one input, else a folder)")
    if output == STDIO:
        raise UsageError("-o - (stdout) needs - (stdin) as the input")
    out = Path(output)
    single_file = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    if single_file and not out.is_dir() and out.suffix:
        save_format(out)  # an unknown image type is an error, not a folder name
        return [Job(Path(inputs[0]), out)]
    if out.exists() and not out.is_dir():
        raise UsageError(f"output {out} is a file; several outputs need a folder")
    pairs: list[tuple[Path, Path]] = []  # (source, target) files
    for text in inputs:
        source = Path(text)
        if source.is_dir():
            pairs.extend((path, out / path.relative_to(source).with_suffix(".png"))
                         for path in _folder_images(source))
        else:
            pairs.append((source, out / (source.stem + ".png")))
    targets: dict[Path, Path] = {}
    for source, target in pairs:
        if target in targets:
            raise UsageError(f"{targets[target]} and {source} would both be written "
                             f"to {target}")
        if same_file(target, source):
            raise UsageError(f"output {target} is also an input")
        targets[target] = source
    return [Job(source, target) for source, target in pairs]


def _expected_shape(path: Path, max_dim: Optional[int]) -> Optional[tuple[int, int]]:
    """(H, W) the image will have after loading, from its header; None if unreadable."""
    from PIL import Image

    from jaxstyle.images import fit_size

    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated by 90 degrees
                width, height = height, width
    except Exception:  # noqa: BLE001 - the load reports the real error
        return None
    return fit_size(height, width, max_dim)


def _read_stdin_image(max_dim, max_pixels):
    from jaxstyle.images import load_image

    data = sys.stdin.buffer.read()
    with tempfile.NamedTemporaryFile(suffix=".img") as file:
        file.write(data)
        file.flush()
        return load_image(file.name, max_dim, max_pixels, what="stdin image")


def _write(target: Path | str, image: Any) -> None:
    import numpy as np
    from PIL import Image

    from jaxstyle.images import PNG_COMPRESS_LEVEL, save_image, to_uint8

    if target == STDIO:
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(np.asarray(image)), mode="RGB").save(
            buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
    else:
        save_image(target, image)


def _check_any_options(args: argparse.Namespace) -> None:
    """UsageError for options of the other kind of model, before any work."""
    decoder = args.style_image is not None
    if not decoder:
        for option, given in (("--alpha", args.alpha != 1.0), ("--mask", args.mask),
                              ("--levels", args.levels is not None),
                              ("--whitening", args.whitening != "eigh"),
                              ("--transform", args.transform != "wct"),
                              ("--structure", args.structure is not None)):
            if given:
                raise UsageError(f"{option} works with an arbitrary-style decoder "
                                 "(jaxstyle apply any ... --style-image PAINTING)")
    elif args.style is not None:
        raise UsageError("--style picks a style inside a trained model; with any style give "
                         "--style-image")
    if not 0 <= args.alpha <= 1:
        raise UsageError(f"--alpha must be in [0, 1], got {args.alpha}")
    if not 0 <= args.strength <= 1:
        raise UsageError(f"--strength must be in [0, 1], got {args.strength}")
    if args.structure is not None and not 0 <= args.structure <= 1:
        raise UsageError(f"--structure must be in [0, 1], got {args.structure}")


def cmd_apply(args: argparse.Namespace) -> int:
    from jaxstyle.arbitrary.decoderfile import is_decoder_header
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.paramfile import read_header

    path, builtin_style = resolve_model(args.model)
    _check_any_options(args)
    if is_decoder_header(read_header(path)):
        return _apply_any(args, path)
    if args.style_image is not None:
        raise UsageError(f"--style-image needs an arbitrary-style decoder (e.g. `any`); "
                         f"{args.model} is a model trained for its own styles")
    return _apply_trained(args, path, builtin_style)


def _apply_any(args: argparse.Namespace, path: Path) -> int:
    """Engine 3: any style image(s), one pass."""
    import numpy as np

    from jaxstyle.arbitrary.apply import apply_any, make_any_stylizer, region_masks
    from jaxstyle.arbitrary.decoderfile import describe_decoder, load_decoder, needs_vgg
    from jaxstyle.arbitrary.transfer import all_devices_mesh
    from jaxstyle.config import normalised_blend
    from jaxstyle.errors import ConfigError
    from jaxstyle.images import load_image, resize

    params, header = load_decoder(path)
    if args.list:
        print(describe_decoder(header))
        return 0
    if not args.style_image:
        raise UsageError(f"{args.model} is an arbitrary-style decoder: give --style-image "
                         "PAINTING")
    if not args.inputs:
        raise UsageError("give at least one INPUT (a file, a folder or -), or --list")
    count = len(args.style_image)
    if args.style_blend is not None and args.mask:
        raise UsageError("give --style-blend or --mask, not both: masks say where each style "
                         "goes")
    if args.style_blend is not None:
        try:
            normalised_blend(args.style_blend, count, "style images")
        except ConfigError as exc:
            raise UsageError(f"--style-blend: {exc}") from None
    jobs = plan_jobs(args.inputs, args.output)
    if not jobs:
        raise UsageError(f"no images found in {', '.join(args.inputs)}")
    styles = [load_image(p, args.style_size, args.max_pixels, what="style image")
              for p in args.style_image]
    mask_images = [load_image(p, None, args.max_pixels, what="mask")[..., 0]
                   for p in args.mask or []]
    if mask_images:
        region_masks(np.stack([resize(m[..., None], (8, 8))[..., 0] for m in mask_images]),
                     count)  # a wrong count fails before any work
    # A model with its own distilled encoder needs no VGG19 weights: none are loaded.
    vgg = load_params(args.weights, args.quiet) if needs_vgg(header) else None
    try:
        stylizer = make_any_stylizer(vgg, params, header, levels=args.levels,
                                     mesh=all_devices_mesh(),
                                     tile="default" if args.tile is None else args.tile or None,
                                     whitening=args.whitening, transform=args.transform)
    except ConfigError as exc:
        raise UsageError(f"{args.model}: {exc}") from None
    stats = stylizer.style_stats(styles)  # once, not once per batch

    def stylize_batch(images):
        masks = None
        if mask_images:
            masks = np.stack([resize(m[..., None], images.shape[1:3])[..., 0]
                              for m in mask_images])
        return apply_any(None, params, header, images, styles, alpha=args.alpha,
                         blend=args.style_blend, masks=masks,
                         preserve_color=args.preserve_color, strength=args.strength,
                         stylizer=stylizer, stats=stats, structure=args.structure)

    code = _run_jobs(jobs, args, stylize_batch)
    if args.timings and hasattr(stylizer, "level_milliseconds") and jobs[0].source != STDIO:
        from jaxstyle.errors import JaxstyleError
        from jaxstyle.images import decode_image, resize_to

        try:  # the last photo again, level by level (untiled sizes only)
            pixels, size = decode_image(jobs[-1].source, args.max_dim, args.max_pixels)
        except JaxstyleError:
            return code
        if not stylizer.runs_tiled(*size):
            image = resize_to(pixels, size, jobs[-1].source)[None]
            for name, ms in stylizer.level_milliseconds(image, stats).items():
                print(f"  WCT level {name}: {ms:.1f} ms (warm, one image, timed alone)",
                      file=sys.stderr)
    return code


def _apply_trained(args: argparse.Namespace, path: Path, builtin_style: Optional[str]) -> int:
    """Engine 2: a network trained for its styles."""
    from jaxstyle.feedforward.apply import apply_model, make_stylizer, style_weights_for
    from jaxstyle.feedforward.modelfile import describe, load_model

    params, header = load_model(path)
    if args.list:
        print(describe(header))
        return 0
    if not args.inputs:
        raise UsageError("give at least one INPUT (a file, a folder or -), or --list")
    if args.style is not None and args.style_blend is not None:
        raise UsageError("give --style or --style-blend, not both")
    style = args.style if args.style is not None else (
        None if args.style_blend is not None else builtin_style)
    style_weights_for(header, style, args.style_blend)  # a bad choice fails before any work
    jobs = plan_jobs(args.inputs, args.output)
    if not jobs:
        raise UsageError(f"no images found in {', '.join(args.inputs)}")
    stylizer = make_stylizer(params, header)
    options = dict(style=style, blend=args.style_blend, strength=args.strength,
                   preserve_color=args.preserve_color, stylizer=stylizer)
    return _run_jobs(jobs, args, lambda images: apply_model(params, header, images, **options))


def _run_jobs(jobs: list[Job], args: argparse.Namespace,
              stylize_batch: Callable[[Any], Any]) -> int:
    """Load, stylise (batched by shape, `jaxstyle.cli.pipeline`) and write every job; a failed
    image is counted, not fatal. stylize_batch: (N, H, W, 3) floats in [0, 1] -> the same."""
    import time

    from jaxstyle.cli.pipeline import StageClock, plan_batches, run_pipeline
    from jaxstyle.errors import JaxstyleError
    from jaxstyle.images import decode_image, resize_to

    quiet = args.quiet
    report = Reporter(len(jobs), quiet, unit="image")
    clock = StageClock()
    failures = 0
    started = time.perf_counter()

    def fail(job: Job, error: Exception) -> None:
        nonlocal failures
        failures += 1
        report.line(f"error: {error}")
        report.advance(1)

    def load(job: Job) -> Any:
        if job.source == STDIO:
            with clock.measure("decode"):
                return _read_stdin_image(args.max_dim, args.max_pixels)
        with clock.measure("decode"):
            pixels, size = decode_image(job.source, args.max_dim, args.max_pixels, what="input")
        with clock.measure("resize"):
            return resize_to(pixels, size, job.source, what="input")

    def write(job: Job, image: Any) -> None:
        _write(job.target, image)

    try:
        if jobs[0].source == STDIO:
            batches = [[jobs[0]]]
        else:
            shapes = [_expected_shape(Path(job.source), args.max_dim) for job in jobs]
            batches = [[jobs[i] for i in batch] for batch in plan_batches(shapes, args.batch)]
        run_pipeline(batches, load, stylize_batch, write, on_done=lambda job: report.advance(1),
                     on_error=fail, errors=(JaxstyleError,), clock=clock)
    finally:
        report.close()
    if args.timings:
        print(clock.table(time.perf_counter() - started, len(jobs)), file=sys.stderr)
    done = len(jobs) - failures
    if jobs[0].target != STDIO:
        where = jobs[0].target if len(jobs) == 1 else args.output
        log(f"stylised {done} of {len(jobs)} image(s) into {where}", quiet)
    if failures:
        print(f"error: {failures} of {len(jobs)} image(s) failed", file=sys.stderr)
        return EXIT_ERROR
    return 0

