"""The seed's losses as small pure functions (TensorFlow tutorial definitions).

Where the maths departs from Gatys et al. (2015) it follows the tutorial, on purpose:
- Gram matrices are divided by H*W (the paper divides the loss by 4 N^2 M^2 instead).
- The style and content terms are plain means of squared errors, averaged over layers
  (the paper weights layers by w_l and sums).
- Total variation is the L1 (anisotropic) sum of `tf.image.total_variation`, not in the paper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _check_features(features: jax.Array, name: str = "features") -> None:
    if features.ndim != 4:
        raise ValueError(f"{name} must be (N, H, W, C), got shape {features.shape}")


@jax.custom_vjp
def _self_products(flat: jax.Array) -> jax.Array:
    """F^T F per image: (N, P, C) -> (N, C, C).

    One 2-D matmul per image (XLA CPU runs batched dots with a batch of 1 markedly slower), and
    a hand-written backward pass: d(F^T F) is F (dG + dG^T), one matmul where autodiff emits two.
    Together they halve the Gram matrices' share of a CPU step.
    """
    return jnp.stack([image.T @ image for image in flat])


def _self_products_fwd(flat):
    return _self_products(flat), flat


def _self_products_bwd(flat, cotangent):
    return (jnp.stack([image @ (g + g.T) for image, g in zip(flat, cotangent)]),)


_self_products.defvjp(_self_products_fwd, _self_products_bwd)


def gram_matrix(features: jax.Array) -> jax.Array:
    """Channel correlations divided by H*W: (N, H, W, C) -> (N, C, C)."""
    _check_features(features)
    n, h, w, c = features.shape
    flat = features.astype(jnp.float32).reshape(n, h * w, c)
    return _self_products(flat) / (h * w)


def masked_gram_matrix(features: jax.Array, masks: jax.Array) -> jax.Array:
    """Guided Gram over each mask (Gatys et al. 2017): (N,H,W,C), (S,H,W) -> (N,S,C,C).

    Features are weighted by the mask and the sum is divided by the mask's total weight, so a
    mask of all ones gives exactly `gram_matrix`. (The 2017 paper weights features by the
    guide and normalises like the unguided Gram; dividing by the mask area instead keeps the
    statistics of a small region on the same scale as the style image's.)
    """
    _check_features(features)
    if masks.ndim != 3 or masks.shape[1:] != features.shape[1:3]:
        raise ValueError(f"masks must be (S, {features.shape[1]}, {features.shape[2]}), "
                         f"got {masks.shape}")
    weighted = jnp.einsum("nhwc,shw->nshwc", features, masks)
    gram = jnp.einsum("nshwc,nhwd->nscd", weighted, features,
                      preferred_element_type=jnp.float32)
    area = jnp.maximum(masks.sum(axis=(1, 2)), 1e-8)
    return gram / area[None, :, None, None]


def mean_squared_error(a: jax.Array, b: jax.Array) -> jax.Array:
    """Mean of squared differences over all elements: (...), (...) -> ()."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return jnp.mean(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32)))


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
    """MSE between features and the content target: (N,H,W,C), (N,H,W,C) -> ()."""
    return mean_squared_error(features, target)


def style_loss(features: jax.Array, target_gram: jax.Array) -> jax.Array:
    """MSE between the features' Gram and the target Gram: (N,H,W,C), (N,C,C) -> ()."""
    return mean_squared_error(gram_matrix(features), target_gram)


def total_variation(images: jax.Array) -> jax.Array:
    """Sum of |neighbour differences| per image (tf.image.total_variation): (N,H,W,C) -> (N,)."""
    _check_features(images, "images")
    images = images.astype(jnp.float32)
    vertical = jnp.abs(images[:, 1:, :, :] - images[:, :-1, :, :]).sum(axis=(1, 2, 3))
    horizontal = jnp.abs(images[:, :, 1:, :] - images[:, :, :-1, :]).sum(axis=(1, 2, 3))
    return vertical + horizontal


def weighted_mean(values: list[jax.Array], weights=None) -> jax.Array:
    """Mean of per-layer losses; with weights, their weighted average (weights sum normalised)."""
    stacked = jnp.stack(values)
    if weights is None:
        return stacked.mean()
    weights = jnp.asarray(weights, jnp.float32)
    return (stacked * weights).sum() / weights.sum()
