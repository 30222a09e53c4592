"""`jaxstyle bench video`: frames per second of `jaxstyle video` in model mode, and where the
wall time goes.

    jaxstyle bench video --model paintings --sizes 640x360 1280x720 --frames 48

For each size it writes a test clip (a 2 px/frame pan over a photo, H.264 crf 18) to a temp
folder, compiles the network once on a throwaway batch, then runs `stylize_video` with the
same stylizer, batch size and padding as `jaxstyle video --model` several times, the sizes
taking turns, and reports the median of each timing `VideoResult` carries. Decoding and
encoding run on their own threads, so the three stage times overlap and add up to more than
the wall time; "network idle" is how long the network waited for FFmpeg.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path
from typing import Any

from jaxstyle.errors import ConfigError

EXAMPLES = ["jaxstyle bench video --model paintings --sizes 640x360 1280x720 --frames 48 "
            "--repeats 5",
            "jaxstyle bench video --sizes 320x180 --frames 8 --batch 4 --repeats 1"]

FRAME_RATE = 24
TIMINGS = ("wall_seconds", "stylize_seconds", "decode_seconds", "encode_seconds", "wait_seconds")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="paintings", help="a .jxs file or built-in name")
    p.add_argument("--style", help="style name or index inside the model; default: the "
                                   "model's own")
    p.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"], metavar="WxH",
                   help="frame sizes of the test clips, taking turns")
    p.add_argument("--frames", type=int, default=48, help="frames per test clip")
    p.add_argument("--batch", type=int, default=8, help="frames per network call")
    p.add_argument("--repeats", type=int, default=3, help="runs of each size")
    p.add_argument("--photo", default="coffee.jpg",
                   help="the photo the camera pans over: a path, or a shared image's name")


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720)."""
    width, _, height = text.partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise ConfigError(f"--sizes: {text!r} is not WIDTHxHEIGHT (e.g. 1280x720)") from None
    if min(size) < 1:
        raise ConfigError(f"--sizes: {text!r} has a side under 1 px")
    return size


def make_test_clip(path: Path, photo: Path, width: int, height: int, frames: int) -> Path:
    """A camera panning 2 px per frame over the photo, written as H.264 (crf 18)."""
    import numpy as np
    from PIL import Image

    from jaxstyle.flicker import make_motion_clip
    from jaxstyle.video import write_video

    image = np.asarray(Image.open(photo).convert("RGB"))
    clip, _ = make_motion_clip(image, (height, width), frames, "pan", 2.0)
    return write_video(path, clip, fps=FRAME_RATE)


def median_timings(results: Any) -> dict[str, float]:
    """The median of each timing over the repeats (`Timing` of each VideoResult field)."""
    from jaxstyle.bench.timing import Timing

    return {name: Timing(tuple(getattr(r, name) for r in results)).median for name in TIMINGS}


def results_table(results: dict, compile_seconds: dict) -> str:
    from jaxstyle.bench.timing import markdown_table

    rows = []
    for (width, height), runs in results.items():
        timing = median_timings(runs)
        wall, frames = timing["wall_seconds"], runs[0].frames
        rows.append([f"{width}x{height}", frames, f"{frames / wall:.2f}", f"{wall:.2f}",
                     f"{timing['stylize_seconds']:.2f}", f"{timing['decode_seconds']:.2f}",
                     f"{timing['encode_seconds']:.2f}", f"{timing['wait_seconds']:.2f}",
                     f"{timing['stylize_seconds'] / wall:.0%}",
                     f"{compile_seconds[width, height]:.1f}"])
    return markdown_table(["size", "frames", "frames/s", "wall s", "network s", "decode s",
                           "encode s", "network idle s", "network share of wall",
                           "compile s"], rows)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from jaxstyle.bench.fixtures import image_path
    from jaxstyle.bench.timing import machine_line, time_alternating, time_calls
    from jaxstyle.cli.video import model_frame_stylizer
    from jaxstyle.video import stylize_video

    if args.frames < 2 or args.batch < 1 or args.repeats < 1:
        raise ConfigError("--frames must be >= 2, --batch and --repeats >= 1")
    sizes = list(dict.fromkeys(parse_size(size) for size in args.sizes))
    photo = image_path(args.photo)
    stylize_frames = model_frame_stylizer(args.model, args.style)
    results: dict[tuple[int, int], list[Any]] = {size: [] for size in sizes}
    compile_seconds: dict[tuple[int, int], float] = {}
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        sources: dict[tuple[int, int], Path] = {}
        for width, height in sizes:
            sources[width, height] = make_test_clip(Path(folder) / f"in_{width}x{height}.mp4",
                                                    photo, width, height, args.frames)
            throwaway = np.zeros((args.batch, height, width, 3), np.uint8)
            compile_seconds[width, height] = time_calls(
                functools.partial(stylize_frames, throwaway), repeats=1, warmup=0).median

        def one_run(size, source):
            def call():
                width, height = size
                result = stylize_video(source, Path(folder) / f"out_{width}x{height}.mp4",
                                       stylize_frames, batch_size=args.batch,
                                       pad_last_batch=True)
                print(f"{width}x{height} run {len(results[size]) + 1}: "
                      f"{result.timing_summary()}", file=sys.stderr, flush=True)
                results[size].append(result)
            return call

        # The sizes take turns, so a neighbour's load on a shared machine hits them alike.
        # What is reported is each VideoResult's own timings (the call's outer time is the
        # same run's wall time, a print longer).
        time_alternating({size: one_run(size, source) for size, source in sources.items()},
                         args.repeats, warmup=0, block=1)

    print(f"\n`jaxstyle video --model {args.model}` path, batch {args.batch}, {args.frames}-frame "
          f"H.264 clip, median of {args.repeats} runs (stage times overlap):\n")
    print(results_table(results, compile_seconds))
    return 0
