"""Shared scoring for the quality benchmarks (`jaxstyle bench eval-feedforward`,
`eval-arbitrary`, `eval-wct-levels`, `refine`): the seed loss, layout and grid of an output,
and the Gatys reference it is measured against (cached on disk, as it is the slow part).

Every output is scored against the photo at the evaluation size and the style image at the
size the seed would use (`style_size`), with the seed's VGG19, layers and weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from jaxstyle._types import ParamTree
from jaxstyle.bench.fixtures import image_path
from jaxstyle.bench.timing import time_calls
from jaxstyle.config import StyleConfig
from jaxstyle.images import load_image, resize, save_image
from jaxstyle.objective import loss_fn, make_targets
from jaxstyle.quality import grid_excess, layout_score

DEFAULT_CACHE = Path("/tmp/jaxstyle-gatys-cache")
T = TypeVar("T")


def eval_config(size: int, gatys_steps: int = 100) -> StyleConfig:
    return StyleConfig(steps=gatys_steps, steps_per_epoch=gatys_steps, max_dim=size)


def load_pair(photo: str, style: str, cfg: StyleConfig) -> tuple[np.ndarray, np.ndarray]:
    """The photo at cfg.max_dim and the style image at the seed's style size for it."""
    from jaxstyle.gatys.pipeline import style_size

    content = load_image(image_path(photo), cfg.max_dim)
    style_image = load_image(image_path(style), None)
    return content, resize(style_image, style_size(style_image.shape[:2], content.shape[:2], cfg))


def seed_loss(params: ParamTree, content: Any, style: Any, image: Any, cfg: StyleConfig) -> float:
    targets = make_targets(params, content, style, cfg)
    return float(loss_fn(params, targets, np.asarray(image)[None], cfg)[0])


def block4_gram_term(params: ParamTree, content: Any, style: Any, image: Any,
                     cfg: StyleConfig) -> float:
    """The seed loss's block4_conv1 Gram term alone: its share of the style term (which
    averages the style layers), with no content or TV term."""
    block4 = cfg.replace(style_layers=("block4_conv1",), content_weight=0.0, tv_weight=0.0,
                         style_layer_weights=None)
    return seed_loss(params, content, style, image, block4) / len(cfg.style_layers)


def score(params: ParamTree, content: Any, style: Any, image: Any, cfg: StyleConfig) -> dict[str,
          float]:
    """{loss, block4 Gram term, layout, grid} of one output (H, W, 3) for its photo and
    style image."""
    image = np.asarray(image, np.float32)
    return {"loss": seed_loss(params, content, style, image, cfg),
            "block4": block4_gram_term(params, content, style, image, cfg),
            "layout": layout_score(image, content), "grid": grid_excess(image, content)}


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1]."""
    mse = float(np.mean(np.square(np.asarray(image, np.float64) - reference)))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def warm_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """fn(*args, **kwargs) and the seconds of one warm call: one untimed call first (the
    compile), then one timed (`timing.time_calls`, repeats 1, warm-up 1). fn must block."""
    results: list = []
    timing = time_calls(lambda: results.append(fn(*args, **kwargs)), repeats=1, warmup=1)
    return results[-1], timing.median


def gatys_reference(params: ParamTree, content: Any, style: Any, cfg: StyleConfig,
                    cache: Path | None = DEFAULT_CACHE) -> np.ndarray:
    """Gatys after cfg.steps steps of the seed's Adam from the photo; cached by inputs."""
    from jaxstyle.gatys import stylize

    key = hashlib.sha256(content.tobytes() + style.tobytes() + repr(
        (content.shape, style.shape, cfg.steps)).encode()).hexdigest()[:20]
    path = None if cache is None else cache / f"gatys-{key}.npy"
    if path is not None and path.exists():
        return np.load(path)
    image, _ = stylize(params, content, style, cfg)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)  # the cache folder
        np.save(path, image)
    return image


def picture(rows: Sequence[tuple[np.ndarray, ...]], path: str) -> None:
    """Rows of images side by side at one height, white gaps between (a README picture)."""
    height = rows[0][0].shape[0]
    lines = []
    for images in rows:
        tiles = []
        for image in images:
            width = round(image.shape[1] * height / image.shape[0])
            tiles += [resize(image, (height, width)), np.ones((height, 6, 3), np.float32)]
        lines.append(np.concatenate(tiles[:-1], axis=1))
    width = max(line.shape[1] for line in lines)  # shorter rows are padded with white
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=1.0)
             for line in lines]
    gap = np.ones((6, width, 3), np.float32)
    stacked = [part for line in lines for part in (line, gap)][:-1]
    save_image(path, np.concatenate(stacked))


__all__ = ["DEFAULT_CACHE", "block4_gram_term", "eval_config", "gatys_reference", "load_pair",
           "picture", "psnr", "score", "seed_loss", "warm_call"]
