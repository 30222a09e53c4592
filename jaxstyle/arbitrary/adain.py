"""Adaptive instance normalisation (Huang & Belongie 2017) and the controls built on it.

AdaIN gives content features the per-channel mean and standard deviation of style features:

    AdaIN(c, s) = std(s) * (c - mean(c)) / std(c) + mean(s)

with statistics over the spatial positions of each image and channel. Everything here is a
pure function of arrays (N, h, w, C), with style statistics passed as (K, C) rows (K style
images), so it runs under jit, vmap and any sharding of N:

- `channel_stats`: mean and std, optionally over a soft mask's positions only;
- `adain_target`: the transferred features, with the style–content trade-off alpha, a blend of
  several styles (weights per image), or one style per region (masks per image).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

EPS = 1e-5  # added to the variance: a flat (constant) channel must not divide by zero


class StyleStats(NamedTuple):
    """Per-channel statistics of K style images' features: mean, std both (K, C) float32.

    Example:

    >>> stats = jaxstyle.arbitrary.StyleStats(mean=jnp.zeros((2, 8)), std=jnp.ones((2, 8)))
    >>> stats.mean.shape  # K = 2 styles, C = 8 channels
    (2, 8)
    """

    mean: jax.Array
    std: jax.Array


def channel_stats(features: jax.Array, mask: Optional[jax.Array] = None,
                  eps: float = EPS) -> tuple[jax.Array, jax.Array]:
    """Mean and std of each channel over H, W: (N,h,w,C) [, mask (N,h,w)] -> (N,C), (N,C).

    With a mask, positions count by their weight (a soft mask works); an all-zero mask gives
    mean 0 and std sqrt(eps) rather than NaN. Computed in float32 whatever the input dtype.

    Example:

    >>> features = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> mean, std = jaxstyle.arbitrary.channel_stats(features)
    >>> float(mean[0, 0]), round(float(std[0, 0]), 3)
    (7.5, 4.61)
    """
    x = features.astype(jnp.float32)
    if mask is None:
        mean = x.mean(axis=(1, 2))
        variance = jnp.square(x - mean[:, None, None, :]).mean(axis=(1, 2))
    else:
        weight = mask.astype(jnp.float32)[..., None]
        total = jnp.maximum(weight.sum(axis=(1, 2)), 1e-8)
        mean = (weight * x).sum(axis=(1, 2)) / total
        variance = (weight * jnp.square(x - mean[:, None, None, :])).sum(axis=(1, 2)) / total
    return mean, jnp.sqrt(variance + eps)


def style_stats(features: jax.Array) -> StyleStats:
    """The StyleStats of K style images' features (K, h, w, C) (each at its own size is fine:
    compute them one by one and `stack_stats`)."""
    return StyleStats(*channel_stats(features))


def stack_stats(stats: list[StyleStats]) -> StyleStats:
    """Several StyleStats (each (k_i, C)) as one with K = sum k_i rows."""
    return StyleStats(jnp.concatenate([s.mean for s in stats]),
                      jnp.concatenate([s.std for s in stats]))


def adain(content: jax.Array, mean: jax.Array, std: jax.Array,
          mask: Optional[jax.Array] = None, eps: float = EPS) -> jax.Array:
    """AdaIN of content features (N,h,w,C) to the statistics mean, std (N,C).

    With a mask (N,h,w) the content's own statistics are taken over the masked positions, so a
    region is normalised by itself (the caller composites regions).

    Example:

    >>> content = jnp.asarray(np.random.default_rng(0).normal(size=(1, 8, 8, 4)))
    >>> out = jaxstyle.arbitrary.adain(content, mean=jnp.full((1, 4), 2.0), std=jnp.ones((1, 4)))
    >>> jaxstyle.arbitrary.channel_stats(out)[0].round(3)  # the given mean, per channel
    Array([[2., 2., 2., 2.]], dtype=float32)
    """
    c_mean, c_std = channel_stats(content, mask, eps)
    normalised = (content.astype(jnp.float32) - c_mean[:, None, None, :]) / c_std[:, None, None, :]
    return normalised * std[:, None, None, :] + mean[:, None, None, :]


def blend_weights(weights: Optional[jax.Array], n: int, count: int) -> jax.Array:
    """Blend weights (N, K) as given, or all ones for a single style; ValueError otherwise."""
    if weights is None:
        if count != 1:
            raise ValueError(f"{count} styles need weights (a blend) or masks (regions)")
        return jnp.ones((n, 1), jnp.float32)
    if weights.shape != (n, count):
        raise ValueError(f"weights must be (N, K) = ({n}, {count}), got {weights.shape}")
    return weights


def adain_target(content: jax.Array, stats: StyleStats, *, weights: Optional[jax.Array] = None,
                 masks: Optional[jax.Array] = None, alpha: float | jax.Array = 1.0,
                 eps: float = EPS) -> jax.Array:
    """The features the decoder turns into the stylised image: (N,h,w,C) float32.

    stats: K styles. weights (N, K): blend the K styles, as Huang & Belongie interpolate,
    sum_k w_k AdaIN(c, s_k) (the weights are used as given; normalise them to sum to 1 to stay
    in the style's range). masks (N, h, w, K): style k paints where mask k is, each region
    normalised by its own statistics, the masks summing to 1 at each position (resize them to
    the feature size first). Neither: K must be 1. alpha: 1 the full style, 0 the content's
    own features (the decoder's reconstruction of the photo); a scalar or (N,).

    Example:

    >>> content = jnp.asarray(np.random.default_rng(0).normal(size=(1, 8, 8, 4)))
    >>> stats = jaxstyle.arbitrary.StyleStats(mean=jnp.full((1, 4), 2.0), std=jnp.ones((1, 4)))
    >>> target = jaxstyle.arbitrary.adain_target(content, stats)  # alpha 1: the style's mean
    >>> target.shape, target.mean(axis=(1, 2)).round(3)
    ((1, 8, 8, 4), Array([[2., 2., 2., 2.]], dtype=float32))
    >>> bool(jnp.allclose(jaxstyle.arbitrary.adain_target(content, stats, alpha=0.0), content))
    True
    """
    if weights is not None and masks is not None:
        raise ValueError("give weights (a blend) or masks (regions), not both")
    count = stats.mean.shape[0]
    n = content.shape[0]
    c = content.astype(jnp.float32)
    if masks is not None:
        if masks.shape != (*content.shape[:3], count):
            raise ValueError(f"masks must be (N, h, w, K) = {(*content.shape[:3], count)}, "
                             f"got {masks.shape}")
        styled = sum(masks[..., k:k + 1] * adain(
            c, jnp.broadcast_to(stats.mean[k], (n, c.shape[-1])),
            jnp.broadcast_to(stats.std[k], (n, c.shape[-1])), masks[..., k], eps)
            for k in range(count))
    else:
        weights = blend_weights(weights, n, count)
        normalised_mean, normalised_std = channel_stats(c, eps=eps)
        normalised = (c - normalised_mean[:, None, None, :]) / normalised_std[:, None, None, :]
        # sum_k w_k (std_k * n + mean_k) = (sum_k w_k std_k) * n + sum_k w_k mean_k: one pass.
        std = weights.astype(jnp.float32) @ stats.std
        mean = weights.astype(jnp.float32) @ stats.mean
        styled = normalised * std[:, None, None, :] + mean[:, None, None, :]
    alpha = jnp.asarray(alpha, jnp.float32)
    alpha = alpha.reshape((-1, 1, 1, 1)) if alpha.ndim else alpha
    return alpha * styled + (1.0 - alpha) * c


__all__ = ["EPS", "StyleStats", "adain", "adain_target", "blend_weights", "channel_stats",
           "stack_stats", "style_stats"]
