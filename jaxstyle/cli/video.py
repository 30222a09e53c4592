"""`jaxstyle video`: stylize a clip frame by frame with a trained model (fast), or by
optimisation from the previous stylized frame (slow; the quality reference)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Optional

from jaxstyle.cli.common import (
    Reporter,
    UsageError,
    add_weights_option,
    config_from_args,
    config_options,
    finite_float,
    load_params,
    log,
    positive_int,
)
from jaxstyle.interrupts import Stopped, by_signal, exit_code

if TYPE_CHECKING:  # annotations only: the command imports these when it runs
    import numpy as np

    from jaxstyle.config import StyleConfig

EXAMPLES = [
    "jaxstyle video clip.mp4 -o out.mp4 --model starry_night",
    "jaxstyle video clip.mp4 -o out.mp4 --model my.jxs --style 2 --max-dim 720 --batch 8",
    "jaxstyle video clip.mp4 -o out.mp4 --model starry_night --smooth 0.3",
    "jaxstyle video clip.mp4 -o out.mp4 --style-image art.jpg --steps 300 --frame-steps 50",
    "jaxstyle video clip.mp4 -o out.mp4 --model any --style-image art.jpg --alpha 0.8",
]


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_command(commands, "video", "stylize a video (audio, frame rate and rotation kept)",
                    EXAMPLES)
    p.add_argument("input", help="video file (anything FFmpeg reads)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4, .mov, .mkv)")
    p.add_argument("--model", help="a trained model file, a built-in style name, or `any` (an "
                                   "arbitrary-style decoder, with --style-image)")
    p.add_argument("--style-image", metavar="PATH",
                   help="with --model any (or another decoder): the painting, one pass per "
                        "frame; without --model: optimise every frame towards it (slow), "
                        "starting from the previous stylized frame (Ruder et al. 2016, "
                        "without flow)")
    p.add_argument("--alpha", type=finite_float, default=1.0,
                   help="style strength of an arbitrary-style decoder, 0..1")
    p.add_argument("--style-size", type=positive_int, default=512,
                   help="longer side of --style-image for a decoder, px")
    p.add_argument("--structure", type=finite_float, metavar="S",
                   help="a decoder's 0..1 share of each frame's blurred luminance put back "
                        "(default: the model's own, 1 for WCT, 0 for AdaIN)")
    p.add_argument("--style", help="style name or index inside the model")
    p.add_argument("--max-dim", type=positive_int, help="longer side of the output, px")
    p.add_argument("--batch", type=positive_int, default=8, help="frames per network call")
    p.add_argument("--crf", type=int, default=18, help="x264/x265 quality (lower is better)")
    p.add_argument("--codec", default="libx264", help="FFmpeg video encoder of the output")
    p.add_argument("--start", type=finite_float, metavar="SECONDS",
                   help="skip the video before this time (default: from the beginning)")
    p.add_argument("--duration", type=finite_float, metavar="SECONDS",
                   help="stylize this long a stretch (default: to the end)")
    p.add_argument("--smooth", type=finite_float, default=0.0,
                   help="blend each output with the previous one (0 = off, e.g. 0.3)")
    p.add_argument("--frame-steps", type=positive_int, default=50,
                   help="optimisation steps per frame after the first (--style-image)")
    config_options(p, skip=("max_dim",))
    add_weights_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_video)


def model_frame_stylizer(model: str, style: Optional[str],
                         ) -> Callable[[np.ndarray], np.ndarray]:
    """(N, H, W, 3) uint8 -> float frames with a trained feed-forward model."""
    import numpy as np

    from jaxstyle.feedforward.apply import make_stylizer, resolve_model, style_weights_for
    from jaxstyle.feedforward.modelfile import load_model

    path, builtin_style = resolve_model(model)
    params, header = load_model(path)
    weights = np.asarray(style_weights_for(header, style if style is not None else builtin_style))
    stylizer = make_stylizer(params, header)

    def stylize_frames(frames):
        images = np.asarray(frames, np.float32) / 255.0
        return np.asarray(stylizer(images, np.broadcast_to(weights, (len(images), len(weights)))))

    return stylize_frames


def decoder_frame_stylizer(path, args):
    """(N, H, W, 3) uint8 -> float frames with an arbitrary-style decoder and one painting."""
    import numpy as np

    from jaxstyle.arbitrary.apply import apply_any, make_any_stylizer
    from jaxstyle.arbitrary.decoderfile import load_decoder, needs_vgg
    from jaxstyle.arbitrary.transfer import all_devices_mesh
    from jaxstyle.images import load_image

    if not 0 <= args.alpha <= 1:
        raise UsageError(f"--alpha must be in [0, 1], got {args.alpha}")
    if args.structure is not None and not 0 <= args.structure <= 1:
        raise UsageError(f"--structure must be in [0, 1], got {args.structure}")
    params, header = load_decoder(path)
    style = load_image(args.style_image, args.style_size, what="style image")
    # A model with its own distilled encoder needs no VGG19 weights: none are loaded.
    vgg = load_params(args.weights, args.quiet) if needs_vgg(header) else None
    stylizer = make_any_stylizer(vgg, params, header, mesh=all_devices_mesh())
    stats = stylizer.style_stats([style])  # once, not once per batch

    def stylize_frames(frames):
        images = np.asarray(frames, np.float32) / 255.0
        return apply_any(None, params, header, images, [style], alpha=args.alpha,
                         stylizer=stylizer, stats=stats, structure=args.structure)

    return stylize_frames


def _model_mode(args: argparse.Namespace) -> tuple[str, Optional[Path]]:
    """'trained', 'decoder' or 'optimise', from --model and --style-image (UsageError if they
    do not fit together) and the decoder's path in 'decoder' mode."""
    if args.model is None:
        if args.style_image is None:
            raise UsageError("give --model MODEL, --model any --style-image PAINTING, or "
                             "--style-image PAINTING (optimisation)")
        return "optimise", None
    from jaxstyle.arbitrary.decoderfile import is_decoder_header
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.paramfile import read_header

    path, _ = resolve_model(args.model)
    if is_decoder_header(read_header(path)):
        if args.style_image is None:
            raise UsageError(f"{args.model} is an arbitrary-style decoder: give --style-image "
                             "PAINTING")
        if args.style is not None:
            raise UsageError("--style picks a style inside a trained model; with a decoder "
                             "give --style-image")
        return "decoder", path
    if args.style_image is not None:
        raise UsageError(f"--style-image with --model needs an arbitrary-style decoder (e.g. "
                         f"`any`); {args.model} is a model trained for its own styles")
    return "trained", path


def optimisation_frame_stylizer(args: argparse.Namespace | SimpleNamespace, cfg: StyleConfig,
                                ) -> Callable[[np.ndarray], np.ndarray]:
    """Frames one at a time by optimisation, each starting from the previous result."""
    import numpy as np

    from jaxstyle.gatys import StylizeInterrupted, stylize
    from jaxstyle.images import load_image

    params = load_params(args.weights, args.quiet)
    style = load_image(args.style_image, cfg.max_dim, what="style image")
    previous: list[Optional[np.ndarray]] = [None]  # the last frame's output

    def stylize_frames(frames: np.ndarray) -> np.ndarray:
        outputs: list[np.ndarray] = []
        for frame in np.asarray(frames, np.float32) / 255.0:
            first = previous[0] is None
            run_cfg = cfg if first else cfg.replace(steps=args.frame_steps, scales=1,
                                                    scale_steps=None)
            try:
                image, _ = stylize(params, frame, style, run_cfg, init_image=previous[0])
            except StylizeInterrupted as stop:
                # As a KeyboardInterrupt, stylize_video keeps the frames done before this one.
                raise Stopped(stop.signum) from None
            previous[0] = image
            outputs.append(image)
        return np.stack(outputs)

    return stylize_frames


def cmd_video(args: argparse.Namespace) -> int:
    from jaxstyle.video import VideoInterrupted, probe_video, stylize_video

    mode, decoder_path = _model_mode(args)
    if mode == "optimise" and args.style is not None:
        raise UsageError("--style picks a style inside --model; with --style-image leave it out")
    info = probe_video(args.input)  # a bad input fails here, before any weights are loaded
    max_dim = args.max_dim or max(info.width, info.height)
    if mode == "trained":
        stylize_frames = model_frame_stylizer(args.model, args.style)
        batch = args.batch
    elif mode == "decoder":
        stylize_frames = decoder_frame_stylizer(decoder_path, args)
        batch = args.batch
    else:
        cfg = config_from_args(args, max_dim=max_dim)
        stylize_frames = optimisation_frame_stylizer(args, cfg)
        batch = 1  # each frame starts from the one before
    report = Reporter(info.frames, args.quiet, unit="frame")

    def progress(done, total):
        report.advance(done - (report.bar.n if report.bar is not None else 0))

    try:
        result = stylize_video(args.input, args.output, stylize_frames, batch_size=batch,
                               max_dim=args.max_dim, crf=args.crf, codec=args.codec,
                               start=args.start, duration=args.duration, smooth=args.smooth,
                               pad_last_batch=mode != "optimise", progress=progress)
    except VideoInterrupted as stop:
        report.close()  # so the message is the last line, not under the bar
        where = f"kept {stop.frames_done} frames in {stop.partial_path}" if stop.partial_path \
            else "no frame was finished, nothing written"
        print(f"interrupted{by_signal(stop.signum)}: {where}; {Path(args.output).name} was "
              "not written", file=sys.stderr)
        return exit_code(stop.signum)
    finally:
        report.close()
    log(f"saved {result.path} ({result.frames} frames, {result.width}x{result.height}, "
        f"{float(result.frame_rate):.3g} fps) in {result.wall_seconds:.1f} s; "
        f"{result.timing_summary()}", args.quiet)
    return 0
