"""The seed's objective, shared by every engine: targets computed once, and the loss of a batch.

Every function here is batch-first. `per_image_loss` gives each image of an (N, H, W, 3) batch
its own seed loss; `loss_fn` is their mean, so N = 1 is exactly the seed. Targets broadcast:
content features are one per image or one shared, style Grams one shared set or one per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Optional, Union, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle._types import ArrayLike, ParamTree
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError
from jaxstyle.losses import (
    gram_matrix,
    masked_gram_matrix,
    per_image_mse,
    total_variation,
    weighted_mean,
)
from jaxstyle.vgg import MIN_SIDE, float_images, layer_block, pool2x2, vgg19_features

Array = jax.Array
LOSS_WEIGHTS = ("content_weight", "style_weight", "tv_weight")


class Targets(NamedTuple):
    """What images are pulled towards, computed once per run (never inside the step).

    content: {layer: (B, h, w, C)} content features, B = N (one per image) or 1 (shared).
    style: {layer: (B, S, C, C)} Gram matrices; S = 1 (the blend of all styles) without masks,
        one per style with masks; B = N or 1 as for content.
    masks: None, or {layer: (B, S, h, w)} per-style guidance at each style layer's resolution.
    weights: None (the config's weights, as constants), or {'content_weight', 'style_weight',
        'tv_weight'}: () or (B,) arrays. As data rather than constants, a sweep of weights
        compiles once (`with_loss_weights`).

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, photo, painting, cfg)
    >>> targets.content["block2_conv2"].shape, targets.style["block1_conv1"].shape
    ((1, 16, 16, 128), (1, 1, 64, 64))
    """

    content: dict[str, Array]
    style: dict[str, Array]
    masks: Optional[dict[str, Array]] = None
    weights: Optional[dict[str, Array]] = None


def precision_scope(cfg: StyleConfig) -> AbstractContextManager[Any]:
    """The context under which the config's programs are traced and compiled: JAX's
    default precision of float32 matmuls and convolutions set to `cfg.matmul_precision`
    (on GPU and TPU the default would be TF32 or bf16 passes, not the seed's float32)."""
    return jax.default_matmul_precision(cfg.matmul_precision)


def network_options(cfg: StyleConfig) -> dict[str, Any]:
    """Keyword arguments of `vgg19_features` that the config sets."""
    dtype = jnp.bfloat16 if cfg.precision == "bf16" else jnp.float32
    return dict(pooling=cfg.pooling, dtype=dtype, remat=cfg.remat)


# Targets are computed once per run, but compiling the whole network once is still much faster
# than running it op by op (each op would be compiled separately).
_features_once = jax.jit(vgg19_features, static_argnames=("layers", "pooling", "dtype", "remat"))


# Resampling (lanczos) and float rounding leave images a hair outside [0, 1]; a 0-255 image
# is far outside, and that is what the range check is for.
RANGE_TOLERANCE = 1e-3


def as_image_batch(image: ArrayLike, name: str) -> Array:
    """An image (H, W, 3) or batch (N, H, W, 3) as a float32 batch, checked.

    Floats must lie in [0, 1] (checked when the values are concrete, not under `jax.jit`);
    uint8 arrays are converted explicitly (x / 255); other integer types are refused, so a
    0-255 image never runs as floats. Raises ValueError naming `name`.
    """
    batch = jnp.asarray(float_images(image, name), jnp.float32)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[0] < 1 or batch.shape[-1] != 3:
        raise ValueError(f"{name} must be (H, W, 3) or (N, H, W, 3), got {batch.shape}")
    if min(batch.shape[1:3]) < MIN_SIDE:
        raise ValueError(f"{name} must be at least {MIN_SIDE}x{MIN_SIDE} px, got "
                         f"{batch.shape[2]}x{batch.shape[1]}")
    check_unit_range(batch, name)
    return batch


def check_unit_range(image: Array, name: str) -> None:
    """Raise ValueError if a concrete float image has values outside [0, 1] (or NaN)."""
    if isinstance(image, jax.core.Tracer):
        return
    low, high = np.asarray(jnp.stack([jnp.min(image), jnp.max(image)])).tolist()  # one sync
    # Written so that NaN (every comparison false) is refused too.
    if not (low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE):
        hint = " (a 0-255 image: divide by 255, or pass uint8)" if high > 1.5 else ""
        raise ValueError(f"{name} must be RGB floats in [0, 1], got values in "
                         f"[{low:.4g}, {high:.4g}]{hint}")


def blend_weights(cfg: StyleConfig, n_styles: int) -> np.ndarray:
    """Normalised weights of `n_styles` blended style images (equal unless `style_blend`)."""
    weights = np.ones(n_styles) if cfg.style_blend is None else np.asarray(cfg.style_blend, float)
    if len(weights) != n_styles:
        raise ConfigError(f"style_blend has {len(weights)} weights for {n_styles} style images")
    return weights / weights.sum()


def check_masks_allowed(cfg: StyleConfig, n_masks: int, n_styles: int) -> None:
    """The one check of masks against styles and blend weights (library and CLI alike)."""
    if cfg.style_blend is not None and len(cfg.style_blend) != n_styles:
        raise ConfigError(f"style_blend has {len(cfg.style_blend)} weights for {n_styles} "
                          "style images")
    if not n_masks:
        return
    if cfg.style_blend is not None:
        raise ConfigError("style_blend and masks cannot be combined: masks say where each "
                          "style goes")
    if n_masks != n_styles and not (n_masks == 1 and n_styles == 2):
        raise ConfigError(f"{n_masks} masks for {n_styles} styles: give one mask per "
                          "style, or one mask for exactly two styles")


def downsample_masks(masks: Array, layers: Sequence[str]) -> dict[str, Array]:
    """Masks pooled to each layer's resolution as the network pools.

    (..., H, W) -> {layer: (..., h, w)}; any leading axes (styles, images) are kept.
    """
    lead = masks.shape[:-2]
    flat = masks.reshape((-1,) + masks.shape[-2:])[..., None]
    resized = {}
    for layer in layers:
        m = flat
        for _ in range(layer_block(layer) - 1):
            m = pool2x2(m, "avg")
        resized[layer] = m[..., 0].reshape(lead + m.shape[1:3])
    return resized


def config_loss_weights(cfg: StyleConfig) -> dict[str, Array]:
    """The config's loss weights as float32 scalars (the `Targets.weights` of a plain run)."""
    return {name: jnp.float32(getattr(cfg, name)) for name in LOSS_WEIGHTS}


def make_targets(params: ParamTree, content: ArrayLike,
                 style: Union[ArrayLike, Sequence[ArrayLike]], cfg: StyleConfig,
                 masks: Optional[ArrayLike] = None) -> Targets:
    """Content features and style Grams. `style` is one image or a sequence of images.

    content: (H, W, 3) or (N, H, W, 3); style images (H, W, 3) or (1, H, W, 3), any size.
    Several styles are blended by `cfg.style_blend` (Gram targets mixed per layer). With
    `masks` (S, H, W), or (N, S, H, W) per image, at the content's size, one per style, each
    style keeps its own Gram and applies only where its mask is (regional style).

    Example:

    >>> photo, left_style, right_style = np.random.default_rng(0).random((3, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> left = np.zeros((32, 32), np.float32); left[:, :16] = 1  # style 1 left, style 2 right
    >>> targets = jaxstyle.make_targets(params, photo, [left_style, right_style], cfg,
    ...                                 masks=np.stack([left, 1 - left]))
    >>> targets.style["block1_conv1"].shape, targets.masks["block1_conv1"].shape
    ((1, 2, 64, 64), (1, 2, 32, 32))
    """
    with precision_scope(cfg):
        return _make_targets(params, content, style, cfg, masks)


def _make_targets(params: ParamTree, content: ArrayLike,
                  style: Union[ArrayLike, Sequence[ArrayLike]], cfg: StyleConfig,
                  masks: Optional[ArrayLike] = None) -> Targets:
    content = as_image_batch(content, "content image")
    given: list[Any] = [style] if not isinstance(style, (list, tuple)) else list(style)
    styles = [as_image_batch(s, f"style image {i + 1}") for i, s in enumerate(given)]
    options = network_options(cfg)
    content_features = _features_once(params, content, cfg.content_layers, **options)
    grams: list[dict[str, Array]] = []  # per style: {layer: (C, C)}
    for image in styles:
        if image.shape[0] != 1:
            raise ValueError(f"each style image must be one image, got {image.shape}")
        features = _features_once(params, image, cfg.style_layers, **options)
        grams.append({layer: gram_matrix(f)[0] for layer, f in features.items()})
    n_masks = 0 if masks is None else np.shape(masks)[-3]
    check_masks_allowed(cfg, n_masks, len(styles))
    if masks is None:
        blend = blend_weights(cfg, len(styles))
        # At least one style, so each sum is an Array (never sum's start, 0).
        style_targets = {layer: cast(Array, sum(float(w) * g[layer]
                                                for w, g in zip(blend, grams)))[None, None]
                         for layer in cfg.style_layers}
        return Targets(content_features, style_targets)
    masks = jnp.asarray(masks, jnp.float32)
    if masks.ndim == 3:
        masks = masks[None]
    if masks.shape[1:] != (len(styles),) + content.shape[1:3] or \
            masks.shape[0] not in (1, content.shape[0]):
        raise ConfigError(f"need {len(styles)} masks of {content.shape[2]}x{content.shape[1]} px "
                          f"(one per style), got shape {masks.shape}")
    style_targets = {layer: jnp.stack([g[layer] for g in grams])[None]
                     for layer in cfg.style_layers}
    return Targets(content_features, style_targets, downsample_masks(masks, cfg.style_layers))


def with_loss_weights(targets: Targets, cfg: StyleConfig, **values: ArrayLike) -> Targets:
    """`targets` carrying loss weights as data: the config's, with `values` replacing some.

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, photo, painting, cfg)
    >>> weighted = jaxstyle.with_loss_weights(targets, cfg, style_weight=1.0)
    >>> {name: round(float(w), 6) for name, w in weighted.weights.items()}
    {'content_weight': 10000.0, 'style_weight': 1.0, 'tv_weight': 0.0004}
    """
    weights = config_loss_weights(cfg)
    for name, value in values.items():
        if name not in LOSS_WEIGHTS:
            raise ConfigError(f"{name} is not a loss weight ({', '.join(LOSS_WEIGHTS)})")
        weights[name] = jnp.asarray(value, jnp.float32)
    return targets._replace(weights=weights)


def stack_targets(targets: Sequence[Targets]) -> Targets:
    """Per-job targets (each for one image) stacked along a new leading axis, for vmap.

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> jobs = [jaxstyle.make_targets(params, photo, painting, cfg),
    ...         jaxstyle.make_targets(params, painting, photo, cfg)]
    >>> jaxstyle.stack_targets(jobs).content["block2_conv2"].shape  # (jobs, 1, h, w, C)
    (2, 1, 16, 16, 128)
    """
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *targets)


def _style_term(features: Array, target: Array, masks: Optional[Array]) -> Array:
    """Per-image style MSE at one layer: (N,h,w,C), (B,S,C,C), (B,S,h,w)|None -> (N,)."""
    if masks is None:
        return per_image_mse(gram_matrix(features), target[:, 0])
    grams = masked_gram_matrix(features, masks)  # (N, S, C, C)
    per_style = jnp.mean(jnp.square(grams - target), axis=(2, 3))
    # Each region counts by its share of the image, so a partition of the image has the
    # same scale as one unmasked style.
    share = masks.mean(axis=(2, 3))
    return (per_style * share).sum(axis=-1) / share.sum(axis=-1)


def check_targets_match(targets: Targets, cfg: StyleConfig) -> None:
    """Raise ConfigError if `targets` lack a layer `cfg` uses (made under another config)."""
    for kind, layers, have in (("content", cfg.content_layers, targets.content),
                               ("style", cfg.style_layers, targets.style)):
        missing = [layer for layer in layers if layer not in have]
        if missing:
            raise ConfigError(f"targets: no {kind} target for layer {missing[0]!r} (they hold "
                              f"{', '.join(have) or 'none'}): make them with make_targets(..., "
                              "cfg) under the config they are used with")


def per_image_loss(params: ParamTree, targets: Targets, images: ArrayLike,
                   cfg: StyleConfig) -> tuple[Array, dict[str, Array]]:
    """Seed loss of each image: (N, H, W, 3) -> ((N,) totals, {'content','style','tv'}: (N,)).

    An (H, W, 3) image is a batch of one, so the outputs are (1,).

    The parts are weighted. Each image's loss depends on that image alone, so the gradient of
    the sum is each image's own gradient.

    Example:

    >>> images = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, images[0], images[1], cfg)
    >>> totals, parts = jaxstyle.per_image_loss(params, targets, images, cfg)
    >>> totals.shape, parts["style"].shape
    ((2,), (2,))
    """
    batch = as_image_batch(images, "images")
    check_targets_match(targets, cfg)
    layers = tuple(dict.fromkeys(cfg.content_layers + cfg.style_layers))
    features = vgg19_features(params, batch, layers, **network_options(cfg))
    content = weighted_mean([per_image_mse(features[layer], targets.content[layer])
                             for layer in cfg.content_layers], cfg.content_layer_weights)
    style = weighted_mean(
        [_style_term(features[layer], targets.style[layer],
                     None if targets.masks is None else targets.masks[layer])
         for layer in cfg.style_layers], cfg.style_layer_weights)
    tv = total_variation(batch)
    weights = config_loss_weights(cfg) if targets.weights is None else targets.weights
    parts = {"content": weights["content_weight"] * content,
             "style": weights["style_weight"] * style,
             "tv": weights["tv_weight"] * tv}
    return parts["content"] + parts["style"] + parts["tv"], parts


def loss_fn(params: ParamTree, targets: Targets, image: ArrayLike,
            cfg: StyleConfig) -> tuple[Array, dict[str, Array]]:
    """Mean seed loss over a batch (N = 1: the seed's loss): returns (total, parts), scalars.

    image: (H, W, 3) or (N, H, W, 3), RGB floats in [0, 1].

        total, parts = loss_fn(params, make_targets(params, photo, painting, cfg), photo, cfg)

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, photo, painting, cfg)
    >>> total, parts = jaxstyle.loss_fn(params, targets, photo, cfg)
    >>> total.shape, sorted(parts), float(parts["content"]) < 1e-3  # the photo is its content
    ((), ['content', 'style', 'tv'], True)
    """
    totals, parts = per_image_loss(params, targets, image, cfg)
    return totals.mean(), {name: value.mean() for name, value in parts.items()}


__all__ = ["LOSS_WEIGHTS", "Targets", "as_image_batch", "blend_weights", "check_masks_allowed",
           "check_targets_match", "check_unit_range", "config_loss_weights", "downsample_masks",
           "loss_fn", "make_targets", "network_options", "per_image_loss", "precision_scope",
           "stack_targets", "with_loss_weights"]
