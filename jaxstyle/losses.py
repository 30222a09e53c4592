"""The seed's losses as small pure functions (TensorFlow tutorial definitions).

Where the maths departs from Gatys et al. (2015) it follows the tutorial, on purpose:
- Gram matrices are divided by H*W (the paper divides the loss by 4 N^2 M^2 instead).
- The style and content terms are plain means of squared errors, averaged over layers
  (the paper weights layers by w_l and sums).
- Total variation is the L1 (anisotropic) sum of `tf.image.total_variation`, not in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import jax
import jax.numpy as jnp


def _check_features(features: jax.Array, name: str = "features") -> None:
    if features.ndim != 4:
        raise ValueError(f"{name} must be (N, H, W, C), got shape {features.shape}")


def _gram_products(features: jax.Array) -> jax.Array:
    # Contract over H and W directly, without flattening them: a reshape that merges two
    # sharded axes makes XLA's partitioner all-gather the activation, while this einsum
    # reduces to a (C, C) with one all-reduce when an image is split over devices. For one
    # image the batch axis is dropped: XLA CPU runs a batched dot of batch 1 markedly slower.
    if features.shape[0] == 1:
        return jnp.einsum("hwc,hwd->cd", features[0], features[0])[None]
    return jnp.einsum("nhwc,nhwd->ncd", features, features)


@jax.custom_vjp
def _self_products(features: jax.Array) -> jax.Array:
    """F^T F per image, summed over pixels: (N, H, W, C) -> (N, C, C).

    A hand-written backward pass: d(F^T F) is F (dG + dG^T), one matmul where autodiff emits
    two. Together with the 2-D matmul for one image it halves the Grams' share of a CPU step.
    """
    return _gram_products(features)


def _self_products_fwd(features):
    return _self_products(features), features


def _self_products_bwd(features, cotangent):
    symmetric = cotangent + jnp.swapaxes(cotangent, 1, 2)
    if features.shape[0] == 1:
        return (jnp.einsum("hwc,cd->hwd", features[0], symmetric[0])[None],)
    return (jnp.einsum("nhwc,ncd->nhwd", features, symmetric),)


_self_products.defvjp(_self_products_fwd, _self_products_bwd)


def gram_matrix(features: jax.Array) -> jax.Array:
    """Channel correlations divided by H*W: (N, H, W, C) -> (N, C, C).

    Example:

    >>> features = jnp.ones((2, 4, 4, 8))
    >>> jaxstyle.gram_matrix(features).shape
    (2, 8, 8)
    """
    _check_features(features)
    _, h, w, _ = features.shape
    return _self_products(features.astype(jnp.float32)) / (h * w)


def masked_gram_matrix(features: jax.Array, masks: jax.Array) -> jax.Array:
    """Guided Gram over each mask (Gatys et al. 2017): (N,H,W,C), (S,H,W)|(N,S,H,W) -> (N,S,C,C).

    Masks (S, H, W) are shared by all images; (N, S, H, W) (or (1, S, H, W)) gives each image
    its own. Features are weighted by the mask and the sum is divided by the mask's total
    weight, so a mask of all ones gives exactly `gram_matrix`. (The 2017 paper weights features
    by the guide and normalises like the unguided Gram; dividing by the mask area instead keeps
    the statistics of a small region on the same scale as the style image's.)

    Example:

    >>> features = jnp.ones((1, 4, 4, 8))
    >>> masks = jnp.stack([jnp.ones((4, 4)), jnp.eye(4)])  # two regions
    >>> grams = jaxstyle.masked_gram_matrix(features, masks)
    >>> grams.shape, bool(jnp.allclose(grams[:, 0], jaxstyle.gram_matrix(features)))
    ((1, 2, 8, 8), True)
    """
    _check_features(features)
    n, h, w, _ = features.shape
    if masks.ndim == 3:
        masks = masks[None]
    if masks.ndim != 4 or masks.shape[2:] != (h, w) or masks.shape[0] not in (1, n):
        raise ValueError(f"masks must be (S, {h}, {w}) or ({n}, S, {h}, {w}), got {masks.shape}")
    masks = jnp.broadcast_to(masks, (n,) + masks.shape[1:])
    weighted = jnp.einsum("nhwc,nshw->nshwc", features, masks)
    gram = jnp.einsum("nshwc,nhwd->nscd", weighted, features,
                      preferred_element_type=jnp.float32)
    area = jnp.maximum(masks.sum(axis=(2, 3)), 1e-8)
    return gram / area[:, :, None, None]


def per_image_mse(a: jax.Array, b: jax.Array) -> jax.Array:
    """Mean squared difference per image, b broadcast over a's batch: (N,...), (N|1,...) -> (N,).

    Example:

    >>> a = jnp.zeros((2, 4, 4, 3)).at[1].set(1.0)
    >>> jaxstyle.per_image_mse(a, jnp.zeros((1, 4, 4, 3)))
    Array([0., 1.], dtype=float32)
    """
    if a.shape[1:] != b.shape[1:] or b.shape[0] not in (1, a.shape[0]):
        raise ValueError(f"shapes do not broadcast per image: {a.shape} vs {b.shape}")
    diff = a.astype(jnp.float32) - b.astype(jnp.float32)
    return jnp.mean(jnp.square(diff), axis=tuple(range(1, a.ndim)))


def mean_squared_error(a: jax.Array, b: jax.Array) -> jax.Array:
    """Mean of squared differences over all elements: (...), (...) -> ().

    Example:

    >>> float(jaxstyle.mean_squared_error(jnp.zeros(4), jnp.full(4, 2.0)))
    4.0
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return jnp.mean(jnp.square(a.astype(jnp.float32) - b.astype(jnp.float32)))


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
    """MSE between features and the content target: (N,H,W,C), (N,H,W,C) -> ().

    Example:

    >>> features = jnp.ones((1, 4, 4, 8))
    >>> float(jaxstyle.content_loss(features, 0.5 * features))
    0.25
    """
    return mean_squared_error(features, target)


def style_loss(features: jax.Array, target_gram: jax.Array) -> jax.Array:
    """MSE between the features' Gram and the target Gram: (N,H,W,C), (N,C,C) -> ().

    Example:

    >>> features = jnp.ones((1, 4, 4, 8))
    >>> float(jaxstyle.style_loss(features, jaxstyle.gram_matrix(features)))
    0.0
    """
    return mean_squared_error(gram_matrix(features), target_gram)


def total_variation(images: jax.Array) -> jax.Array:
    """Sum of |neighbour differences| per image (tf.image.total_variation): (N,H,W,C) -> (N,);
    one (H, W, C) image counts as a batch of one. uint8 is taken as x / 255, as everywhere.

    Example:

    >>> stripes = jnp.zeros((1, 4, 4, 3)).at[:, :, ::2].set(1.0)  # vertical stripes
    >>> jaxstyle.total_variation(stripes)
    Array([36.], dtype=float32)
    """
    images = jnp.asarray(images)
    if images.ndim == 3:
        images = images[None]
    _check_features(images, "images")
    images = images.astype(jnp.float32) / (255.0 if images.dtype == jnp.uint8 else 1.0)
    vertical = jnp.abs(images[:, 1:, :, :] - images[:, :-1, :, :]).sum(axis=(1, 2, 3))
    horizontal = jnp.abs(images[:, :, 1:, :] - images[:, :, :-1, :]).sum(axis=(1, 2, 3))
    return vertical + horizontal


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as `jaxstyle.quality` and the YIQ colour code


def _block_luminance(images: jax.Array, block: int) -> jax.Array:
    """(N,H,W,3) -> (N, H // block, W // block) mean luminance; the last partial blocks are
    left out."""
    grey = images.astype(jnp.float32) @ jnp.asarray(LUMA, jnp.float32)
    n, h, w = grey.shape
    grey = grey[:, :h // block * block, :w // block * block]
    return grey.reshape(n, h // block, block, w // block, block).mean(axis=(2, 4))


def _check_pair(images: jax.Array, photos: jax.Array) -> None:
    _check_features(images, "images")
    if images.shape != photos.shape:
        raise ValueError(f"shapes differ: {images.shape} vs {photos.shape}")


def layout_loss(images: jax.Array, photos: jax.Array, block: int = 8) -> jax.Array:
    """MSE of block-averaged luminance, per image: (N,H,W,3), (N,H,W,3) in [0, 1] -> (N,).

    The big shapes and the light of a picture, with its strokes averaged out: a content
    anchor that leaves texture free, unlike VGG features, which hold the photo's edges too.
    Not in Gatys et al. or Johnson et al.; the trained engines' answer to losing the photo
    (issue 18). Rows and columns past the last whole block are left out.
    """
    _check_pair(images, photos)
    return jnp.square(_block_luminance(images, block) - _block_luminance(photos, block)
                      ).mean(axis=(1, 2))


def layout_decorrelation(images: jax.Array, photos: jax.Array, block: int = 8) -> jax.Array:
    """1 - the correlation of block-averaged luminance, per image: (N,H,W,3) x2 -> (N,) in
    [0, 2].

    `layout_loss` without its grip on brightness and contrast: a painting may darken or
    flatten the photo's light as long as the big shapes stay where they were. It is one
    minus `jaxstyle.quality.layout_score` (which box-averages to 32 px instead of fixed
    blocks), so engine 3, whose AdaIN sets every channel's mean and spread from the
    painting, is anchored only where the photo is, not in how light it is.
    """
    _check_pair(images, photos)
    a, b = (x - x.mean(axis=(1, 2), keepdims=True)
            for x in (_block_luminance(images, block), _block_luminance(photos, block)))
    # The epsilon keeps a flat image's gradient finite (its correlation is 0/0).
    covariance = (a * b).sum(axis=(1, 2))
    spread = jnp.sqrt((a * a).sum(axis=(1, 2)) * (b * b).sum(axis=(1, 2)) + 1e-12)
    return 1.0 - covariance / spread


def _blockiness(grey: jax.Array, period: int) -> jax.Array:
    """`jaxstyle.quality.blockiness` on (N, H, W) luminance, differentiable: (N,)."""
    scores = []
    for axis in (1, 2):
        steps = jnp.abs(jnp.diff(grey, axis=axis)).mean(axis=3 - axis)   # (N, L)
        phases = jax.nn.one_hot(jnp.arange(steps.shape[1]) % period, period)
        profile = (steps @ phases) / phases.sum(axis=0)                  # (N, period)
        mean = profile.mean(axis=1)
        # sqrt(var + eps): a flat profile's std has an infinite derivative at 0.
        std = jnp.sqrt(jnp.square(profile - mean[:, None]).mean(axis=1) + 1e-12)
        scores.append(std / jnp.maximum(mean, 1e-12))
    return (scores[0] + scores[1]) / 2


def grid_loss(images: jax.Array, photos: jax.Array, period: int = 8) -> jax.Array:
    """The grid an output adds, per image: (N,H,W,3) x2 in [0, 1] -> (N,) >= 0.

    `jaxstyle.quality.grid_excess` (how much edge strength depends on position mod
    `period`, beyond the photo's own), clipped at 0 so that no image is pushed below its
    photo's sampling noise. Engine 3's decoder upsamples x2 three times; an undertrained one
    leaves its 8 px period in the picture (issue 18's grid target).
    """
    _check_pair(images, photos)
    if min(images.shape[1:3]) < 4 * period:
        raise ValueError(f"images {images.shape} are too small to measure a {period} px grid")
    luma = jnp.asarray(LUMA, jnp.float32)
    excess = (_blockiness(images.astype(jnp.float32) @ luma, period)
              - _blockiness(photos.astype(jnp.float32) @ luma, period))
    return jnp.maximum(excess, 0.0)


def weighted_mean(values: list[jax.Array],
                  weights: Optional[Sequence[float]] = None) -> jax.Array:
    """Mean of per-layer losses over the layers (axis 0); with weights, their weighted average.

    values: L arrays of equal shape, () or (N,) per image -> the same shape.
    """
    stacked = jnp.stack(values)
    if weights is None:
        return stacked.mean(axis=0)
    column = jnp.asarray(weights, jnp.float32).reshape((-1,) + (1,) * (stacked.ndim - 1))
    return (stacked * column).sum(axis=0) / column.sum()
