"""Frames per second of `jaxstyle video` in model mode, and where the wall time goes.

    python scripts/bench_video.py --model paintings --sizes 640x360 1280x720 --frames 48

For each size it writes a test clip (a 2 px/frame pan over a photo, H.264 crf 18) to a temp
folder, compiles the network once on a throwaway batch, then runs `stylize_video` with the
same stylizer, batch size and padding as `jaxstyle video --model` several times, the sizes
taking turns, and reports the median of each timing `VideoResult` carries. Decoding and
encoding run on their own threads, so the three stage times overlap and add up to more than
the wall time; "network idle" is how long the network waited for FFmpeg.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle.cli.video import model_frame_stylizer  # noqa: E402
from jaxstyle.flicker import make_motion_clip  # noqa: E402
from jaxstyle.video import VideoResult, stylize_video, write_video  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"
FRAME_RATE = 24
TIMINGS = ("wall_seconds", "stylize_seconds", "decode_seconds", "encode_seconds", "wait_seconds")


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720)."""
    width, _, height = text.partition("x")
    return int(width), int(height)


def make_test_clip(path: Path, photo: Path, width: int, height: int, frames: int) -> Path:
    """A camera panning 2 px per frame over the photo, written as H.264 (crf 18)."""
    image = np.asarray(Image.open(photo).convert("RGB"))
    clip, _ = make_motion_clip(image, (height, width), frames, "pan", 2.0)
    return write_video(path, clip, fps=FRAME_RATE)


def median_timings(results: list[VideoResult]) -> dict[str, float]:
    """The median of each timing over the repeats."""
    return {name: float(np.median([getattr(r, name) for r in results])) for name in TIMINGS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="paintings", help="a .jxs file or built-in name")
    parser.add_argument("--style", help="style name or index inside the model")
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1280x720"])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photo", default="coffee.jpg")
    args = parser.parse_args()

    stylize_frames = model_frame_stylizer(args.model, args.style)
    sizes = [parse_size(size) for size in args.sizes]
    results: dict[tuple[int, int], list[VideoResult]] = {size: [] for size in sizes}
    compile_seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        sources = {}
        for width, height in sizes:
            sources[width, height] = make_test_clip(Path(folder) / f"in_{width}x{height}.mp4",
                                                    IMAGES / args.photo, width, height,
                                                    args.frames)
            began = time.perf_counter()
            stylize_frames(np.zeros((args.batch, height, width, 3), np.uint8))
            compile_seconds[width, height] = time.perf_counter() - began
        # The sizes take turns, so a neighbour's load on a shared machine hits them alike.
        for repeat in range(args.repeats):
            for (width, height), source in sources.items():
                result = stylize_video(source, Path(folder) / f"out_{width}x{height}.mp4",
                                       stylize_frames, batch_size=args.batch,
                                       pad_last_batch=True)
                print(f"{width}x{height} run {repeat + 1}: {result.timing_summary()}",
                      file=sys.stderr, flush=True)
                results[width, height].append(result)

    print(f"`jaxstyle video --model {args.model}` path, batch {args.batch}, {args.frames}-frame "
          f"H.264 clip, median of {args.repeats} runs (stage times overlap):\n")
    print("| size | frames | frames/s | wall s | network s | decode s | encode s | "
          "network idle s | network share of wall | compile s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (width, height), runs in results.items():
        timing = median_timings(runs)
        wall, frames = timing["wall_seconds"], runs[0].frames
        print(f"| {width}x{height} | {frames} | {frames / wall:.2f} | {wall:.2f} | "
              f"{timing['stylize_seconds']:.2f} | {timing['decode_seconds']:.2f} | "
              f"{timing['encode_seconds']:.2f} | {timing['wait_seconds']:.2f} | "
              f"{timing['stylize_seconds'] / wall:.0%} | {compile_seconds[width, height]:.1f} |")


if __name__ == "__main__":
    main()
