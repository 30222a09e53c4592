"""Numbers that say whether a stylised image still shows the photo, beside the seed loss.

The seed loss rewards painting the style's texture everywhere; a trained network can lower it
by losing the photo. These two numbers catch what it hides (issue 18):

- `layout_score`: does the output keep the photo's big shapes and light? The correlation of
  output and photo luminance, both box-averaged to 32 px on the short side, where strokes
  average out. Gatys after 100 steps scores 0.81-0.94; a texture field scores near 0.
- `blockiness`: does the output carry a grid from the networks' x2 upsamplings? How much
  the strength of its edges depends on their position mod 8 px (the periods 2, 4 and 8 of
  the upsamplings); `grid_excess` is that minus the photo's own (0: no grid added).

Pure NumPy on host images (H, W, 3) in [0, 1]; scoring is not on any hot path.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

LAYOUT_SIDE = 32           # short side after box-averaging, px
UPSAMPLING_PERIOD = 8      # three x2 upsamplings (engine 3); engine 2's two fit inside it
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as the YIQ colour code


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) float32."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3), got {image.shape}")
    return image @ _LUMA


def box_average(grey: np.ndarray, short_side: int = LAYOUT_SIDE) -> np.ndarray:
    """Area-average (H, W) down so its short side is `short_side` (aspect kept)."""
    height, width = grey.shape
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(grey.astype(np.float32), mode="F").resize(
        size, Image.Resampling.BOX), np.float32)


def layout_score(output: np.ndarray, photo: np.ndarray) -> float:
    """Pearson correlation of box-averaged luminance: two (H, W, 3) -> float in [-1, 1].

    The images must have one size. A flat image (no variance) scores 0.
    """
    if np.shape(output) != np.shape(photo):
        raise ValueError(f"output {np.shape(output)} and photo {np.shape(photo)} differ in size")
    a = box_average(luminance(output)).ravel()
    b = box_average(luminance(photo)).ravel()
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def _phase_profile(grey: np.ndarray, axis: int, period: int) -> np.ndarray:
    """Mean |difference| between neighbours along `axis`, by position mod period: (period,)."""
    steps = np.abs(np.diff(grey, axis=axis))
    positions = np.arange(steps.shape[axis]) % period
    per_position = steps.mean(axis=1 - axis)
    return np.array([per_position[positions == phase].mean() for phase in range(period)])


def blockiness(image: np.ndarray, period: int = UPSAMPLING_PERIOD) -> float:
    """How much edge strength depends on position mod `period`: (H, W, 3) -> float >= 0.

    Along each axis, the mean |luminance step| between neighbouring pixels is taken
    separately for each position mod `period`; the score is those values' coefficient of
    variation (std / mean), averaged over the two axes. A photo's edges fall anywhere, so it
    scores a few percent (sampling noise); an upsampling grid puts its edges (8 px blocks:
    every step on one position) or its repeating pattern (every position its own strength)
    at fixed positions, and scores far higher. Both kinds of grid count, which a spectral
    peak measure misses: nearest-neighbour blocks have *zeros* at the grid's frequencies.
    """
    grey = luminance(image)
    if min(grey.shape) < 4 * period:
        raise ValueError(f"image {grey.shape} is too small to measure a {period} px grid")
    scores = []
    for axis in (0, 1):
        profile = _phase_profile(grey, axis, period)
        mean = profile.mean()
        scores.append(profile.std() / mean if mean > 0 else 0.0)
    return float(np.mean(scores))


def grid_excess(output: np.ndarray, photo: np.ndarray, period: int = UPSAMPLING_PERIOD
                ) -> float:
    """The output's blockiness minus the photo's (0.05: 5 points more; <= 0: no grid added)."""
    return blockiness(output, period) - blockiness(photo, period)


__all__ = ["blockiness", "box_average", "grid_excess", "layout_score", "luminance"]
