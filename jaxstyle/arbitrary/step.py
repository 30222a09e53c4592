"""Engine 3's decoder loss and compiled step: `decoder_loss` (AdaIN content and style terms,
Gram, reconstruction, layout, grid, distillation) and `make_decoder_step_fn`, jitted and
data-parallel as `DecoderStep`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Optional, cast

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxstyle._types import ParamTree
from jaxstyle.arbitrary.adain import StyleStats, adain_target, channel_stats
from jaxstyle.arbitrary.config import (
    DecoderConfig,
    DecoderState,
    make_optimizer,
    perceptual_layers,
)
from jaxstyle.arbitrary.decoder import ENCODER_LAYER, FEATURE_MEANS, LEVEL_LAYERS, Decoder
from jaxstyle.arbitrary.encoder import DISTILL_LAYERS, embed, normalised_features
from jaxstyle.arbitrary.transfer import STATS_LAYERS, conv_params, encode
from jaxstyle.losses import gram_matrix, grid_loss, layout_decorrelation
from jaxstyle.training import ParallelStep, all_finite, keep_if_finite

Array = jax.Array


def stats_loss(features: dict[str, Array], targets: dict[str, tuple[Array, Array]]) -> Array:
    """Per image: sum over layers of the mean squared difference of channel means and stds."""
    total: ArrayLike = 0.0
    for layer, (mean, std) in targets.items():
        got_mean, got_std = channel_stats(features[layer])
        total = total + jnp.square(got_mean - mean).mean(-1) + jnp.square(got_std - std).mean(-1)
    return cast(Array, total)  # an Array for any targets (there is always at least one)


def gram_loss(features: dict[str, Array], targets: dict[str, Array]) -> Array:
    """Per image: sum over the targets' layers of the mean squared difference of Gram
    matrices (normalised features: relu4_1's is the raw one / 600^4, `FEATURE_MEANS`)."""
    # An Array: there is at least one target layer (never sum's start, 0).
    return cast(Array, sum(jnp.square(gram_matrix(features[layer]) - target).mean(axis=(1, 2))
                           for layer, target in targets.items()))


def normalised(features: dict[str, Array]) -> dict[str, Array]:
    """Each layer divided by its mean activation over photos (see `FEATURE_MEANS`)."""
    return {layer: f / FEATURE_MEANS[layer] for layer, f in features.items()}


def decoder_loss(params: ParamTree, vgg_params: ParamTree, photos: Array, styles: Array,
                 cfg: DecoderConfig, encoder: Optional[dict] = None,
                 ) -> tuple[Array, dict[str, Array]]:
    """(mean total loss, parts per image) for photos and style images (N, size, size, 3).

    encoder: a distilled encoder's params (`jaxstyle.arbitrary.encoder`), or None for VGG19
    itself. With one, AdaIN runs on its own relu4_1 features (photo and style image) and the
    decoder decodes those; the loss is still VGG19's, with the AdaIN target carried into
    VGG19's relu4_1 space by the encoder's learned 1x1 embedding for the content term.
    """
    n = photos.shape[0]
    layer = LEVEL_LAYERS[cfg.decoder_level]  # relu4_1 for AdaIN
    scale = FEATURE_MEANS[layer]
    shallower = perceptual_layers(cfg.decoder_level) if cfg.perceptual_weight else ()
    # Both inputs are fixed targets: no gradient flows into them (or into the frozen VGG).
    photo_layers = shallower + (layer,)
    distilling = bool(cfg.distill_weight) and encoder is not None
    # One pass of each encoder over the photos serves every term that needs them.
    photo_features = jax.lax.stop_gradient(normalised(encode(
        vgg_params, photos, tuple(dict.fromkeys(photo_layers + (
            DISTILL_LAYERS if distilling else ()))))))
    own = None if encoder is None else conv_params(encoder)
    # A frozen encoder's features are inputs; a training one's carry its gradient.
    through_encoder = (lambda x: x) if cfg.trains_encoder else jax.lax.stop_gradient

    def content_of(images: Array, vgg_features: dict[str, Array],
                   own_features: Optional[dict[str, Array]] = None) -> Array:
        """The relu4_1 features AdaIN works on (normalised): the own encoder's, or VGG19's."""
        if own is None:
            return vgg_features[layer]
        if own_features is None:
            own_features = normalised_features(own, images, (ENCODER_LAYER,))
        return through_encoder(own_features[ENCODER_LAYER])

    small = None if own is None else normalised_features(
        own, photos, DISTILL_LAYERS if distilling else (ENCODER_LAYER,))
    content = content_of(photos, photo_features, small)
    target = content
    if cfg.uses_style_images:  # a Python branch: pure reconstruction never encodes styles
        style_features = jax.lax.stop_gradient(
            normalised(encode(vgg_params, styles, STATS_LAYERS)))
        style_targets = {layer: channel_stats(f) for layer, f in style_features.items()}
        mean, std = channel_stats(content_of(styles, style_features))
        # Image i takes style i: K = N styles and identity blend weights.
        target = through_encoder(adain_target(
            content, StyleStats(mean, std), weights=jnp.eye(n, dtype=jnp.float32),
            alpha=cfg.alpha))
    out = cast(Array, Decoder(width=cfg.width, level=cfg.decoder_level).apply(
        {"params": params}, target * scale))
    out_layers = tuple(dict.fromkeys(
        (STATS_LAYERS if cfg.uses_style_images else ()) + photo_layers))
    out_features = normalised(encode(vgg_params, out, out_layers))
    content_target = target if encoder is None else jax.lax.stop_gradient(
        embed(target, encoder["embed"][ENCODER_LAYER]))
    content_loss = jnp.square(out_features[layer] - content_target).mean(axis=(1, 2, 3))
    parts = {"content": cfg.content_weight * content_loss}
    if cfg.uses_style_images:
        parts["style"] = cfg.style_weight * stats_loss(out_features, style_targets)
    if cfg.gram_weight:  # Python branches: a term at weight 0 is not computed
        style_gram = {ENCODER_LAYER: gram_matrix(style_features[ENCODER_LAYER])}
        parts["gram"] = cfg.gram_weight * gram_loss(out_features, style_gram)
    if cfg.pixel_weight:
        parts["pixel"] = cfg.pixel_weight * jnp.square(out - photos).mean(axis=(1, 2, 3))
    if shallower:
        parts["perceptual"] = cfg.perceptual_weight * cast(Array, sum(
            jnp.square(out_features[name] - photo_features[name]).mean(axis=(1, 2, 3))
            for name in shallower))
    if cfg.layout_weight:
        parts["layout"] = cfg.layout_weight * layout_decorrelation(out, photos)
    if cfg.grid_weight:
        parts["grid"] = cfg.grid_weight * grid_loss(out, photos)
    if distilling:  # encoder.distill_loss per image, on the photos
        assert small is not None and encoder is not None  # distilling needs an encoder
        parts["distill"] = cfg.distill_weight * cast(Array, sum(
            jnp.square(embed(small[layer], encoder["embed"][layer]) - photo_features[layer])
            .mean(axis=(1, 2, 3)) for layer in DISTILL_LAYERS))
    return cast(Array, sum(parts.values())).mean(), parts  # parts has "content" at least


def make_decoder_step_fn(cfg: DecoderConfig) -> Callable:
    """The pure step((vgg_params, encoder or None), state, (photos_uint8, styles_uint8))
    -> (state, metrics)."""
    tx = make_optimizer(cfg)

    def loss_of(params: Any, vgg_params: ParamTree, photos: Array, styles: Array,
                encoder: Optional[dict]) -> tuple[Array, dict[str, Array]]:
        if cfg.trains_encoder:  # the encoder is in the state, not among the frozen inputs
            return decoder_loss(params["decoder"], vgg_params, photos, styles, cfg,
                                params["encoder"])
        return decoder_loss(params, vgg_params, photos, styles, cfg, encoder)

    def step(frozen: tuple[ParamTree, Optional[dict]], state: DecoderState,
             batch: tuple[Array, Array]) -> tuple[DecoderState, dict[str, Array]]:
        vgg_params, encoder = frozen
        photos, styles = (x.astype(jnp.float32) / 255.0 for x in batch)
        (loss, parts), grads = jax.value_and_grad(loss_of, has_aux=True)(
            state.params, vgg_params, photos, styles, encoder)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # A non-finite loss skips the batch; the host stops after many in a row.
        finite = jnp.isfinite(loss) & all_finite((params, opt_state))
        params, opt_state = keep_if_finite(finite, (params, opt_state),
                                           (state.params, state.opt_state))
        metrics = {"loss": loss, **{k: v.mean() for k, v in parts.items()},
                   "grad_norm": optax.tree.norm(grads), "finite": finite}
        return DecoderState(params, opt_state, state.step + 1), metrics

    return step


class DecoderStep(ParallelStep):
    """The decoder step, jitted and data-parallel (`jaxstyle.training.ParallelStep`)."""

    def __init__(self, cfg: DecoderConfig, mesh: Optional[Mesh] = None) -> None:
        super().__init__(make_decoder_step_fn(cfg), cfg.batch, mesh)


@functools.lru_cache(maxsize=4)
def cached_decoder_step(cfg: DecoderConfig, mesh: Optional[Mesh] = None) -> DecoderStep:
    return DecoderStep(cfg, mesh)


__all__ = ["DecoderStep", "cached_decoder_step", "decoder_loss", "gram_loss",
           "make_decoder_step_fn", "normalised", "stats_loss"]
