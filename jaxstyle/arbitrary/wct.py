"""Whitening and colouring (Li et al., "Universal Style Transfer via Feature Transforms", 2017).

At one VGG level the photo's features are whitened (mean removed, covariance made the
identity, by the eigendecomposition of their covariance) and coloured with a painting's
covariance and mean:

    WCT(c, s) = E_s D_s^1/2 E_s^T  E_c (D_c + r)^-1/2 E_c^T (c - mean(c)) + mean(s)

so the output's mean and covariance are the painting's: its Gram matrix, which is what the
seed's style loss scores at that layer, is matched by construction (AdaIN matches only each
channel's mean and spread). Everything is a pure, batch-first function of arrays, computed in
float32:

- `covariance_stats`: mean and covariance over H, W, optionally weighted by a soft mask;
- `wct_stats`: a painting's mean and colouring matrix, once per painting (K rows);
- `wct_target`: the transformed features, with alpha, a blend of several paintings (their
  coloured features interpolated, as Li et al. do) or one painting per region (statistics
  per region, the paper's spatial control).

Where this departs from the paper: Li et al. drop eigenvalues under an absolute 1e-5. On this
VGG's 0-255 scale that threshold is meaningless (dark photos blew up 10-30x in a probe), so
the ridge r is relative: `RIDGE` times the mean eigenvalue (trace / C), plus a floor, which
also keeps a flat painting, a 2x2 relu5_1 map or a region of a few pixels finite.

The photo's whitening (C + r)^-1/2 is taken one of two ways (`WHITENINGS`): "eigh", the
eigendecomposition (the default: on a CPU it is 6x faster at 512 channels), or
"newton-schulz", a fixed number of coupled Newton-Schulz iterations, matrix products only,
which is what an ONNX file can hold (ONNX has no eigendecomposition). The ridge bounds the
condition number, so the count that converges is known in advance (`newton_schulz_steps`).
In float32 on real VGG features it is the more accurate of the two: against a float64
eigendecomposition, 6e-5..4e-4 relative on the whitened features where float32 `eigh` is off
by 3e-4..3e-2 (BENCHMARKS.md, "Export").
"""

from __future__ import annotations

from typing import NamedTuple, Optional, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.arbitrary.adain import blend_weights

# Relative ridge: whitening divides by sqrt(eigenvalue + RIDGE * mean eigenvalue), so no
# direction is amplified more than 1/sqrt(RIDGE) (100x) over the average one. Directions
# under it are left partly unwhitened; the output covariance then equals the painting's to
# about the share of the content's variance below the ridge (tests/test_wct.py).
RIDGE = 1e-4
FLOOR = 1e-8  # absolute floor: an all-zero (flat) feature map must not divide by zero
WHITENINGS = ("eigh", "newton-schulz")


class WCTStats(NamedTuple):
    """K paintings at one level: mean (K, C) and colouring matrix E D^1/2 E^T (K, C, C)."""

    mean: jax.Array
    colour: jax.Array


def covariance_stats(features: jax.Array, mask: Optional[jax.Array] = None
                     ) -> tuple[jax.Array, jax.Array]:
    """Mean and covariance over positions: (N,h,w,C) [, mask (N,h,w)] -> (N,C), (N,C,C).

    With a mask, positions count by their weight (a soft mask works); an all-zero mask gives
    mean 0 and covariance 0 rather than NaN.
    """
    x = features.astype(jnp.float32)
    n, h, w, c = x.shape
    x = x.reshape(n, h * w, c)
    if mask is None:  # plain means: no (N, P, 1) weight broadcast for an exporter to mis-shape
        mean = x.mean(axis=1)
        centred = x - mean[:, None, :]
        return mean, jnp.einsum("npi,npj->nij", centred, centred,
                                precision=jax.lax.Precision.HIGHEST) / (h * w)
    weight = mask.astype(jnp.float32).reshape(n, h * w, 1)
    weight = weight / jnp.maximum(weight.sum(axis=1, keepdims=True), 1e-8)
    mean = (weight * x).sum(axis=1)
    centred = x - mean[:, None, :]
    cov = jnp.einsum("npi,npj->nij", weight * centred, centred,
                     precision=jax.lax.Precision.HIGHEST)
    return mean, cov


def _symmetric_power(cov: jax.Array, power: float, ridge: float) -> jax.Array:
    """cov^power of symmetric PSD matrices (N,C,C) by eigendecomposition, with the relative
    ridge added to every eigenvalue (negative round-off eigenvalues clipped to 0)."""
    cov = 0.5 * (cov + cov.swapaxes(-1, -2))
    values, vectors = jnp.linalg.eigh(cov)
    values = jnp.maximum(values, 0.0)
    shift = ridge * values.mean(axis=-1, keepdims=True) + FLOOR
    scaled = vectors * jnp.power(values + shift, power)[..., None, :]
    return jnp.einsum("nik,njk->nij", scaled, vectors, precision=jax.lax.Precision.HIGHEST)


def newton_schulz_steps(channels: int, ridge: float) -> int:
    """Iterations that take `inverse_sqrt_newton_schulz` to float32's limit at this ridge.

    Scaled by its trace, the ridged covariance has eigenvalues in [x, 1] with
    x ~ ridge / (channels (1 + ridge)). Far below 1 an eigenvalue's z*y grows 2.25x per
    iteration, so reaching ~1 takes log(1/x) / log(2.25) of them, and the quadratic phase about
    5 more (measured: 25 for relu4_1's 512 channels at RIDGE, where 20 leave 1e-2).
    """
    if not ridge > 0:
        raise ValueError("the Newton-Schulz whitening needs a ridge > 0 (it bounds the "
                         "condition number, hence the iterations)")
    smallest = ridge / (channels * (1.0 + ridge))
    return int(np.ceil(np.log(1.0 / smallest) / np.log(2.25))) + 5


def inverse_sqrt_newton_schulz(cov: jax.Array, ridge: float,
                               steps: Optional[int] = None) -> jax.Array:
    """(cov + shift)^-1/2 of symmetric PSD matrices (N,C,C), shift as `_symmetric_power`'s,
    by the coupled Newton-Schulz iteration (Higham, "Functions of Matrices", 6.3): with
    A = (cov + shift) / trace, Y <- Y T, Z <- T Z, T = (3I - Z Y) / 2 from Y = A, Z = I,
    Z -> A^-1/2. Matrix products only (an ONNX file holds them); unrolled, `steps` fixed."""
    cov = 0.5 * (cov + cov.swapaxes(-1, -2))
    channels = cov.shape[-1]
    steps = newton_schulz_steps(channels, ridge) if steps is None else steps
    eye = jnp.eye(channels, dtype=jnp.float32)
    # The trace as a masked sum: jnp.trace's diagonal gather is one more op for exporters.
    trace = (cov * eye).sum(axis=(-2, -1), keepdims=True)
    # trace / C is the mean eigenvalue: the same shift as the eigendecomposition's (without
    # its clip of round-off negatives, which the ridge outweighs).
    ridged = cov + (ridge * jnp.maximum(trace, 0.0) / channels + FLOOR) * eye
    scale = (ridged * eye).sum(axis=(-2, -1), keepdims=True)  # >= the largest eigenvalue
    y, z = ridged / scale, jnp.broadcast_to(eye, ridged.shape)
    for _ in range(steps):
        t = 1.5 * eye - 0.5 * jnp.matmul(z, y, precision=jax.lax.Precision.HIGHEST)
        y = jnp.matmul(y, t, precision=jax.lax.Precision.HIGHEST)
        z = jnp.matmul(t, z, precision=jax.lax.Precision.HIGHEST)
    return z / jnp.sqrt(scale)


def _inverse_sqrt(cov: jax.Array, ridge: float, whitening: str) -> jax.Array:
    if whitening == "eigh":
        return _symmetric_power(cov, -0.5, ridge)
    if whitening == "newton-schulz":
        return inverse_sqrt_newton_schulz(cov, ridge)
    raise ValueError(f"whitening must be one of {', '.join(WHITENINGS)}, got {whitening!r}")


def wct_stats(features: jax.Array, mask: Optional[jax.Array] = None) -> WCTStats:
    """The WCTStats of K paintings' features (K,h,w,C) (each at its own size is fine: compute
    them one by one and `stack_wct_stats`)."""
    mean, cov = covariance_stats(features, mask)
    # The colouring takes the painting's own eigenvalues: only the floor, no ridge, so the
    # output carries its covariance as it is (a ridge here would add variance it lacks).
    return WCTStats(mean, _symmetric_power(cov, 0.5, 0.0))


def stack_wct_stats(stats: list[WCTStats]) -> WCTStats:
    """Several WCTStats (each (k_i, ...)) as one with K = sum k_i rows."""
    return WCTStats(jnp.concatenate([s.mean for s in stats]),
                    jnp.concatenate([s.colour for s in stats]))


class ContentStats(NamedTuple):
    """A photo's whitening at one level, per region: mean (N, R, C), whitening (N, R, C, C);
    R = 1 for the whole photo, or one per mask."""

    mean: jax.Array
    whitening: jax.Array


def region_moments(features: jax.Array, masks: Optional[jax.Array] = None
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Weight, mean and centred scatter per region: (N,h,w,C) [, masks (N,h,w,R)] ->
    (N,R), (N,R,C), (N,R,C,C); scatter / weight is the covariance. Tiles' moments combine
    exactly (`combine_moments`), so a photo's statistics can be gathered tile by tile."""
    n, h, w, _ = features.shape
    masks = jnp.ones((n, h, w, 1), jnp.float32) if masks is None else masks
    weight = masks.astype(jnp.float32).sum(axis=(1, 2))
    means, scatters = [], []
    for r in range(masks.shape[-1]):
        mean, cov = covariance_stats(features, masks[..., r])
        means.append(mean)
        scatters.append(cov * weight[:, r, None, None])
    return weight, jnp.stack(means, 1), jnp.stack(scatters, 1)


def combine_moments(parts: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The moments of the union of disjoint parts (each `region_moments`' triple), in float64
    on the host (Chan et al.'s pairwise update: no large-mean cancellation)."""
    weights = [np.asarray(w, np.float64) for w, _, _ in parts]
    means = [np.asarray(m, np.float64) for _, m, _ in parts]
    # Arrays, not sum's start (0): there is at least one part.
    total = cast(np.ndarray, sum(weights))
    mean = sum(w[..., None] * m for w, m in zip(weights, means)) / np.maximum(
        total, 1e-8)[..., None]
    scatter = cast(np.ndarray, sum(np.asarray(s, np.float64) + w[..., None, None] * np.einsum(
        "...i,...j->...ij", m - mean, m - mean) for w, m, (_, _, s) in zip(weights, means, parts)))
    return total, mean, scatter


def content_stats_from_moments(weight: ArrayLike, mean: ArrayLike, scatter: ArrayLike,
                               ridge: float = RIDGE,
                               whitening: str = "eigh") -> ContentStats:
    """ContentStats from `region_moments` (or `combine_moments`) of a photo's features."""
    weight = jnp.asarray(weight, jnp.float32)
    cov = jnp.asarray(scatter, jnp.float32) / jnp.maximum(weight, 1e-8)[..., None, None]
    n, r, c, _ = cov.shape
    matrix = _inverse_sqrt(cov.reshape(n * r, c, c), ridge, whitening).reshape(n, r, c, c)
    return ContentStats(jnp.asarray(mean, jnp.float32), matrix)


def content_stats(content: jax.Array, masks: Optional[jax.Array] = None,
                  ridge: float = RIDGE, whitening: str = "eigh") -> ContentStats:
    """The whitening of content features (N,h,w,C) by their own statistics: of the whole map,
    or of each region of masks (N,h,w,R)."""
    return content_stats_from_moments(*region_moments(content, masks), ridge=ridge,
                                      whitening=whitening)


def whiten(content: jax.Array, mask: Optional[jax.Array] = None,
           ridge: float = RIDGE) -> jax.Array:
    """Content features (N,h,w,C) with their mean removed and covariance made ~ the identity,
    by their own statistics (over the mask's positions when one is given)."""
    stats = content_stats(content, None if mask is None else mask[..., None], ridge)
    centred = content.astype(jnp.float32) - stats.mean[:, 0, None, None, :]
    return jnp.einsum("nhwi,nij->nhwj", centred, stats.whitening[:, 0],
                      precision=jax.lax.Precision.HIGHEST)


def _transform(content: jax.Array, mean: jax.Array, whitening: jax.Array, colour: jax.Array,
               style_mean: jax.Array) -> jax.Array:
    """(c - mean) W C + style_mean per image: content (N,h,w,C), mean (N,C), W and C (N,C,C),
    style_mean (N,C). W C is formed first: one pass over the pixels, not two."""
    matrix = jnp.einsum("nij,njk->nik", whitening, colour, precision=jax.lax.Precision.HIGHEST)
    centred = content.astype(jnp.float32) - mean[:, None, None, :]
    return jnp.einsum("nhwi,nik->nhwk", centred, matrix,
                      precision=jax.lax.Precision.HIGHEST) + style_mean[:, None, None, :]


def wct_target(content: jax.Array, stats: WCTStats, *, weights: Optional[jax.Array] = None,
               masks: Optional[jax.Array] = None, alpha: float | jax.Array = 1.0,
               ridge: float = RIDGE, own: Optional[ContentStats] = None,
               whitening: str = "eigh") -> jax.Array:
    """The features the level's decoder turns into the stylised image: (N,h,w,C) float32.

    stats: K paintings. weights (N, K): blend them, sum_k w_k WCT(c, s_k) (Li et al.'s
    interpolation of coloured features; one whitening, one blended colouring). masks
    (N, h, w, K) summing to 1 at each position: painting k where mask k is, the content
    whitened by the statistics of that region alone. Neither: K must be 1. alpha: 1 the full
    transform, 0 the content's own features; a scalar or (N,). own: the content's whitening
    computed elsewhere (`content_stats` of the whole photo, when `content` is one tile of it);
    default: `content`'s own, by `whitening` ("eigh" or "newton-schulz").
    """
    if weights is not None and masks is not None:
        raise ValueError("give weights (a blend) or masks (regions), not both")
    if content.ndim != 4:
        raise ValueError(f"content must be (N, h, w, C), got {content.shape}")
    count = stats.mean.shape[0]
    n, channels = content.shape[0], content.shape[-1]
    if stats.mean.shape[1:] != (channels,) or stats.colour.shape[1:] != (channels, channels):
        raise ValueError(f"statistics for {stats.mean.shape[1:]} channels, features have "
                         f"{channels}")
    c = content.astype(jnp.float32)
    if masks is not None:
        if masks.shape != (*content.shape[:3], count):
            raise ValueError(f"masks must be (N, h, w, K) = {(*content.shape[:3], count)}, "
                             f"got {masks.shape}")
        own = content_stats(c, masks, ridge, whitening) if own is None else own
        styled = sum(masks[..., k:k + 1] * _transform(
            c, own.mean[:, k], own.whitening[:, k],
            jnp.broadcast_to(stats.colour[k], (n, channels, channels)),
            jnp.broadcast_to(stats.mean[k], (n, channels))) for k in range(count))
    else:
        weights = blend_weights(weights, n, count).astype(jnp.float32)
        own = content_stats(c, None, ridge, whitening) if own is None else own
        # sum_k w_k (x C_k + m_k) = x (sum_k w_k C_k) + sum_k w_k m_k: one colouring pass.
        colour = jnp.einsum("nk,kij->nij", weights, stats.colour)
        styled = _transform(c, own.mean[:, 0], own.whitening[:, 0], colour,
                            weights @ stats.mean)
    alpha = jnp.asarray(alpha, jnp.float32)
    alpha = alpha.reshape((-1, 1, 1, 1)) if alpha.ndim else alpha
    return alpha * styled + (1.0 - alpha) * c


__all__ = ["FLOOR", "RIDGE", "WHITENINGS", "ContentStats", "WCTStats", "combine_moments",
           "content_stats", "content_stats_from_moments", "covariance_stats",
           "inverse_sqrt_newton_schulz", "newton_schulz_steps", "region_moments",
           "stack_wct_stats", "whiten", "wct_stats", "wct_target"]
