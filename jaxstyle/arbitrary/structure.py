"""The photo's tonal layout put back under a one-pass picture (engine 3's structure path).

    low(y) = the luminance y blurred to the scale of the picture's layout
    out' = out + strength * (rescaled low(photo) - low(out))    on every RGB channel

WCT's relu4_1 level moves large bright and dark areas around (the photo's layout scored 0.34
to 0.86 on held-out pairs); its strokes, palette and fine texture are what make it paint.
This swaps only the blurred luminance, so the strokes and colours stay the painting's and
the light and dark areas come back where the photo has them. The photo's blurred luminance
is first given the output's own mean and spread, so the painting's tonal range is kept and
only its arrangement is the photo's. Measured at 256 px (BENCHMARKS.md, "Issue 37: the
photo's layout under WCT"): on 3 tuning pairs WCT's seed loss went from 4.67x to 4.11x
Gatys-100 with layout from 0.62 to 0.97 at worst; on 12 held-out pairs from 6.51x to 6.15x
with every pair at the layout floor (1 of 12 before). A Gaussian of sigma 4 px at
256 px scored best among 2 to 8 px (tuning pairs only); a guided filter (photo as guide)
and adding the photo's fine detail both raised the loss.

Resolution: sigma is `SIGMA` px per `GRID_SIDE` px of the photo's long side (4 px at
256 px, 16 at 1024), so every size gets the layout its 256 px version gets. The blur is two
matrix products with Gaussian matrices built from iota, so the function jits, exports to
StableHLO and converts to ONNX (MatMul) for any photo size: about 50 ms at 1024x768 and
2.1 s at 12 MP on 2 cores (`jax.jit(restore_layout)` alone, warm).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxstyle import losses
from jaxstyle.errors import ConfigError

GRID_SIDE = 256  # px of long side at which the blur's sigma is SIGMA (as tuned)
SIGMA = 4.0  # px of the Gaussian at GRID_SIDE: 1/64 of the long side
LUMA = np.asarray(losses.LUMA, np.float32)  # ITU-R BT.601, the weights the losses use


def check_structure(structure: float) -> float:
    """structure as a float in [0, 1], or a ConfigError naming it."""
    if isinstance(structure, bool) or not isinstance(structure, (int, float)) or not (
            math.isfinite(structure) and 0 <= structure <= 1):
        raise ConfigError(f"structure must be a number in [0, 1] (0: off, 1: the photo's "
                          f"whole layout), got {structure!r}")
    return float(structure)


def gaussian_matrix(size: int, sigma: ArrayLike) -> jax.Array:
    """(size, size): a Gaussian blur of std `sigma` px along one axis, edges reflected about
    the edge pixels (np.pad's "reflect"), each row normalised to sum 1.

    Built in the graph from iota alone (no indexing, no shape read as a number), so `size`
    may be a symbolic dimension (an exported file, StableHLO or ONNX, computes it for
    whatever photo it is given). For a concrete size the std goes through an optimisation
    barrier: otherwise XLA folds the whole matrix into a constant while compiling, which took
    27 s for a 12 MP photo; computed at run time it costs milliseconds.
    """
    sigma = jnp.asarray(sigma, jnp.float32)
    if isinstance(size, int):
        sigma, last = lax.optimization_barrier(sigma), jnp.float32(size - 1)
    else:
        last = lax.iota(jnp.float32, size).max()  # size - 1, from the dimension itself
    out = lax.broadcasted_iota(jnp.float32, (size, size), 0)
    source = lax.broadcasted_iota(jnp.float32, (size, size), 1)

    # The source pixel itself and its two mirror images (about pixel 0 and pixel size-1,
    # which are not repeated: np.pad's "reflect", not "symmetric"); enough while the blur's
    # reach (a few sigma) is under the photo's size.
    def bell(position: jax.Array) -> jax.Array:
        return jnp.exp(-0.5 * jnp.square((position - out) / sigma))

    weight = (bell(source) + jnp.where(source > 0, bell(-source), 0.0)
              + jnp.where(source < last, bell(2 * last - source), 0.0))
    return weight / weight.sum(axis=1, keepdims=True)


def blur_sigma(height: int, width: int) -> ArrayLike:
    """The blur's std in px: `SIGMA` per `GRID_SIDE` px of the photo's long side (a float
    for a concrete size, a traced value for a symbolic one)."""
    if isinstance(height, int) and isinstance(width, int):
        return SIGMA * max(height, width) / GRID_SIDE
    long = jnp.maximum(lax.iota(jnp.float32, height).max(),
                       lax.iota(jnp.float32, width).max()) + 1
    return SIGMA * long / GRID_SIDE


def restore_layout(stylized: ArrayLike, photos: ArrayLike, strength: float = 1.0) -> jax.Array:
    """The photo's blurred luminance under one-pass pictures: (N,H,W,3) x2 -> (N,H,W,3).

    stylized and photos in [0, 1], one shape. strength in [0, 1]: 0 gives `stylized` back
    (clipped), 1 the photo's whole layout at the picture's tonal range. Pure; jit it. See the
    module docstring for what it does and why.

    Example:

    >>> photo, picture = np.random.default_rng(0).random((2, 1, 32, 48, 3), np.float32)
    >>> jaxstyle.arbitrary.restore_layout(picture, photo).shape
    (1, 32, 48, 3)
    """
    stylized = jnp.asarray(stylized, jnp.float32)
    photos = jnp.asarray(photos, jnp.float32)
    if stylized.shape != photos.shape or stylized.ndim != 4 or stylized.shape[-1] != 3:
        raise ConfigError(f"stylized and photos must be one shape (N, H, W, 3), got "
                          f"{stylized.shape} and {photos.shape}")
    shift = layout_shift(stylized @ jnp.asarray(LUMA), photos @ jnp.asarray(LUMA))
    return jnp.clip(stylized + strength * shift[..., None], 0.0, 1.0)


def layout_shift(picture_luma: ArrayLike, photo_luma: ArrayLike) -> jax.Array:
    """What `restore_layout` adds to every channel at strength 1, from the two luminances
    (N,H,W) (`LUMA` weights): (N,H,W) float32. Pure; jit it. apply_any adds it in place on
    the host, so a 12 MP photo holds no extra full-size RGB copy."""
    picture_luma = jnp.asarray(picture_luma, jnp.float32)
    photo_luma = jnp.asarray(photo_luma, jnp.float32)
    height, width = picture_luma.shape[1:3]
    sigma = blur_sigma(height, width)
    rows, cols = gaussian_matrix(height, sigma), gaussian_matrix(width, sigma)

    def low(luma: jax.Array) -> jax.Array:
        return jnp.einsum("gh,nhw,kw->ngk", rows, luma, cols)

    low_out, low_photo = low(picture_luma), low(photo_luma)
    axes = (1, 2)
    mean_out, std_out = low_out.mean(axes, keepdims=True), low_out.std(axes, keepdims=True)
    mean_photo = low_photo.mean(axes, keepdims=True)
    std_photo = low_photo.std(axes, keepdims=True)
    # A flat photo's layout is flat: the picture's blurred luminance becomes its own mean (the
    # 1e-6 only keeps the division finite).
    rescaled = (low_photo - mean_photo) * (std_out / jnp.maximum(std_photo, 1e-6)) + mean_out
    return rescaled - low_out


__all__ = ["GRID_SIDE", "LUMA", "SIGMA", "blur_sigma", "check_structure", "gaussian_matrix",
           "layout_shift", "restore_layout"]
