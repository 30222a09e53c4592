"""Paint fast, then refine: the seed loss against wall-clock time of the optimiser started
from the photo and from each shipped one-pass model's output, Adam and L-BFGS, on held-out
photos (BENCHMARKS.md "Paint fast, then refine", README's docs/refine.png).

    python scripts/bench_refine.py --size 256 --json /tmp/refine-256.json
    python scripts/bench_refine.py --size 512 --arms photo/adam/100 paintings/adam/50 \
        --json /tmp/refine-512.json
    python scripts/bench_refine.py --table /tmp/refine-256.json /tmp/refine-512.json \
        --plot docs/refine.png

An arm is START/OPTIMISER/STEPS[/LEARNING_RATE]: START is `photo` or a model `--init` takes
(`paintings`, `any`, `any-vgg`, `wct`); the default learning rate is the seed's 0.02. The
start goes through the same code as `jaxstyle stylize --init MODEL` (`jaxstyle.cli.onepass`).
Every arm runs the default settings (the seed: Keras Adam, lr 0.02, beta1 0.99, eps 0.1, the
seed's layers and weights) on the same pairs, and is scored with the seed loss (`scoring.py`)
at fixed steps, and the layout (issue 18) at its last step.

Time: a curve's x is the one-pass model's warm time plus the run's median warm step time x
steps, so a noisy neighbour on the shared machine moves one step's time, not the curve. The
compile (once per shape and process; the persistent cache saves it on reruns) is reported
apart. Pairs: photo k with painting k mod 3, the three paintings `paintings` was trained on,
so engine 2 can start every pair; none of the photos is in any model's training data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np
from scoring import IMAGES, eval_config, image_path, load_pair, seed_loss

from jaxstyle import init_state, make_step, make_targets
from jaxstyle.cli.onepass import make_one_pass
from jaxstyle.gatys import output_image
from jaxstyle.quality import layout_score
from jaxstyle.vgg import prepare_params
from jaxstyle.weights.fetch import resolve_params

PHOTOS = ["coffee.jpg", "astronaut.jpg", "/tmp/heldout/lomiri_Wine_by_Jakkub_Mede.jpg",
          "/tmp/heldout/lomiri_aitzgorri_by_Aitzol_Berasategi.jpg",
          "/tmp/heldout/lomiri_friends_by_Aitzol_Berasategi.jpg",
          "/tmp/heldout/plasma_EveningGlow.jpg"]
PAINTINGS = ["starry_night.jpg", "shipwreck.jpg", "woman_with_hat.jpg"]
ARMS = ["photo/adam/100", "paintings/adam/100", "wct/adam/100", "any-vgg/adam/50",
        "any/adam/50", "photo/lbfgs/100", "paintings/lbfgs/100", "wct/lbfgs/50",
        "paintings/adam/50/0.01", "paintings/adam/50/0.005", "wct/adam/50/0.01"]
CHECKPOINTS = (0, 5, 10, 20, 30, 50, 75, 100, 150, 200)


def parse_arm(text: str) -> dict:
    parts = text.split("/")
    start, optimizer, steps = parts[:3]
    return {"arm": text, "start": start, "optimizer": optimizer, "steps": int(steps),
            "learning_rate": float(parts[3]) if len(parts) > 3 else 0.02}


def run_arm(params, content, style, style_file, arm: dict, size: int, painters: dict) -> dict:
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
        paint(content, [style], [style_file])  # compile, not counted (reruns use the cache)
        started = time.perf_counter()
        start_image = paint(content, [style], [style_file])
        onepass_s = time.perf_counter() - started
    targets = make_targets(params, content, style, cfg)
    state = init_state(content, cfg, None if start_image is None else start_image[None])
    step = make_step(cfg)
    scored = {}

    def record(k):
        image = np.asarray(output_image(state, cfg))[0]
        scored[k] = seed_loss(params, content, style, image, score_cfg)
        return image

    record(0)
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
    return {**arm, "loss": scored, "onepass_s": onepass_s,
            "step_s": statistics.median(times), "compile_s": compile_s,
            "layout": layout_score(image, content),
            "start_layout": None if start_image is None else layout_score(start_image, content)}


def measure(args) -> None:
    params = jax.device_put(prepare_params(resolve_params(progress=False, log=lambda m: None)))
    arms = [parse_arm(a) for a in args.arms]
    results = {"size": args.size, "machine": machine(), "pairs": []}
    painters: dict = {}
    for k, photo in enumerate(args.photos[:args.pairs]):
        painting = PAINTINGS[k % len(PAINTINGS)]
        content, style = load_pair(photo, painting, eval_config(args.size))
        pair = {"photo": Path(photo).name, "painting": painting, "arms": []}
        for arm in arms:
            row = run_arm(params, content, style, image_path(painting), arm, args.size,
                          painters)
            pair["arms"].append(row)
            print(f"{pair['photo']:<40} {painting:<18} {arm['arm']:<24} "
                  + " ".join(f"{s}:{v * 1e-6:.0f}" for s, v in row["loss"].items())
                  + f"  step {row['step_s'] * 1e3:.0f} ms  one pass {row['onepass_s']:.2f} s"
                  f"  layout {row['layout']:.2f}", flush=True)
        results["pairs"].append(pair)
        if args.json:  # after every pair, so a stopped run keeps what it measured
            Path(args.json).write_text(json.dumps(results, indent=1))


def machine() -> str:
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
        model = next(line.split(":", 1)[1].strip() for line in
                     Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
             if f in flags]
    return f"{model}, {jax.local_device_count()} device(s) {jax.default_backend()}, " \
           f"{' '.join(shown)}, jax {jax.__version__}"


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


def table(path: str) -> str:
    results = json.loads(Path(path).read_text())
    found = curves(results)
    shown = [s for s in (0, 10, 20, 50, 100) if any(s in c["steps"] for c in found.values())]
    lines = [f"{results['size']} px, {len(results['pairs'])} pairs; {results['machine']}", "",
             "| start / optimiser / steps [/ lr] | one pass s | step ms | "
             + " | ".join(f"loss @{s} (x photo)" for s in shown) + " | layout | s to last |",
             "|---" * (5 + len(shown)) + "|"]
    for arm, c in found.items():
        cells = []
        for s in shown:
            if s in c["steps"]:
                i = c["steps"].index(s)
                ratio = "" if c["ratio"][i] is None else f" ({c['ratio'][i]:.2f})"
                cells.append(f"{c['loss'][i] * 1e-6:.0f}{ratio}")
            else:
                cells.append("")
        lines.append(f"| {arm} | {c['onepass_s']:.2f} | {c['step_s'] * 1e3:.0f} | "
                     + " | ".join(cells) + f" | {c['layout']:.2f} | {c['seconds'][-1]:.0f} |")
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


def plot(paths: list[str], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(paths), figsize=(6.2 * len(paths), 4.4), squeeze=False)
    for ax, path in zip(axes[0], paths):
        results = json.loads(Path(path).read_text())
        for arm, c in curves(results).items():
            if len(arm.split("/")) > 3:
                continue  # learning-rate variants are in the table, not the picture
            start, optimizer, _ = arm.split("/")
            style = "-" if optimizer == "adam" else "--"
            ax.plot(c["seconds"], np.asarray(c["loss"]) * 1e-6, style, marker=".",
                    label=f"{start}, {'Adam' if optimizer == 'adam' else 'L-BFGS'}")
        ax.set_yscale("log")
        ax.set_xlabel("seconds (one pass + warm steps)")
        ax.set_ylabel("seed loss (x1e6), median of pairs")
        ax.set_title(f"{results['size']} px, {len(results['pairs'])} held-out pairs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--photos", nargs="+", default=PHOTOS)
    parser.add_argument("--arms", nargs="+", default=ARMS)
    parser.add_argument("--json", help="write the measurements here (after every pair)")
    parser.add_argument("--table", nargs="+", metavar="JSON", help="print tables, no runs")
    parser.add_argument("--plot", metavar="PNG", help="with --table: draw the curves")
    args = parser.parse_args()
    if args.table:
        for path in args.table:
            print(table(path), end="\n\n")
        if args.plot:
            plot(args.table, args.plot)
        return
    missing = [p for p in args.photos[:args.pairs] if not image_path(p).exists()]
    if missing:
        sys.exit(f"error: missing photos {missing} (scripts/training_photos.py --held-out "
                 f"/tmp/heldout makes the held-out ones; the rest are in {IMAGES})")
    measure(args)


if __name__ == "__main__":
    main()
