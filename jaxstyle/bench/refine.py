"""Paint fast, then refine: the seed loss against wall-clock time of the optimiser started
from the photo and from each shipped one-pass model's output, Adam and L-BFGS, on held-out
photos (BENCHMARKS.md "Paint fast, then refine", README's docs/refine.png).

    jaxstyle bench refine --size 256 --json /tmp/refine-256.json
    jaxstyle bench refine --size 512 --arms photo/adam/100 paintings/adam/50 \
        --json /tmp/refine-512.json
    jaxstyle bench refine --table /tmp/refine-256.json /tmp/refine-512.json \
        --plot docs/refine.png

An arm is START/OPTIMISER/STEPS[/LEARNING_RATE]: START is `photo` or a model `--init` takes
(`paintings`, `any`, `any-vgg`, `wct`); the default learning rate is the seed's 0.02. The
start goes through the same code as `jaxstyle stylize --init MODEL` (`jaxstyle.cli.onepass`).
Every arm runs the default settings (the seed: Keras Adam, lr 0.02, beta1 0.99, eps 0.1, the
seed's layers and weights) on the same pairs, and is scored with the seed loss
(`jaxstyle.bench.scoring`) at fixed steps, and the layout (issue 18) at its last step.

Time: a curve's x is the one-pass model's warm time plus the run's median warm step time x
steps, so a noisy neighbour on the shared machine moves one step's time, not the curve. The
compile (once per shape and process; the persistent cache saves it on reruns) is reported
apart. Pairs: photo k with painting k mod 3, the three paintings `paintings` was trained on,
so engine 2 can start every pair; none of the photos is in any model's training data (the
four Debian ones are the validation photos `scripts/training_photos.py --held-out DIR`
writes; `--held-out` names that folder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxstyle._types import ParamTree
from jaxstyle.bench.fixtures import image_path, shared_images, vgg_params
from jaxstyle.bench.scoring import eval_config, load_pair, seed_loss, warm_call
from jaxstyle.bench.step import write_json
from jaxstyle.bench.timing import Timing, cpu_flag_set, machine_info, machine_line, markdown_table
from jaxstyle.cli.onepass import make_one_pass
from jaxstyle.config import OPTIMIZERS
from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.gatys import init_state, make_step, output_image
from jaxstyle.objective import make_targets
from jaxstyle.quality import layout_score

EXAMPLES = ["jaxstyle bench refine --size 256 --json /tmp/refine-256.json",
            "jaxstyle bench refine --size 512 --arms photo/adam/100 paintings/adam/50 "
            "--json /tmp/refine-512.json",
            "jaxstyle bench refine --table /tmp/refine-256.json /tmp/refine-512.json "
            "--plot docs/refine.png"]

SHARED_PHOTOS = ["coffee.jpg", "astronaut.jpg"]
# The validation photos of scripts/training_photos.py --held-out DIR (debian_artwork.HELD_OUT),
# in the order the published runs paired them.
HELD_OUT_PHOTOS = ["lomiri_Wine_by_Jakkub_Mede.jpg", "lomiri_aitzgorri_by_Aitzol_Berasategi.jpg",
                   "lomiri_friends_by_Aitzol_Berasategi.jpg", "plasma_EveningGlow.jpg"]
HELD_OUT_DIR = Path("/tmp/heldout")
PAINTINGS = ["starry_night.jpg", "shipwreck.jpg", "woman_with_hat.jpg"]
ARMS = ["photo/adam/100", "paintings/adam/100", "wct/adam/100", "any-vgg/adam/50",
        "any/adam/50", "photo/lbfgs/100", "paintings/lbfgs/100", "wct/lbfgs/50",
        "paintings/adam/50/0.01", "paintings/adam/50/0.005", "wct/adam/50/0.01"]
CHECKPOINTS = (0, 5, 10, 20, 30, 50, 75, 100, 150, 200)
OPTIMIZER_LABELS = {"adam": "Adam", "lbfgs": "L-BFGS"}
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("--size", type=int, default=256, help="longer side of the photos, px")
    p.add_argument("--pairs", type=int, default=6, help="how many photos to run (the first N)")
    p.add_argument("--paintings", nargs="+", default=PAINTINGS, metavar="PAINTING",
                   help="paintings the photos are paired with in turn (the held-out "
                        "great_wave.jpg udnie.jpg score a start on paintings no model saw)")
    p.add_argument("--photos", nargs="+",
                   help="photos, paired in turn with --paintings (default: "
                        f"{' '.join(SHARED_PHOTOS)} and the four held-out photos in "
                        "--held-out)")
    p.add_argument("--held-out", type=Path, default=HELD_OUT_DIR, metavar="DIR",
                   help="the validation photos of `scripts/training_photos.py --held-out DIR`")
    p.add_argument("--arms", nargs="+", default=ARMS, metavar="ARM",
                   help="START/OPTIMISER/STEPS[/LEARNING_RATE] each")
    p.add_argument("--json", metavar="OUT", help="write the measurements here (after every pair)")
    p.add_argument("--table", nargs="+", metavar="JSON", help="print tables, no runs")
    p.add_argument("--plot", metavar="PNG",
                   help="with --table: draw the curves (pip install -e '.[pictures]')")
    add_weights_option(p)


def parse_arm(text: str) -> dict:
    parts = text.split("/")
    try:
        start, optimizer, steps = parts[:3]
        arm: dict[str, Any] = {
            "arm": text, "start": start, "optimizer": optimizer, "steps": int(steps),
            "learning_rate": float(parts[3]) if len(parts) > 3 else 0.02}
    except ValueError:
        raise ConfigError(f"arm {text!r}: write START/OPTIMISER/STEPS[/LEARNING_RATE], e.g. "
                          "paintings/adam/50") from None
    if len(parts) > 4 or arm["steps"] < 2 or optimizer not in OPTIMIZERS:
        raise ConfigError(f"arm {text!r}: the optimiser is one of {', '.join(OPTIMIZERS)} and "
                          "STEPS >= 2 (the first step is the compile)")
    return arm


def run_arm(params: ParamTree, content: Any, style: Any, style_file: Any, arm: dict, size: int,
            painters: dict) -> dict:
    """One optimisation: its scored checkpoints, warm step and one-pass times, compile time."""
    cfg = eval_config(size).replace(optimizer=arm["optimizer"],
                                    learning_rate=arm["learning_rate"])
    score_cfg = eval_config(size)
    onepass_s = 0.0
    start_image = None
    if arm["start"] != "photo":
        if arm["start"] not in painters:
            painters[arm["start"]] = make_one_pass(arm["start"], [style_file], None,
                                                   lambda: params)
        paint = painters[arm["start"]]
        # The first call compiles and is not counted (reruns use the cache).
        start_image, onepass_s = warm_call(paint, content, [style], [style_file])
    targets = make_targets(params, content, style, cfg)
    state = init_state(content, cfg, None if start_image is None else start_image[None])
    step = make_step(cfg)
    scored = {}

    def record(k):
        image = np.asarray(output_image(state, cfg))[0]
        scored[str(k)] = seed_loss(params, content, style, image, score_cfg)  # as in JSON
        return image

    record(0)
    # Each step is timed alone, as the optimiser's state moves on and checkpoints are scored
    # between steps; the first one (the compile) is kept apart.
    times, compile_s = [], None
    for k in range(1, arm["steps"] + 1):
        started = time.perf_counter()
        state, _ = step(params, targets, state)
        jax.block_until_ready(state.image)
        elapsed = time.perf_counter() - started
        if compile_s is None:
            compile_s = elapsed
        else:
            times.append(elapsed)
        if k in CHECKPOINTS or k == arm["steps"]:
            image = record(k)
    steps = Timing(tuple(times))
    return {**arm, "loss": scored, "onepass_s": onepass_s,
            "step_s": steps.median, "step_min_s": steps.min, "step_max_s": steps.max,
            "compile_s": compile_s, "layout": layout_score(image, content),
            "start_layout": None if start_image is None else layout_score(start_image, content)}


def vector_flags() -> list[str]:
    """The CPU's flags among VECTOR_FLAGS (bf16, VNNI and AMX matter to this benchmark)."""
    flags = cpu_flag_set()
    return [flag for flag in VECTOR_FLAGS if flag in flags]


def measure(args: argparse.Namespace, photos: list[str]) -> dict:
    params = vgg_params(args.weights)
    arms = [parse_arm(a) for a in args.arms]
    machine = {**machine_info(), "vector_flags": vector_flags()}
    results: dict[str, Any] = {"size": args.size, "machine": machine, "pairs": []}
    print(machine_line(machine) + "  " + " ".join(machine["vector_flags"]), flush=True)
    painters: dict = {}
    for k, photo in enumerate(photos):
        painting = args.paintings[k % len(args.paintings)]
        content, style = load_pair(photo, painting, eval_config(args.size))
        pair: dict[str, Any] = {"photo": Path(photo).name, "painting": painting, "arms": []}
        for arm in arms:
            row = run_arm(params, content, style, image_path(painting), arm, args.size,
                          painters)
            pair["arms"].append(row)
            print(f"{pair['photo']:<40} {painting:<18} {arm['arm']:<24} "
                  + " ".join(f"{s}:{v * 1e-6:.0f}" for s, v in row["loss"].items())
                  + f"  step {row['step_s'] * 1e3:.0f} ms  one pass {row['onepass_s']:.2f} s"
                  f"  layout {row['layout']:.2f}", flush=True)
        results["pairs"].append(pair)
        write_json(args.json, results)  # after every pair: a stopped run keeps what it measured
    return results


# --------------------------------------------------------------------------- table and plot


def curves(results: dict) -> dict:
    """arm -> {"steps": [...], "loss": median over pairs per step, "seconds": median x,
    "ratio": median over pairs of loss / the photo Adam arm's loss at the same step}."""
    by_arm: dict = {}
    for pair in results["pairs"]:
        base = next((a for a in pair["arms"] if a["arm"].startswith("photo/adam/")), None)
        for row in pair["arms"]:
            entry = by_arm.setdefault(row["arm"], {"rows": [], "base": []})
            entry["rows"].append(row)
            entry["base"].append(base)
    out = {}
    for arm, entry in by_arm.items():
        rows = entry["rows"]
        steps = sorted({int(s) for s in rows[0]["loss"]})
        step_s = statistics.median(r["step_s"] for r in rows)
        onepass_s = statistics.median(r["onepass_s"] for r in rows)
        loss, ratio = [], []
        for s in steps:
            loss.append(statistics.median(r["loss"][str(s)] for r in rows))
            ratios = [r["loss"][str(s)] / b["loss"][str(s)] for r, b in zip(rows, entry["base"])
                      if b is not None and str(s) in b["loss"]]
            ratio.append(statistics.median(ratios) if ratios else None)
        out[arm] = {"steps": steps, "loss": loss, "ratio": ratio, "step_s": step_s,
                    "onepass_s": onepass_s,
                    "seconds": [onepass_s + s * step_s for s in steps],
                    "layout": statistics.median(r["layout"] for r in rows),
                    "compile_s": statistics.median(r["compile_s"] for r in rows),
                    "pairs": len(rows)}
    return out


def _machine_text(machine: Any) -> str:
    """A run's machine: the line `timing.machine_line` writes (older runs kept a string)."""
    if isinstance(machine, str):
        return machine
    return machine_line(machine) + "  " + " ".join(machine.get("vector_flags", []))


def table(results: dict, machine: bool = True) -> str:
    """The BENCHMARKS.md table of one run's JSON, and the 50-step ratios to photo/adam/100;
    under the line naming its machine unless `machine` is false."""
    found = curves(results)
    shown = [s for s in (0, 10, 20, 50, 100) if any(s in c["steps"] for c in found.values())]
    headers = (["start / optimiser / steps [/ lr]", "one pass s", "step ms"]
               + [f"loss @{s} (x photo)" for s in shown] + ["layout", "s to last"])
    rows = []
    for arm, c in found.items():
        cells = []
        for s in shown:
            if s in c["steps"]:
                i = c["steps"].index(s)
                ratio = "" if c["ratio"][i] is None else f" ({c['ratio'][i]:.2f})"
                cells.append(f"{c['loss'][i] * 1e-6:.0f}{ratio}")
            else:
                cells.append("")
        rows.append([arm, f"{c['onepass_s']:.2f}", f"{c['step_s'] * 1e3:.0f}", *cells,
                     f"{c['layout']:.2f}", f"{c['seconds'][-1]:.0f}"])
    lines = [_machine_text(results["machine"])] if machine else []
    lines += [f"{results['size']} px, {len(results['pairs'])} pairs", "",
             markdown_table(headers, rows)]
    photo = found.get("photo/adam/100")
    if photo and 100 in photo["steps"]:
        target = photo["loss"][photo["steps"].index(100)]
        lines.append("")
        lines.append(f"photo/adam at 100 steps: median loss {target * 1e-6:.0f} (x1e6) after "
                     f"{photo['seconds'][-1]:.0f} s; medians of per-pair ratios to it at 50:")
        for arm, c in found.items():
            if 50 in c["steps"]:
                ratios = []
                for pair in results["pairs"]:
                    row = next(a for a in pair["arms"] if a["arm"] == arm)
                    base = next(a for a in pair["arms"] if a["arm"] == "photo/adam/100")
                    ratios.append(row["loss"]["50"] / base["loss"]["100"])
                lines.append(f"- {arm}: 50 steps = {statistics.median(ratios):.2f}x, "
                             f"{c['seconds'][c['steps'].index(50)]:.0f} s")
    return "\n".join(lines)


def read_results(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--table {path}: cannot read it ({exc})") from None


def plot(paths: list[str], out: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install -e '.[pictures]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(paths), figsize=(6.2 * len(paths), 4.4), squeeze=False)
    for ax, path in zip(axes[0], paths):
        results = read_results(path)
        for arm, c in curves(results).items():
            if len(arm.split("/")) > 3:
                continue  # learning-rate variants are in the table, not the picture
            start, optimizer, _ = arm.split("/")
            style = "-" if optimizer == "adam" else "--"
            ax.plot(c["seconds"], np.asarray(c["loss"]) * 1e-6, style, marker=".",
                    label=f"{start}, {OPTIMIZER_LABELS.get(optimizer, optimizer)}")
        ax.set_yscale("log")
        ax.set_xlabel("seconds (one pass + warm steps)")
        ax.set_ylabel("seed loss (x1e6), median of pairs")
        ax.set_title(f"{results['size']} px, {len(results['pairs'])} held-out pairs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def _found(photo: str) -> bool:
    try:
        return image_path(photo).exists()
    except JaxstyleError:
        return False


def run(args: argparse.Namespace) -> int:
    if args.table:
        for path in args.table:
            print(table(read_results(path)), end="\n\n")
        if args.plot:
            plot(args.table, args.plot)
        return 0
    if args.plot:
        raise ConfigError("--plot draws the runs of --table JSON...; measure first with --json")
    if args.pairs < 1:
        raise ConfigError("--pairs must be >= 1")
    for arm in args.arms:
        parse_arm(arm)
    photos = args.photos or SHARED_PHOTOS + [str(args.held_out / name)
                                             for name in HELD_OUT_PHOTOS]
    photos = photos[:args.pairs]
    missing = [p for p in photos if not _found(p)]
    if missing:
        raise ConfigError(f"missing photos {missing} (`python scripts/training_photos.py "
                          f"/tmp/photos --held-out {args.held_out}` makes the held-out ones; "
                          f"the rest are in {shared_images()})")
    results = measure(args, photos)
    print()
    print(table(results, machine=False))
    return 0
