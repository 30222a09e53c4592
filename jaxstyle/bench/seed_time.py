"""How long the seed's own picture takes (issue 36): `--preset fast` against the seed's run.

For each held-out photo x painting pair and size:

- **the seed's loss**: jaxstyle at the seed's defaults (its Keras Adam, 1000 steps from the
  photo), the final image scored with the seed loss. Slow, so cached in `--cache` by inputs;
  its per-step losses are kept for the plot.
- **the seed's time**: TensorFlow/Keras's step (the peers extra) timed `--tf-steps` times
  after a warm-up, half before and half after the preset's process, median x 1000: what the
  tutorial's run costs on this machine. Without TensorFlow the column is empty and no time
  ratio is claimed.
- **the preset**: `jaxstyle stylize --preset fast` as a user runs it, one whole process
  timed from start to saved file (start-up, weights, compile, steps, save), the saved file
  scored with the seed loss, layout and grid, like the seed's image.

The table gives loss / seed loss (target <= 1), preset seconds / TF's 1000 steps (target
<= 0.25, moonshot 0.1) and layout (preset's >= the seed run's - 0.05); `--plot` draws
loss against seconds with the seed's end point marked (matplotlib).

The defaults are the held-out pairs: photos no model was trained on x the two paintings
nothing is tuned on (The Great Wave, Udnie). Tune presets on other pairs.

    jaxstyle bench seed-time --sizes 256 --plot seed-time.png
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle._types import ParamTree
from jaxstyle.bench.timing import machine_line, markdown_table
from jaxstyle.config import PRESETS, StyleConfig
from jaxstyle.errors import ConfigError
from jaxstyle.weights import Params

EXAMPLES = ["jaxstyle bench seed-time --sizes 256 512 --plot seed-time.png",
            "jaxstyle bench seed-time --pairs coffee.jpg:starry_night.jpg --sizes 256 "
            "--tf-steps 0"]
HELD_OUT_PAIRS = ["astronaut.jpg:great_wave.jpg", "chelsea.jpg:udnie.jpg",
                  "astronaut.jpg:udnie.jpg", "chelsea.jpg:great_wave.jpg"]
SEED_STEPS = 1000
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "jaxstyle-seed-time-cache"
LAYOUT_SLACK = 0.05  # the preset may keep the photo's layout this much less than the seed
SHEET_STEPS = (20, 100)  # the seed's run is also shown this early (the brief's yardsticks)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--pairs", nargs="+", default=HELD_OUT_PAIRS, metavar="PHOTO:PAINTING",
                   help="photo:painting pairs (paths, or names among the shared images)")
    p.add_argument("--sizes", nargs="+", type=int, default=[256],
                   help="longer side of the photo, px")
    p.add_argument("--preset", default="fast", choices=tuple(PRESETS),
                   help="the preset timed against the seed")
    p.add_argument("--options", metavar="'--OPTION VALUE ...'",
                   help="more `jaxstyle stylize` options for the timed run (a candidate)")
    p.add_argument("--seed-steps", type=int, default=SEED_STEPS,
                   help="length of the seed's run (the seed's own is 1000; fewer only to "
                        "try the benchmark out)")
    p.add_argument("--tf-steps", type=int, default=10,
                   help="TensorFlow steps timed (after 2 warm-up steps) to price the seed's "
                        "1000; 0: no TensorFlow")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help="the seed's 1000-step results are kept here between runs")
    p.add_argument("--plot", metavar="PNG", help="loss against seconds, per pair")
    p.add_argument("--sheet", metavar="PNG",
                   help="a picture per pair: photo | painting | the seed's run at "
                        f"{', '.join(map(str, SHEET_STEPS))} and {SEED_STEPS} steps | the preset")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    add_weights_option(p)


def parse_pair(text: str) -> tuple[str, str]:
    photo, sep, painting = text.partition(":")
    if not sep or not photo or not painting:
        raise ConfigError(f"--pairs {text!r}: write PHOTO:PAINTING, e.g. "
                          "chelsea.jpg:udnie.jpg")
    return photo, painting


def seed_reference(params: ParamTree, content: np.ndarray, style: np.ndarray, size: int,
                   cache: Path | None, steps: int = SEED_STEPS) -> dict:
    """The seed's run (jaxstyle, seed defaults, 1000 steps): its final image and seed loss,
    the loss of each step's starting image, and its median step time here."""
    import jax

    from jaxstyle.gatys import init_state, make_step
    from jaxstyle.objective import loss_fn, make_targets
    from jaxstyle.vgg import prepare_params

    cfg = StyleConfig(steps=steps, max_dim=size)
    # The weights are part of the key: a cached run is never scored under other weights.
    weights = hashlib.sha256(np.asarray(params["block1_conv1"]["kernel"], np.float32).tobytes())
    key = hashlib.sha256(content.tobytes() + style.tobytes() + repr(
        (content.shape, style.shape, steps, weights.hexdigest())).encode()).hexdigest()[:20]
    path = None if cache is None else cache / f"seed-{key}.npz"
    if path is not None and path.exists():
        with np.load(path) as saved:
            return {k: saved[k] for k in saved.files}
    prepared = jax.device_put(prepare_params(params))
    targets, state = make_targets(prepared, content, style, cfg), init_state(content, cfg)
    step = make_step(cfg)
    losses, times = [], []
    for _ in range(steps):
        started = time.perf_counter()
        state, metrics = step(prepared, targets, state)
        losses.append(float(metrics["loss"]))  # synchronises: each step timed alone
        times.append(time.perf_counter() - started)
    image = np.asarray(jax.device_get(state.image), np.float32)[0]
    result = {"image": image, "losses": np.asarray(losses),
              "loss": np.asarray(float(loss_fn(prepared, targets, image, cfg)[0])),
              "step_s": np.asarray(statistics.median(times[min(5, steps - 1):]))}
    if path is not None:
        from jaxstyle.files import atomic_write

        with atomic_write(path) as f:
            np.savez(f, **result)
    return result


def tf_peer(params: Params, content: np.ndarray, style: np.ndarray, steps: int) -> Any:
    """TensorFlow's seed step on these inputs, warmed up; None without TensorFlow."""
    from jaxstyle.bench.peers import PeerUnavailable, build

    if steps <= 0:
        return None
    try:
        peer = build("tf", params, content[None], style[None], StyleConfig())
    except PeerUnavailable as missing:
        print(f"# {missing}: no TensorFlow time", file=sys.stderr)
        return None
    for _ in range(2):
        peer.step()
    return peer


def time_peer(peer: Any, steps: int) -> list[float]:
    """Seconds of each of `steps` TensorFlow steps."""
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        peer.step()  # returns the loss as a float: the step has finished
        times.append(time.perf_counter() - started)
    return times


def timed_process(photo: Path, painting: Path, size: int, preset: str, options: str | None,
                  weights: str | None, folder: Path) -> dict:
    """`jaxstyle stylize --preset` as one timed process: seconds, output file, its last
    stderr lines (the stop rule that ended it)."""
    import shlex

    output = folder / f"{photo.stem}-{painting.stem}-out.png"
    command = [sys.executable, "-m", "jaxstyle", "stylize", str(photo), str(painting),
               "-o", str(output), "--preset", preset, "--max-dim", str(size),
               *shlex.split(options or "")]
    if weights:
        command += ["--weights", weights]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise ConfigError(f"jaxstyle stylize failed on {photo.name} x {painting.name}: "
                          f"{tail[0]}")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    stopped = next((line for line in lines if line.startswith("stopped at step")), "")
    return {"seconds": seconds, "output": output, "stopped": stopped}


def run(args: argparse.Namespace) -> int:
    from jaxstyle import cputune
    from jaxstyle.bench.fixtures import vgg_params
    from jaxstyle.bench.scoring import load_pair, seed_loss
    from jaxstyle.images import load_image, save_image
    from jaxstyle.quality import grid_excess, layout_score

    pairs = [parse_pair(text) for text in args.pairs]
    params = vgg_params(args.weights)
    # A first step on a new CPU measures its conv paths (once per machine): do it here, so
    # no timed process pays for it.
    conv = cputune.conv_path()
    print(machine_line() + f"  conv path {conv}")
    print(f"# jaxstyle bench seed-time --preset {args.preset} {args.options or ''}".rstrip())
    rows, curves, sheet = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            for photo, painting in pairs:
                cfg = StyleConfig(steps=args.seed_steps, max_dim=size)
                content, style = load_pair(photo, painting, cfg)
                seed = seed_reference(params, content, style, size, args.cache,
                                      args.seed_steps)
                # TF's steps are timed half before and half after the preset's process, so a
                # neighbour's load over the run weighs on both sides alike.
                peer = tf_peer(params, content, style, args.tf_steps)
                tf_times = [] if peer is None else time_peer(peer, (args.tf_steps + 1) // 2)
                # The process reads the pair as the seed's run got it (lossless PNGs at the
                # working size), so both optimise one objective: the CLI's own loading
                # resamples the painting otherwise than `load_pair` (3.7% on the seed loss
                # of the same preset run, measured on the tuning pair).
                inputs = [Path(folder) / f"{Path(name).stem}-{size}.png"
                          for name in (photo, painting)]
                save_image(inputs[0], content)
                save_image(inputs[1], style)
                run_ = timed_process(inputs[0], inputs[1], size, args.preset, args.options,
                                     args.weights, Path(folder))
                if peer is not None:
                    tf_times += time_peer(peer, args.tf_steps // 2)
                del peer
                tf_step = statistics.median(tf_times) if tf_times else None
                image = load_image(run_["output"])
                loss = seed_loss(params, content, style, image, cfg)
                seed_layout = layout_score(seed["image"], content)
                row = {"pair": f"{Path(photo).stem} x {Path(painting).stem}", "size": size,
                       "hw": list(content.shape[:2]), "seed_loss": float(seed["loss"]),
                       "loss": loss, "loss_ratio": loss / float(seed["loss"]),
                       "seconds": run_["seconds"], "stopped": run_["stopped"],
                       "jaxstyle_seed_step_ms": 1e3 * float(seed["step_s"]),
                       "tf_step_ms": None if tf_step is None else 1e3 * tf_step,
                       "tf_1000_s": None if tf_step is None else args.seed_steps * tf_step,
                       "layout": layout_score(image, content), "seed_layout": seed_layout,
                       "grid": grid_excess(image, content)}
                row["time_ratio"] = (None if tf_step is None
                                     else run_["seconds"] / row["tf_1000_s"])
                rows.append(row)
                curves.append((row, seed["losses"]))
                if args.sheet:
                    sheet.append(sheet_row(params, content, style, cfg, seed["image"], image,
                                           args.cache))
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(markdown_table(
        ["pair", "size", "seed loss", "preset ÷ seed", "preset s", "TF 1000 steps s",
         "preset ÷ TF (≤ 0.25)", "layout (seed's)", "grid"],
        [[r["pair"], f"{r['hw'][1]}x{r['hw'][0]}", f"{r['seed_loss']:.4g}",
          f"{r['loss_ratio']:.3f}", f"{r['seconds']:.1f}",
          "-" if r["tf_1000_s"] is None else f"{r['tf_1000_s']:.0f}",
          "-" if r["time_ratio"] is None else f"{r['time_ratio']:.3f}",
          f"{r['layout']:.3f} ({r['seed_layout']:.3f})", f"{r['grid']:.2f}"] for r in rows]))
    for r in rows:
        if r["stopped"]:
            print(f"- {r['pair']} at {r['size']}: {r['stopped']}")
    if args.json:
        from jaxstyle.files import atomic_write

        with atomic_write(args.json) as f:
            f.write(json.dumps(rows, indent=1).encode())
    if args.plot:
        plot(curves, args.plot)
    if args.sheet:
        from jaxstyle.bench.scoring import picture

        picture(sheet, args.sheet)
    misses = [r for r in rows if r["loss_ratio"] > 1 or r["layout"] < r["seed_layout"]
              - LAYOUT_SLACK]
    return 1 if misses else 0


def sheet_row(params: ParamTree, content: np.ndarray, style: np.ndarray, cfg: StyleConfig,
              seed_image: np.ndarray, preset_image: np.ndarray,
              cache: Path | None) -> tuple[np.ndarray, ...]:
    """photo | painting | the seed's run after each of SHEET_STEPS | after its own steps |
    the preset's output: one row of the picture. The early images are the seed's run cut
    short (`gatys_reference`, cached), the same trajectory as its 1000 steps."""
    from jaxstyle.bench.scoring import gatys_reference

    early = [gatys_reference(params, content, style, cfg.replace(steps=steps), cache)
             for steps in SHEET_STEPS if steps < cfg.total_steps]
    return (content, style, *early, seed_image, preset_image)


def plot(curves: list[tuple[dict[str, Any], np.ndarray]], path: str) -> None:
    """Loss against seconds per pair: the seed's run priced at TF's step (or jaxstyle's,
    without TF), its end point marked, and the preset's end point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 3.4), squeeze=False)
    for ax, (row, losses) in zip(axes[0], curves):
        step_s = (row["tf_step_ms"] or row["jaxstyle_seed_step_ms"]) / 1e3
        who = "TF" if row["tf_step_ms"] else "jaxstyle"
        seconds = step_s * np.arange(1, len(losses) + 1)
        ax.plot(seconds, losses, color="0.5", label=f"seed (Adam, {who} step)")
        ax.plot(seconds[-1], row["seed_loss"], "ks", label="seed's end point")
        ax.plot(row["seconds"], row["loss"], "r*", markersize=12, label="preset, whole process")
        ax.axhline(row["seed_loss"], color="k", lw=0.5, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("seconds")
        ax.set_title(f"{row['pair']}, {row['size']} px", fontsize=9)
    axes[0][0].set_ylabel("seed loss")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
