"""Shared scoring for the quality scripts: the seed loss, layout and grid of an output, and
the Gatys reference it is measured against (cached on disk, as it is the slow part).

Every output is scored against the photo at the evaluation size and the style image at the
size the seed would use (`style_size`), with the seed's VGG19, layers and weights.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle import StyleConfig, load_image, loss_fn, make_targets, save_image  # noqa: E402
from jaxstyle.gatys import stylize  # noqa: E402
from jaxstyle.gatys.pipeline import style_size  # noqa: E402
from jaxstyle.images import resize  # noqa: E402
from jaxstyle.quality import grid_excess, layout_score  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"
DEFAULT_CACHE = Path("/tmp/jaxstyle-gatys-cache")


def image_path(name: str) -> Path:
    """A path as given if it exists, else the file of that name in ../shared/images."""
    path = Path(name)
    return path if path.exists() else IMAGES / name


def eval_config(size: int, gatys_steps: int = 100) -> StyleConfig:
    return StyleConfig(steps=gatys_steps, steps_per_epoch=gatys_steps, max_dim=size)


def load_pair(photo: str, style: str, cfg: StyleConfig) -> tuple[np.ndarray, np.ndarray]:
    """The photo at cfg.max_dim and the style image at the seed's style size for it."""
    content = load_image(image_path(photo), cfg.max_dim)
    style_image = load_image(image_path(style), None)
    return content, resize(style_image, style_size(style_image.shape[:2], content.shape[:2], cfg))


def seed_loss(params, content, style, image, cfg: StyleConfig) -> float:
    targets = make_targets(params, content, style, cfg)
    return float(loss_fn(params, targets, np.asarray(image)[None], cfg)[0])


def block4_gram_term(params, content, style, image, cfg: StyleConfig) -> float:
    """The seed loss's block4_conv1 Gram term alone: its share of the style term (which
    averages the style layers), with no content or TV term."""
    block4 = cfg.replace(style_layers=("block4_conv1",), content_weight=0.0, tv_weight=0.0,
                         style_layer_weights=None)
    return seed_loss(params, content, style, image, block4) / len(cfg.style_layers)


def score(params, content, style, image, cfg: StyleConfig) -> dict[str, float]:
    """{loss, block4 Gram term, layout, grid} of one output (H, W, 3) for its photo and
    style image."""
    image = np.asarray(image, np.float32)
    return {"loss": seed_loss(params, content, style, image, cfg),
            "block4": block4_gram_term(params, content, style, image, cfg),
            "layout": layout_score(image, content), "grid": grid_excess(image, content)}


def gatys_reference(params, content, style, cfg: StyleConfig,
                    cache: Path | None = DEFAULT_CACHE) -> np.ndarray:
    """Gatys after cfg.steps steps of the seed's Adam from the photo; cached by inputs."""
    key = hashlib.sha256(content.tobytes() + style.tobytes() + repr(
        (content.shape, style.shape, cfg.steps)).encode()).hexdigest()[:20]
    path = None if cache is None else cache / f"gatys-{key}.npy"
    if path is not None and path.exists():
        return np.load(path)
    image = np.asarray(stylize(params, content, style, cfg)[0])[0]
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, image)
    return image


def picture(rows: list[tuple[np.ndarray, ...]], path: str) -> None:
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
