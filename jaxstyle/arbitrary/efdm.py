"""Exact feature distribution matching (Zhang et al., "Exact Feature Distribution Matching for
Arbitrary Style Transfer and Domain Generalization", CVPR 2022).

At one VGG level every channel of the photo's features is given the painting's whole
distribution, not only its mean and spread (AdaIN) or its covariance (WCT): the photo's
values are replaced, rank for rank, by the painting's values at the same quantile,

    EFDM(c, s)[p] = F_s^-1(F_c(c[p]))       per channel, F the empirical CDF,

so the output's per-channel histogram is the painting's and the photo's order of values (its
layout) is kept exactly. Zhang et al. sort both maps and need them the same size; here the
painting is summarised by its quantile function sampled at `QUANTILES` fixed levels
(`EFDMStats`), so a painting of any size gives the same small array, blends are averages of
quantile functions (the 1-D Wasserstein barycentre of the paintings' distributions), and a
tiled photo can take its ranks from whole-photo quantiles merged from its tiles
(`content_quantiles`, `merge_quantiles`). Everything is a pure, batch-first function of
float32 arrays:

- `quantile_stats`: K paintings' quantile functions, optionally of a soft mask's positions;
- `efdm_target`: the transformed features, with alpha, a blend of paintings or one painting
  per region, ranks exact (a sort of the photo) or from given quantiles (`own`, for tiles).

Example:

>>> from jaxstyle.arbitrary import efdm
>>> rng = np.random.default_rng(0)
>>> photo, painting = jnp.asarray(rng.normal(size=(2, 1, 8, 8, 4)), jnp.float32)
>>> out = efdm.efdm_target(photo, efdm.quantile_stats(painting, count=64))
>>> bool(jnp.allclose(jnp.sort(out.reshape(64, 4), 0), jnp.sort(painting.reshape(64, 4), 0)))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.arbitrary.adain import blend_weights

# Levels of a painting's quantile function kept per channel: a fixed size, whatever the
# painting's. With exactly this many positions (relu4_1 of a 256 px square painting) its
# sorted values are kept as they are; otherwise they are resampled, linearly interpolated, an
# error of a fraction of the gap between neighbouring values (4 KB a channel at float32).
QUANTILES = 1024


class EFDMStats(NamedTuple):
    """K paintings at one level: their per-channel quantile functions (K, Q, C) float32, row
    j the value at level (j + 0.5) / Q, ascending along Q.

    Example:

    >>> features = jnp.arange(8.0).reshape(1, 2, 4, 1)
    >>> stats = jaxstyle.arbitrary.efdm.quantile_stats(features, count=8)
    >>> stats.quantiles.shape, stats.quantiles[0, :, 0].tolist()  # K, Q, C
    ((1, 8, 1), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    """

    quantiles: jax.Array


def levels(count: int) -> jax.Array:
    """The quantile levels (j + 0.5) / count, j < count: each sample is the middle of its
    1/count share of the distribution, so no level sits on the extremes 0 and 1.

    Example:

    >>> jaxstyle.arbitrary.efdm.levels(4).tolist()
    [0.125, 0.375, 0.625, 0.875]
    """
    return (jnp.arange(count, dtype=jnp.float32) + 0.5) / count


def quantile_at(quantiles: jax.Array, u: jax.Array) -> jax.Array:
    """Values of quantile functions (N, Q, C) at CDF values u (N, P, C): (N, P, C).

    The levels are uniform, so level u sits at index u Q - 0.5: a floor and a linear
    interpolation, no search; outside the first and last level the end values are kept.

    Example:

    >>> quantiles = jnp.asarray([0.0, 10.0, 20.0, 30.0]).reshape(1, 4, 1)
    >>> u = jnp.asarray([0.0, 0.125, 0.5, 1.0]).reshape(1, 4, 1)
    >>> jaxstyle.arbitrary.efdm.quantile_at(quantiles, u)[0, :, 0].tolist()
    [0.0, 0.0, 15.0, 30.0]
    """
    count = quantiles.shape[1]
    index = u.astype(jnp.float32) * count - 0.5
    below = jnp.floor(index)
    frac = jnp.clip(index - below, 0.0, 1.0)
    lo = jnp.clip(below.astype(jnp.int32), 0, count - 1)
    hi = jnp.clip(below.astype(jnp.int32) + 1, 0, count - 1)
    # At the clamps lo == hi, so whatever frac is the end value is returned.
    return (jnp.take_along_axis(quantiles, lo, axis=1) * (1.0 - frac)
            + jnp.take_along_axis(quantiles, hi, axis=1) * frac)


def _flat(features: jax.Array) -> jax.Array:
    if features.ndim != 4:
        raise ValueError(f"features must be (N, h, w, C), got {features.shape}")
    n, h, w, c = features.shape
    return features.astype(jnp.float32).reshape(n, h * w, c)


def _interp_columns(x: jax.Array, xp: jax.Array, fp: jax.Array) -> jax.Array:
    """jnp.interp per image and channel: x (N, P, C) on the curves xp, fp (N, M, C)."""
    per_channel = jax.vmap(jnp.interp, in_axes=(1, 1, 1), out_axes=1)
    return jax.vmap(per_channel)(x, xp, fp)


def quantile_stats(features: jax.Array, mask: Optional[jax.Array] = None,
                   count: int = QUANTILES) -> EFDMStats:
    """The quantile functions of features (N,h,w,C), one row per image: EFDMStats (N, Q, C).

    The sorted values sit at the levels (i + 0.5) / P and are linearly interpolated at the
    Q levels (so P == Q keeps them exactly). With a soft mask (N,h,w) the positions count by
    their weight: value i sits at (its cumulative weight - half its own) / the total.

    Example:

    >>> features = jnp.asarray([3.0, 1.0, 2.0, 9.0]).reshape(1, 1, 4, 1)
    >>> stats = jaxstyle.arbitrary.efdm.quantile_stats(features, count=4)
    >>> stats.quantiles[0, :, 0].tolist()
    [1.0, 2.0, 3.0, 9.0]
    >>> mask = jnp.asarray([1.0, 1.0, 1.0, 0.0]).reshape(1, 1, 4)  # 9 outside the region
    >>> stats = jaxstyle.arbitrary.efdm.quantile_stats(features, mask, count=3)
    >>> stats.quantiles[0, :, 0].tolist()
    [1.0, 2.0, 3.0]
    """
    x = _flat(features)
    if mask is None:
        # Uniform weights: the sorted values form a quantile function on a uniform grid.
        return EFDMStats(quantile_at(jnp.sort(x, axis=1), jnp.broadcast_to(
            levels(count)[None, :, None], (x.shape[0], count, x.shape[2]))))
    n, positions, c = x.shape
    weight = jnp.broadcast_to(mask.astype(jnp.float32).reshape(n, positions, 1), x.shape)
    order = jnp.argsort(x, axis=1)
    values = jnp.take_along_axis(x, order, axis=1)
    weight = jnp.take_along_axis(weight, order, axis=1)
    cumulative = jnp.cumsum(weight, axis=1)
    total = jnp.maximum(cumulative[:, -1:], 1e-8)
    at = (cumulative - 0.5 * weight) / total  # ascending (non-strictly where weights are 0)
    wanted = jnp.broadcast_to(levels(count)[None, :, None], (n, count, c))
    return EFDMStats(_interp_columns(wanted, at, values))


def stack_efdm_stats(stats: Sequence[EFDMStats]) -> EFDMStats:
    """Several EFDMStats (each (k_i, Q, C), the same Q) as one with K = sum k_i rows.

    Example:

    >>> one = jaxstyle.arbitrary.efdm.EFDMStats(jnp.zeros((1, 16, 4)))
    >>> jaxstyle.arbitrary.efdm.stack_efdm_stats([one, one]).quantiles.shape
    (2, 16, 4)
    """
    return EFDMStats(jnp.concatenate([s.quantiles for s in stats]))


def content_quantiles(features: jax.Array, count: int = QUANTILES) -> jax.Array:
    """A photo's (or a tile's) own quantile functions (N,h,w,C) -> (N, Q, C): what
    `merge_quantiles` combines over tiles and `efdm_target` takes as `own`.

    Example:

    >>> features = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> jaxstyle.arbitrary.efdm.content_quantiles(features, count=4)[0, :, 0].tolist()
    [1.5, 5.5, 9.5, 13.5]
    """
    return quantile_stats(features, count=count).quantiles


def merge_quantiles(parts: Sequence[tuple[ArrayLike, ArrayLike]]) -> np.ndarray:
    """The quantile functions of the union of disjoint parts, on the host in float64:
    parts [(quantiles (N, Q, C), positions: a count, scalar or (N,)), ...] -> (N, Q, C).

    Each part's Q samples stand for its positions, count / Q each; all the samples are
    sorted together and the cumulative weights read off at the levels (j + 0.5) / Q, as
    `quantile_stats` does with a mask. Exact when the parts' quantiles are their sorted values.

    Example:

    >>> left = np.asarray([0.0, 2.0]).reshape(1, 2, 1)
    >>> right = np.asarray([1.0, 3.0]).reshape(1, 2, 1)
    >>> merged = jaxstyle.arbitrary.efdm.merge_quantiles([(left, 2), (right, 2)])
    >>> merged[0, :, 0].tolist()  # 4 positions read at 2 levels: 0.25, 0.75
    [0.5, 2.5]
    """
    if not parts:
        raise ValueError("give at least one part")
    quantiles = [np.asarray(q, np.float64) for q, _ in parts]
    n, count, c = quantiles[0].shape
    if any(q.shape != (n, count, c) for q in quantiles):
        raise ValueError(f"every part's quantiles must be (N, Q, C) = {(n, count, c)}")
    values = np.concatenate(quantiles, axis=1)  # (N, M, C), M = parts x Q
    weight = np.concatenate([np.broadcast_to(np.asarray(w, np.float64).reshape(-1, 1) / count,
                                             (n, count)) for _, w in parts], axis=1)
    order = np.argsort(values, axis=1, kind="stable")
    values = np.take_along_axis(values, order, axis=1)
    weight = np.take_along_axis(np.broadcast_to(weight[..., None], values.shape), order, axis=1)
    cumulative = np.cumsum(weight, axis=1)
    at = (cumulative - 0.5 * weight) / np.maximum(cumulative[:, -1:], 1e-12)
    wanted = (np.arange(count) + 0.5) / count
    out = np.empty((n, count, c), np.float64)
    for i in range(n):
        for j in range(c):
            out[i, :, j] = np.interp(wanted, at[i, :, j], values[i, :, j])
    return out


def _cdf_from_quantiles(x: jax.Array, own: jax.Array) -> jax.Array:
    """The CDF values (N, P, C) of x (N, P, C) under quantile functions own (N, Q, C).

    Where a value repeats in `own` (ReLU's many zeros), the CDF steps: the middle of the step
    is taken, the mean rank the exact sort gives those tied positions."""
    n, count, c = own.shape
    grid = jnp.broadcast_to(levels(count)[None, :, None], own.shape)
    upper = _interp_columns(x, own, grid)  # jnp.interp takes the top of a run of equal xp
    lower = -_interp_columns(-x, -own[:, ::-1], -grid[:, ::-1])  # mirrored: the bottom
    return 0.5 * (upper + lower)


def _ranked_target(x: jax.Array, quantiles: jax.Array, weights: jax.Array) -> jax.Array:
    """Exact EFDM by one sort: x (N, P, C), paintings' quantile functions (N, R, Q, C) and a
    weight per region and position (N, P, R) -> sum_r weight_r * F_r^-1(F_c,r(x)), (N, P, C).

    Each region's CDF at a value is the middle of the cumulative weight its run of equal
    values spans, over the region's total: with one region of ones and no ties,
    (rank + 0.5) / P. Tied values (half of a post-ReLU map is exactly 0) share one rank, the
    run's mean, as `_cdf_from_quantiles` gives them in tiles: ranking them by position instead
    spread the painting's low values over the photo's zeros in raster order, a top-to-bottom
    gradient of what should be one value (and a tiled run could not reproduce it)."""
    n, positions, c = x.shape
    order = jnp.argsort(x, axis=1)  # per channel, positions by value
    ordered = jnp.take_along_axis(x, order, axis=1)
    index = jnp.broadcast_to(jnp.arange(positions)[None, :, None], x.shape)
    new_value = ordered[:, 1:] != ordered[:, :-1]
    starts = jnp.concatenate([jnp.ones_like(new_value[:, :1]), new_value], axis=1)
    ends = jnp.concatenate([new_value, jnp.ones_like(new_value[:, :1])], axis=1)
    run_start = jax.lax.cummax(jnp.where(starts, index, 0), axis=1)
    run_end = jax.lax.cummin(jnp.where(ends, index, positions - 1), axis=1, reverse=True)
    styled_sorted = jnp.zeros_like(x)
    for r in range(quantiles.shape[1]):
        weight = jnp.take_along_axis(
            jnp.broadcast_to(weights[..., r:r + 1], x.shape), order, axis=1)
        cumulative = jnp.cumsum(weight, axis=1)
        before_run = jnp.take_along_axis(cumulative - weight, run_start, axis=1)
        through_run = jnp.take_along_axis(cumulative, run_end, axis=1)
        u = 0.5 * (before_run + through_run) / jnp.maximum(cumulative[:, -1:], 1e-8)
        target = quantile_at(quantiles[:, r], u)
        styled_sorted = styled_sorted + weight * target
    # Back from sorted order to positions: order is a permutation along P in every channel.
    rows = jnp.arange(n)[:, None, None]
    channels = jnp.arange(c)[None, None, :]
    return jnp.zeros_like(x).at[rows, order, channels].set(styled_sorted)


def efdm_target(content: jax.Array, stats: EFDMStats, *, weights: Optional[jax.Array] = None,
                masks: Optional[jax.Array] = None, alpha: float | jax.Array = 1.0,
                own: Optional[jax.Array] = None) -> jax.Array:
    """The features the level's decoder turns into the stylised image: (N,h,w,C) float32.

    stats: K paintings. weights (N, K): blend them by averaging their quantile functions,
    sum_k w_k F_k^-1 (the Wasserstein barycentre; used as given, normalise them to sum 1).
    masks (N, h, w, K) summing to 1 at each position: painting k where mask k is, the
    content's ranks taken within region k alone (its mask-weighted CDF), the output
    sum_k m_k EFDM_k. Neither: K must be 1. alpha: 1 the full transform, 0 the content's own
    features; a scalar or (N,). own: the content's quantile functions (N, Q', C) computed
    elsewhere (`merge_quantiles` of the whole photo's tiles, when `content` is one tile): its
    CDF is then interpolated from them instead of sorting `content`; not with masks.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> photo = jnp.asarray(rng.normal(size=(1, 8, 8, 4)), jnp.float32)
    >>> stats = jaxstyle.arbitrary.efdm.quantile_stats(2.0 * photo + 1.0, count=64)
    >>> target = jaxstyle.arbitrary.efdm.efdm_target(photo, stats)  # a monotone map: exact
    >>> bool(jnp.allclose(target, 2.0 * photo + 1.0, atol=1e-5))
    True
    >>> unchanged = jaxstyle.arbitrary.efdm.efdm_target(photo, stats, alpha=0.0)
    >>> bool(jnp.allclose(unchanged, photo))
    True
    """
    if weights is not None and masks is not None:
        raise ValueError("give weights (a blend) or masks (regions), not both")
    x = _flat(content)
    n, positions, channels = x.shape
    count = stats.quantiles.shape[0]
    if stats.quantiles.ndim != 3 or stats.quantiles.shape[2] != channels:
        raise ValueError(f"statistics of shape {stats.quantiles.shape} (K, Q, C), features "
                         f"have {channels} channels")
    quantiles = stats.quantiles.astype(jnp.float32)
    if masks is not None:
        if masks.shape != (*content.shape[:3], count):
            raise ValueError(f"masks must be (N, h, w, K) = {(*content.shape[:3], count)}, "
                             f"got {masks.shape}")
        if own is not None:
            raise ValueError("own holds the whole photo's quantiles; masks need each "
                             "region's: give one or the other")
        styled = _ranked_target(x, jnp.broadcast_to(quantiles, (n, *quantiles.shape)),
                                masks.astype(jnp.float32).reshape(n, positions, count))
    else:
        weights = blend_weights(weights, n, count).astype(jnp.float32)
        # The barycentre of 1-D distributions: their quantile functions averaged.
        blended = jnp.einsum("nk,kqc->nqc", weights, quantiles,
                             precision=jax.lax.Precision.HIGHEST)
        if own is None:
            styled = _ranked_target(x, blended[:, None],
                                    jnp.ones((n, positions, 1), jnp.float32))
        else:
            own = jnp.asarray(own, jnp.float32)
            if own.shape[0] != n or own.shape[2] != channels:
                raise ValueError(f"own must be (N, Q, C) with N, C = {n}, {channels}, got "
                                 f"{own.shape}")
            styled = quantile_at(blended, _cdf_from_quantiles(x, own))
    alpha = jnp.asarray(alpha, jnp.float32)
    alpha = alpha.reshape((-1, 1, 1)) if alpha.ndim else alpha
    return (alpha * styled + (1.0 - alpha) * x).reshape(content.shape)


__all__ = ["QUANTILES", "EFDMStats", "content_quantiles", "efdm_target", "levels",
           "merge_quantiles", "quantile_at", "quantile_stats", "stack_efdm_stats"]
