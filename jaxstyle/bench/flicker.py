"""Flicker against style: warping error and style loss of trained models on clips of known motion.

    jaxstyle bench flicker plain=/tmp/ft/plain.jxs s1e9=/tmp/ft/s1e9.jxs \\
        s5e9=/tmp/ft/s5e9.jxs --style starry_night --h264         # about 8 minutes on 2 cores

The clips are cameras panning (0.5 and 2 px per frame) and zooming over held-out photos
(`make_motion_clip`), so the motion between frames is known exactly and no optical flow is
estimated. For each clip it scores:

- every model given (`label=path`; the first is the reference the ratios divide by),
- the first model with `--smooth` (blended with the previous output, as `jaxstyle video` does),
- optimisation mode on one clip (`--opt-clip`), through the same function `jaxstyle video
  --style-image` uses: the first frame from the photo, each later one from the previous output,
- the source clip itself: its warping error is the floor that bilinear interpolation leaves.

Warping error: mean |warp(out_t) - out_{t+1}| (0..1) over pixels in view, on the uint8 frames
handed to the encoder (no compression); `--h264` adds the same after an H.264 round trip.
Style loss: the style part of the seed loss with the first model's training settings (VGG19
layers, layer weights, style weight, style image size), averaged over a few frames of the clip.
Sharpness: mean gradient magnitude of the frames, relative to the first model's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jax
import numpy as np
from PIL import Image

from jaxstyle._types import ParamTree
from jaxstyle.bench.fixtures import image_path, vgg_params
from jaxstyle.bench.timing import machine_line, markdown_table
from jaxstyle.config import StyleConfig
from jaxstyle.flicker import as_float, make_motion_clip, per_frame_warping_errors, temporal_smooth
from jaxstyle.images import load_image
from jaxstyle.objective import Targets, make_targets, per_image_loss
from jaxstyle.video import read_frames, to_uint8, write_video

EXAMPLES = ["jaxstyle bench flicker plain=/tmp/ft/plain.jxs s1e9=/tmp/ft/s1e9.jxs "
            "s5e9=/tmp/ft/s5e9.jxs --style starry_night --smooth 0.3 --opt-clip coffee/pan0.5 "
            "--opt-frames 12 --h264",
            "jaxstyle bench flicker plain=/tmp/ft/plain.jxs s1e9=/tmp/ft/s1e9.jxs "
            "s5e9=/tmp/ft/s5e9.jxs --style shipwreck --smooth 0.3 --opt-clip none --h264",
            "jaxstyle bench flicker paintings --frames 8 --photos coffee.jpg --opt-clip none"]
# name -> (motion, speed in px/frame): sub-pixel pan, whole-pixel pan, slow zoom (edges 1 px).
CAMERAS = {"pan0.5": ("pan", 0.5), "pan2": ("pan", 2.0), "zoom": ("zoom", 1.0)}
STYLE_LOSS_FRAMES = 4  # frames per clip scored by VGG: evenly spaced, first and last included
NETWORK_BATCH = 8  # frames per network call, `jaxstyle video`'s default


@dataclass(frozen=True)
class Clip:
    name: str  # photo/camera, e.g. coffee/pan2
    frames: np.ndarray  # (T, H, W, 3) uint8
    motions: np.ndarray  # (T-1, 2, 3)


@dataclass(frozen=True)
class Score:
    warping: float
    warping_h264: float | None
    style: float
    sharpness: float


def parse_model(text: str) -> tuple[str, Path]:
    """'label=path' -> (label, path); a bare path is labelled by its file stem."""
    label, _, path = text.rpartition("=")
    return (label or Path(path).stem), Path(path)


def make_clips(photos: list[str], size: tuple[int, int], frames: int) -> list[Clip]:
    """Every camera over every photo."""
    clips = []
    for photo in photos:
        image = np.asarray(Image.open(image_path(photo)).convert("RGB"))
        for camera, (motion, speed) in CAMERAS.items():
            clip, motions = make_motion_clip(image, size, frames, motion, speed)
            clips.append(Clip(f"{Path(photo).stem}/{camera}", clip, motions))
    return clips


def network_outputs(stylizer: Any, style_weights: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """uint8 outputs in batches of NETWORK_BATCH, the last padded as `jaxstyle video` pads it."""
    outputs = []
    for begin in range(0, len(frames), NETWORK_BATCH):
        batch = frames[begin:begin + NETWORK_BATCH]
        count = len(batch)
        padded = np.concatenate([batch, np.repeat(batch[-1:], NETWORK_BATCH - count, axis=0)])
        images = padded.astype(np.float32) / 255.0
        weights = np.broadcast_to(style_weights, (NETWORK_BATCH, len(style_weights)))
        outputs.append(to_uint8(np.asarray(stylizer(images, weights))[:count]))
    return np.concatenate(outputs)


def smoothed(outputs: np.ndarray, smooth: float) -> np.ndarray:
    """`jaxstyle video --smooth`: each output blended with the previous blended one."""
    blended, _ = temporal_smooth(as_float(outputs), smooth)
    return to_uint8(blended)


def optimised_outputs(frames: np.ndarray, style_path: Path, weights: str | None,
                      first_steps: int, frame_steps: int) -> np.ndarray:
    """`jaxstyle video --style-image` on the frames (its own function, so the same path)."""
    args = SimpleNamespace(weights=weights, quiet=True, style_image=str(style_path),
                           frame_steps=frame_steps)
    from jaxstyle.cli.video import optimisation_frame_stylizer

    cfg = StyleConfig(max_dim=max(frames.shape[1:3]), steps=first_steps)
    stylize_frames = optimisation_frame_stylizer(args, cfg)
    return np.concatenate([to_uint8(stylize_frames(frame[None])) for frame in frames])


def h264_round_trip(frames: np.ndarray) -> np.ndarray:
    """The frames after writing them as H.264 (crf 18, yuv420p, as `jaxstyle video`) and back."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_video(Path(folder) / "clip.mp4", frames, fps=24)
        return np.stack(list(read_frames(path)))


def sharpness(frames: np.ndarray) -> float:
    """Mean gradient magnitude of the grey frames (0..1 per pixel step)."""
    grey = as_float(frames).mean(axis=-1)
    dy = np.diff(grey, axis=1)[:, :, :-1]
    dx = np.diff(grey, axis=2)[:, :-1, :]
    return float(np.sqrt(dx * dx + dy * dy).mean())


def scored_indices(count: int) -> np.ndarray:
    """The frames whose style loss is averaged: evenly spaced over the first `count`."""
    return np.unique(np.linspace(0, count - 1, min(STYLE_LOSS_FRAMES, count)).round().astype(int))


def loss_config(header: dict) -> StyleConfig:
    """The seed objective as the model was trained on it (layers, weights, pooling)."""
    training = header["training"]
    layer_weights = training.get("style_layer_weights")
    content_weights = training.get("content_layer_weights")
    return StyleConfig(
        content_layers=tuple(training["content_layers"]),
        content_layer_weights=None if content_weights is None else tuple(content_weights),
        style_layers=tuple(training["style_layers"]),
        style_layer_weights=None if layer_weights is None else tuple(layer_weights),
        content_weight=training["content_weight"], style_weight=training["style_weight"],
        tv_weight=training["tv_weight"], pooling=training["pooling"])


class StyleScorer:
    """Style part of the seed loss of output frames, against their source frames' targets."""

    def __init__(self, vgg_params: ParamTree, style_image: np.ndarray, cfg: StyleConfig):
        self.vgg_params, self.style_image, self.cfg = vgg_params, style_image, cfg
        self._loss = jax.jit(lambda params, targets, images:
                             per_image_loss(params, targets, images, cfg)[1]["style"])
        # Every method of a clip is scored against the same source frames.
        self._targets: dict[bytes, Targets] = {}

    def __call__(self, sources: np.ndarray, outputs: np.ndarray) -> float:
        key = sources.tobytes()
        if key not in self._targets:
            self._targets[key] = make_targets(self.vgg_params, as_float(sources),
                                              self.style_image, self.cfg)
        return float(np.mean(self._loss(self.vgg_params, self._targets[key], as_float(outputs))))


def score(clip: Clip, outputs: np.ndarray, scorer: StyleScorer, h264: bool) -> Score:
    """Warping error (exact, and after H.264 if asked), style loss and sharpness of outputs."""
    count = len(outputs)
    motions = clip.motions[:count - 1]
    picked = scored_indices(count)
    return Score(
        warping=float(np.mean(per_frame_warping_errors(outputs, motions))),
        warping_h264=(float(np.mean(per_frame_warping_errors(h264_round_trip(outputs), motions)))
                      if h264 else None),
        style=scorer(clip.frames[picked], outputs[picked]),
        sharpness=sharpness(outputs))


def ratio(value: float | None, base: float | None) -> str:
    """value / base to two decimals, or a dash where there is nothing to divide."""
    return "—" if value is None or base is None else f"{value / base:.2f}"


def row(clip: str, method: str, result: Score, reference: Score | None) -> list[str]:
    """One table row's cells; ratios to the reference (the first model on the same frames)."""
    def against(name: str) -> str:
        base = None if reference is None else getattr(reference, name)
        return ratio(getattr(result, name), base)

    cells = [clip, method, f"{result.warping:.4f}", against("warping")]
    if result.warping_h264 is not None:
        cells += [f"{result.warping_h264:.4f}", against("warping_h264")]
    cells += [f"{result.style:.3g}", against("style"), against("sharpness")]
    return cells


def headers(reference: str, h264: bool) -> list[str]:
    """The table's column names."""
    names = ["clip", "method", "warping error", f"ratio to {reference}"]
    if h264:
        names += ["after H.264", f"ratio to {reference}"]
    names += ["style loss", f"ratio to {reference}", f"sharpness vs {reference}"]
    return names


def target_summary(label: str, ratios: list[tuple[float, float]]) -> str:
    """Whether a model halves the reference's warping error at a style loss within 10%."""
    warping = [w for w, _ in ratios]
    style = [s for _, s in ratios]
    met = all(w <= 0.5 and s <= 1.10 for w, s in ratios)
    return (f"- {label}: warping error {min(warping):.2f}-{max(warping):.2f}x the reference "
            f"(mean {np.mean(warping):.2f}), style loss {min(style):.2f}-{max(style):.2f}x "
            f"(mean {np.mean(style):.2f}); target (<= 0.5x and <= 1.10x on every clip): "
            f"{'met' if met else 'not met'}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from jaxstyle.cli.common import add_weights_option

    p.add_argument("models", nargs="+", metavar="LABEL=PATH",
                   help="model files (.jxs) or built-in names, each labelled (a bare one by "
                        "its stem); the first is the reference (plain) model")
    p.add_argument("--style", default="starry_night",
                   help="style name inside the models (its painting among the shared images "
                        "scores the style loss)")
    p.add_argument("--photos", nargs="+", default=["coffee.jpg", "astronaut.jpg"],
                   help="held-out photos the cameras move over (shared images or paths)")
    p.add_argument("--size", type=int, nargs=2, default=(144, 256), metavar=("H", "W"),
                   help="frame size, px")
    p.add_argument("--frames", type=int, default=24, help="frames per clip")
    p.add_argument("--smooth", type=float, default=0.3,
                   help="a row of the first model blended as `jaxstyle video --smooth` blends; "
                        "0: no smoothed row")
    p.add_argument("--opt-clip", default="coffee/pan0.5",
                   help="clip for optimisation mode ('none': skip it)")
    p.add_argument("--opt-frames", type=int, default=12, help="its first N frames only")
    p.add_argument("--opt-steps", type=int, default=60, help="Adam steps, first frame")
    p.add_argument("--opt-frame-steps", type=int, default=15, help="Adam steps, later ones")
    p.add_argument("--h264", action="store_true", help="also after an H.264 round trip")
    add_weights_option(p)


def check_arguments(args: argparse.Namespace) -> None:
    from jaxstyle.errors import ConfigError

    if min(args.size) < 1 or args.frames < 2 or args.opt_frames < 2:
        raise ConfigError("--size must be positive, and --frames and --opt-frames >= 2 (the "
                          "warping error compares consecutive frames)")
    if args.smooth < 0 or args.opt_steps < 0 or args.opt_frame_steps < 0:
        raise ConfigError("--smooth, --opt-steps and --opt-frame-steps must be >= 0")


def run(args: argparse.Namespace) -> int:
    from jaxstyle.feedforward.apply import make_stylizer, resolve_model, style_weights_for
    from jaxstyle.feedforward.modelfile import load_model

    check_arguments(args)
    began = time.perf_counter()  # the whole run's wall time, reported as progress and at the end
    print(machine_line(), flush=True)
    models = [parse_model(text) for text in args.models]
    reference_label = models[0][0]
    vgg = vgg_params(args.weights)
    loaded = [(label, *load_model(resolve_model(path)[0])) for label, path in models]
    reference_header = loaded[0][2]
    style_side = reference_header["training"]["style_size"]
    style_path = image_path(f"{args.style}.jpg")
    scorer = StyleScorer(vgg, load_image(style_path, style_side, what="style image"),
                         loss_config(reference_header))
    clips = make_clips(args.photos, tuple(args.size), args.frames)

    stylizers = [(label, make_stylizer(params, header), style_weights_for(header, args.style))
                 for label, params, header in loaded]

    rows = []
    ratios: dict[str, list[tuple[float, float]]] = {}
    for clip in clips:
        outputs = {label: network_outputs(stylizer, weights, clip.frames)
                   for label, stylizer, weights in stylizers}
        if args.smooth > 0:
            outputs[f"{reference_label} --smooth {args.smooth:g}"] = smoothed(
                outputs[reference_label], args.smooth)
        scores = {method: score(clip, out, scorer, args.h264) for method, out in outputs.items()}
        reference = scores[reference_label]
        for method, result in scores.items():
            rows.append(row(clip.name, method, result, reference))
            ratios.setdefault(method, []).append((result.warping / reference.warping,
                                                  result.style / reference.style))
        rows.append(row(clip.name, "source clip (floor)", score(clip, clip.frames, scorer,
                                                                args.h264), None))
        if clip.name == args.opt_clip:
            count = args.opt_frames
            optimised = optimised_outputs(clip.frames[:count], style_path, args.weights,
                                          args.opt_steps, args.opt_frame_steps)
            same_frames = score(clip, outputs[reference_label][:count], scorer, args.h264)
            rows.append(row(clip.name, f"{reference_label}, first {count} frames",
                            same_frames, same_frames))
            method = (f"optimisation {args.opt_steps}+{args.opt_frame_steps}/frame, "
                      f"first {count} frames")
            rows.append(row(clip.name, method, score(clip, optimised, scorer, args.h264),
                            same_frames))
        print(f"{clip.name} done after {time.perf_counter() - began:.0f} s", file=sys.stderr,
              flush=True)

    print(f"{args.frames} frames of {args.size[1]}x{args.size[0]} px per clip, style "
          f"{args.style}; warping error on the exact uint8 frames (no compression)"
          + ("; 'after H.264': crf 18 yuv420p round trip" if args.h264 else "") + "; "
          f"style loss averaged over {STYLE_LOSS_FRAMES} frames; sharpness = mean gradient "
          f"magnitude relative to {reference_label}.\n")
    print(markdown_table(headers(reference_label, args.h264), rows))
    print()
    for label, model_ratios in ratios.items():
        if label != reference_label:
            print(target_summary(label, model_ratios))
    print(f"\n{time.perf_counter() - began:.0f} s in all")
    return 0
