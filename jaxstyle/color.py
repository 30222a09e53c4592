"""Colour preservation, both methods of Gatys et al. 2016, "Preserving Color in Neural
Artistic Style Transfer": luminance-only transfer and colour histogram matching.

Pure functions on RGB images in [0, 1], (..., 3) -> (..., 3). The matching functions take
(H, W, 3) images or (N, H, W, 3) batches; statistics are per image (a style batch of 1 is
matched to every content image).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle._types import AnyArray, ArrayLike

# NTSC YIQ, the colour space the 2016 paper uses for luminance-only transfer.
# NumPy, not jnp: module constants must not start a JAX backend at import (jax.distributed
# has to be initialised first).
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                         [0.595716, -0.274453, -0.321263],
                         [0.211456, -0.522591, 0.311135]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(images: ArrayLike) -> jax.Array:
    """RGB -> YIQ: (..., 3) -> (..., 3); Y is luminance, I and Q are chroma."""
    return jnp.einsum("...c,dc->...d", images, _RGB_TO_YIQ)


def yiq_to_rgb(images: ArrayLike) -> jax.Array:
    """YIQ -> RGB: (..., 3) -> (..., 3), not clipped."""
    return jnp.einsum("...c,dc->...d", images, _YIQ_TO_RGB)


def luminance_image(images: ArrayLike) -> jax.Array:
    """The luminance as a grey RGB image: (..., 3) -> (..., 3)."""
    y = rgb_to_yiq(images)[..., :1]
    return jnp.repeat(y, 3, axis=-1)


def _per_image(match: Callable[[AnyArray, AnyArray], jax.Array],
               ) -> Callable[[AnyArray, AnyArray], jax.Array]:
    """Apply `match(style, content)` on single images to each pair of a batch."""

    def batched(style: AnyArray, content: AnyArray) -> jax.Array:
        if style.ndim == 3 and content.ndim == 3:
            return match(style, content)
        style, content = jnp.asarray(style), jnp.asarray(content)
        style = style if style.ndim == 4 else style[None]
        content = content if content.ndim == 4 else content[None]
        n = max(style.shape[0], content.shape[0])
        if style.shape[0] not in (1, n) or content.shape[0] not in (1, n):
            raise ValueError(f"batches differ: style {style.shape}, content {content.shape}")
        style = jnp.broadcast_to(style, (n,) + style.shape[1:])
        content = jnp.broadcast_to(content, (n,) + content.shape[1:])
        return jax.vmap(match)(style, content)

    batched.__doc__ = match.__doc__
    batched.__name__ = match.__name__
    return batched


@_per_image
def match_luminance(style: AnyArray, content: AnyArray) -> jax.Array:
    """Grey style image whose luminance has the content's mean and std (paper, eq. 1)."""
    ys, yc = rgb_to_yiq(style)[..., 0], rgb_to_yiq(content)[..., 0]
    matched = (ys - ys.mean()) * (yc.std() / jnp.maximum(ys.std(), 1e-6)) + yc.mean()
    return jnp.repeat(jnp.clip(matched, 0.0, 1.0)[..., None], 3, axis=-1)


def recombine_luminance(stylized: ArrayLike, content: ArrayLike) -> jax.Array:
    """The stylized image's luminance with the content's chroma (I, Q), clipped to [0, 1]."""
    y = rgb_to_yiq(stylized)[..., :1]
    iq = rgb_to_yiq(content)[..., 1:]
    return jnp.clip(yiq_to_rgb(jnp.concatenate([y, iq], axis=-1)), 0.0, 1.0)


def _sqrtm(cov: jax.Array, inverse: bool = False) -> jax.Array:
    values, vectors = jnp.linalg.eigh(cov)
    values = jnp.maximum(values, 1e-8)
    power = -0.5 if inverse else 0.5
    return (vectors * values**power) @ vectors.T


@_per_image
def match_color_histogram(style: AnyArray, content: AnyArray) -> jax.Array:
    """Style pixels moved to the content's colour mean and covariance (paper, section 2.2).

    x' = C_c^(1/2) C_s^(-1/2) (x - mu_s) + mu_c, with symmetric matrix square roots (the
    "image analogies" variant; the paper also allows a Cholesky factor).
    """
    s = style.reshape(-1, 3)
    c = content.reshape(-1, 3)
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = jnp.cov(s, rowvar=False) + 1e-5 * jnp.eye(3)
    cov_c = jnp.cov(c, rowvar=False) + 1e-5 * jnp.eye(3)
    transform = _sqrtm(cov_c) @ _sqrtm(cov_s, inverse=True)
    matched = (s - mu_s) @ transform.T + mu_c
    return jnp.clip(matched, 0.0, 1.0).reshape(style.shape)
