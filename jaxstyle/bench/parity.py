"""`jaxstyle bench parity`: engine 1 against the TensorFlow tutorial's step, step for step, on
whatever device this machine gives JAX (a GPU or TPU where there is one).

An accelerator machine here has no TensorFlow (and no network to install it), so the check
comes in two halves:

    jaxstyle bench parity --record tf-trajectory.npz    # where TF is (the peers extra); CPU
    jaxstyle bench parity --against tf-trajectory.npz   # anywhere, e.g. on the lent GPU

`--record` runs the TF peer (`peers.tf_peer`, the seed's `tf.function` step) `--steps` steps
from the demo photo at `--size` px and writes each step's loss and the final image, with what
made them (size, steps, TF version, a digest of the VGG19 weights). Then, as `--against`
does, it runs jaxstyle's compiled step over the same inputs once per `--matmul-precision` and
prints the relative loss difference at step 1 (the same image scored by both: the maths),
the largest over all steps and at the last (the optimisation following TF's), and the final
images' largest and mean pixel difference (in 1/255). It exits 1 when `highest` (the
seed-parity default) misses `--tolerance` at step 1 or `--trajectory-tolerance` over the
run; the other precisions are reported, not judged: on GPU and TPU their TF32 or bf16 passes
drift, which is what the table shows.

Float32 rounding differs between TF's oneDNN kernels and XLA's, and Adam's normalised update
amplifies it where a pixel's gradient is near zero, so two correct implementations drift
apart pixel by pixel while their losses stay together: on a CPU (BENCHMARKS.md), 8e-8 at
step 1, at most 2e-3 over 100 steps at 256 px, a mean pixel difference of 4/255 at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

import numpy as np

from jaxstyle._types import ParamTree
from jaxstyle.config import MATMUL_PRECISIONS, StyleConfig
from jaxstyle.errors import ConfigError

EXAMPLES = ["jaxstyle bench parity --record tf-trajectory.npz",
            "jaxstyle bench parity --against tf-trajectory.npz --matmul-precision highest default"]

# Step 1 scores one image in both frameworks: only float32 summation order differs (8e-8 on a
# CPU; TF32 passes give ~1e-3). Over a run, the drift described above (2e-3 on a CPU).
DEFAULT_TOLERANCE = 1e-5
DEFAULT_TRAJECTORY_TOLERANCE = 1e-2


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--record", metavar="NPZ",
                       help="run TensorFlow's step and write its trajectory here, then compare")
    which.add_argument("--against", metavar="NPZ", help="compare with a recorded trajectory")
    p.add_argument("--size", type=int, default=256, help="square image size, px (--record)")
    p.add_argument("--steps", type=int, default=100, help="optimiser steps (--record)")
    p.add_argument("--matmul-precision", nargs="+", choices=MATMUL_PRECISIONS,
                   default=list(MATMUL_PRECISIONS),
                   help="jaxstyle's precisions to compare (default: all three)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest relative loss difference allowed at step 1, at precision "
                        "highest")
    p.add_argument("--trajectory-tolerance", type=float, default=DEFAULT_TRAJECTORY_TOLERANCE,
                   help="largest relative loss difference allowed over the run, at precision "
                        "highest")
    add_weights_option(p)


def weights_digest(params: ParamTree) -> str:
    """A short digest of the VGG19 weights, so a trajectory is never compared under others."""
    digest = hashlib.sha256()
    for name in sorted(params):
        for leaf in ("kernel", "bias"):
            digest.update(np.ascontiguousarray(params[name][leaf], np.float32).tobytes())
    return digest.hexdigest()[:16]


def record_tf(params: dict, size: int, steps: int) -> dict:
    """TensorFlow's step `steps` times from the demo photo: its losses and final image."""
    from jaxstyle.bench.harness import bench_images
    from jaxstyle.bench.peers import build

    content, style = bench_images(size)
    peer = build("tf", params, content, style, StyleConfig())
    losses = [float(peer.step()) for _ in range(steps)]
    import tensorflow as tf

    return {"losses": np.asarray(losses, np.float64), "image": peer.image(),
            "meta": {"size": size, "steps": steps, "tensorflow": tf.__version__,
                     "weights": weights_digest(params)}}


def run_jaxstyle(params: ParamTree, size: int, steps: int, precision: str) -> tuple[np.ndarray,
                 np.ndarray]:
    """jaxstyle's compiled step over the same inputs: (losses, final image (1, H, W, 3))."""
    import jax

    from jaxstyle.bench.harness import bench_images
    from jaxstyle.gatys import init_state, make_step
    from jaxstyle.objective import make_targets
    from jaxstyle.vgg import prepare_params

    cfg = StyleConfig(matmul_precision=precision)
    content, style = bench_images(size)
    prepared = jax.device_put(prepare_params(params))
    targets, state = make_targets(prepared, content, style, cfg), init_state(content, cfg)
    step = make_step(cfg)
    losses = []
    for _ in range(steps):  # the loss of the image each step starts from, as the peer's
        state, metrics = step(prepared, targets, state)
        losses.append(metrics["loss"])
    return (np.asarray(jax.device_get(losses), np.float64).reshape(-1),
            np.asarray(jax.device_get(state.image), np.float32))


def compare(recorded: dict, losses: np.ndarray, image: np.ndarray) -> dict:
    """The largest relative loss difference over the steps, and the final images' pixels."""
    reference = recorded["losses"]
    relative = np.abs(losses - reference) / np.abs(reference)
    pixels = np.abs(image - recorded["image"]) * 255
    return {"max_rel_loss": float(relative.max()), "worst_step": int(relative.argmax()) + 1,
            "first_rel_loss": float(relative[0]), "last_rel_loss": float(relative[-1]),
            "max_px": float(pixels.max()),
            "mean_px": float(pixels.mean())}


def save_trajectory(path: str, recorded: dict) -> None:
    import io

    from jaxstyle.files import atomic_write

    buffer = io.BytesIO()
    np.savez_compressed(buffer, losses=recorded["losses"], image=recorded["image"],
                        meta=np.asarray(json.dumps(recorded["meta"])))
    with atomic_write(path) as f:
        f.write(buffer.getvalue())


def load_trajectory(path: str) -> dict:
    """A trajectory `--record` wrote; ConfigError naming the file if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            recorded = {"losses": np.asarray(data["losses"], np.float64),
                        "image": np.asarray(data["image"], np.float32),
                        "meta": json.loads(str(data["meta"]))}
    except FileNotFoundError:
        raise ConfigError(f"trajectory {path}: no such file (write one with --record where "
                          "TensorFlow is installed)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"trajectory {path}: not one `jaxstyle bench parity --record` "
                          f"wrote ({exc})") from None
    meta = recorded["meta"]
    if len(recorded["losses"]) != meta.get("steps") or recorded["image"].shape != (
            1, meta.get("size"), meta.get("size"), 3):
        raise ConfigError(f"trajectory {path}: its losses or image do not match its metadata")
    return recorded


def run(args: argparse.Namespace) -> int:
    import jax

    from jaxstyle.bench.timing import machine_line, markdown_table
    from jaxstyle.cli.common import load_params

    params = load_params(args.weights, quiet=False)
    if args.record:
        if args.size < 32 or args.steps < 1:
            raise ConfigError("--size must be >= 32 px and --steps >= 1")
        print(f"parity: TensorFlow, {args.steps} steps at {args.size} px", file=sys.stderr)
        recorded = record_tf(params, args.size, args.steps)
        save_trajectory(args.record, recorded)
        print(f"wrote {args.record}", file=sys.stderr)
    else:
        recorded = load_trajectory(args.against)
    meta = recorded["meta"]
    if meta.get("weights") != weights_digest(params):
        raise ConfigError(f"trajectory {args.record or args.against} was recorded with other "
                          "VGG19 weights; pass the same weights (--weights) or record it again")
    print(machine_line())
    print(f"device: {jax.devices()[0].platform} ({jax.devices()[0].device_kind}); TensorFlow "
          f"{meta['tensorflow']}, {meta['steps']} steps at {meta['size']} px")
    rows, verdict = [], 0
    for precision in args.matmul_precision:
        losses, image = run_jaxstyle(params, meta["size"], meta["steps"], precision)
        found = compare(recorded, losses, image)
        judged = precision == "highest"
        passed = (found["first_rel_loss"] <= args.tolerance
                  and found["max_rel_loss"] <= args.trajectory_tolerance)
        verdict |= int(judged and not passed)
        rows.append([precision, f"{found['first_rel_loss']:.2e}",
                     f"{found['max_rel_loss']:.2e} (step {found['worst_step']})",
                     f"{found['last_rel_loss']:.2e}",
                     f"{found['max_px']:.2f}", f"{found['mean_px']:.3f}",
                     ("pass" if passed else "FAIL") if judged else "reported"])
    print(markdown_table(["matmul precision", "step 1 rel. loss diff", "max rel. loss diff",
                          "last", "final max px diff", "final mean px diff",
                          f"<= {args.tolerance:g}, {args.trajectory_tolerance:g}"], rows))
    return verdict


__all__ = ["compare", "load_trajectory", "record_tf", "run_jaxstyle", "save_trajectory",
           "weights_digest"]
