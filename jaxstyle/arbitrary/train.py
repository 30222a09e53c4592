"""Training engine 3's decoder (Huang & Belongie 2017): photos and style images, no per-style
network. Each step pairs every photo of the batch with a style image, sets the photo's relu4_1
features to the style's statistics (AdaIN) and asks the decoder for an image whose

- relu4_1 features equal that target (content loss), and whose
- relu1_1 .. relu4_1 channel means and standard deviations equal the style's (style loss),
- and, with `gram_weight`, whose relu4_1 Gram matrix equals the style's (an addition).

With `alpha` 0 the target is the photo's own relu4_1 features: the decoder learns to invert
the encoder (reconstruction pre-training), helped by `pixel_weight` (the photo's pixels) and
`perceptual_weight` (its relu1_1..relu3_1 features). Every well-working universal decoder
(WCT, LinearStyleTransfer, Collaborative Distillation) is first trained this way; a decoder
that never learned to reproduce a photo paints blocks and loses it (issue 18).

The encoder is the shared VGG19, frozen, or a distilled small one (`jaxstyle.arbitrary.encoder`),
frozen too unless `encoder_learning_rate` > 0: then it trains with the decoder, on the same
loss (plus `distill_weight` times its distillation loss, which keeps its embeddings VGG19's),
so that its few channels learn to carry what the decoder needs (Collaborative Distillation,
Wang et al. 2020, trains its small encoder with the decoder in the same spirit).

The host loop (checkpoints, resume, log, previews, Ctrl-C) is the shared one in
`jaxstyle.training`; data comes from two grain loaders (`--data` photos, `--style-data` style
images) with the same crops and flips as engine 2's.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxstyle.arbitrary.adain import StyleStats, adain_target, channel_stats
from jaxstyle.arbitrary.decoder import (
    ENCODER_LAYER,
    FEATURE_MEANS,
    LEVEL_LAYERS,
    Decoder,
    init_decoder,
)
from jaxstyle.arbitrary.decoderfile import save_decoder, save_wct_level
from jaxstyle.arbitrary.encoder import DISTILL_LAYERS, embed, normalised_features
from jaxstyle.arbitrary.transfer import STATS_LAYERS, conv_params, encode, stylize_arrays
from jaxstyle.errors import ConfigError
from jaxstyle.losses import gram_matrix, grid_loss, layout_decorrelation
from jaxstyle.training import (
    LoopSettings,
    ParallelStep,
    all_finite,
    auto_axes,
    check_settings,
    host_copy,
    keep_if_finite,
    run_training,
    training_mesh,
)
from jaxstyle.vgg import MIN_SIDE

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Settings of one decoder training run. Frozen and hashable (bound into the step)."""

    size: int = 256               # side of the square crops of photos and style images, px
    batch: int = 8                # photo/style pairs per step, over all devices and hosts
    steps: int = 160_000          # Huang & Belongie: 160k steps of batch 8 (MS-COCO, WikiArt)
    learning_rate: float = 1e-4   # Adam, as Huang & Belongie
    lr_decay: float = 5e-5        # their inverse-time decay: lr / (1 + decay * step)
    width: float = 1.0            # channel multiplier of the decoder (1.0: 256/128/64)
    content_weight: float = 1.0
    style_weight: float = 10.0    # Huang & Belongie's lambda
    # The Gram matrix (channel second moments) at relu4_1, against the style image's: the
    # cross-channel correlations that AdaIN's per-channel mean and std leave out. 0 in Huang &
    # Belongie. The seed loss that scores every engine (and that Gatys and engine 2 minimise)
    # takes raw Grams at block1..5_conv1; on paintings 99% of it is relu4_1's, where the
    # shipped decoder's output fell short (BENCHMARKS.md, "Arbitrary style ... quality").
    gram_weight: float = 0.0
    # AdaIN strength of the training targets: 1 Huang & Belongie's, 0 the photo's own
    # features (reconstruction, with the style terms usually 0 too: `reconstruction`).
    alpha: float = 1.0
    pixel_weight: float = 0.0       # mean squared pixel error against the photo, [0, 1] units
    perceptual_weight: float = 0.0  # the same for normalised relu1_1..relu3_1 features
    # Anchors on what a person sees (issue 18), both 0 in Huang & Belongie: the layout (1 -
    # the correlation of 8 px block luminance with the photo's, `losses.layout_decorrelation`:
    # where the big shapes are, not how light they are, which AdaIN takes from the painting)
    # and the grid (`losses.grid_loss`: edge strength tied to the 8 px period of the three
    # x2 upsamplings, beyond the photo's own).
    layout_weight: float = 0.0
    grid_weight: float = 0.0
    # A distilled encoder's own training (`train-decoder --encoder`): its Adam learning rate
    # (0: frozen, the decoder alone learns) and the weight of its distillation loss on the
    # photos (the embedded features against VGG19's, `encoder.distill_loss`), which keeps
    # the relu4_1 embedding that carries the content target true to VGG19.
    encoder_learning_rate: float = 0.0
    distill_weight: float = 0.0
    # None: the AdaIN decoder at relu4_1. 1..5: a WCT level's decoder (relu{level}_1 ->
    # image), which only learns to reconstruct (`jaxstyle.arbitrary.wct` does the style).
    level: Optional[int] = None
    seed: int = 0
    checkpoint_every: int = 1000
    keep: int = 3
    preview_every: int = 500
    log_every: int = 10

    def __post_init__(self):
        check_settings(self, counts=("batch", "steps", "keep", "log_every"),
                       nonnegative_ints=("checkpoint_every", "preview_every", "seed"),
                       positive_numbers=("learning_rate", "width"),
                       nonnegative_numbers=("lr_decay", "content_weight", "style_weight",
                                            "gram_weight", "pixel_weight",
                                            "perceptual_weight", "layout_weight",
                                            "grid_weight", "encoder_learning_rate",
                                            "distill_weight"))
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if not isinstance(self.size, int) or self.size < MIN_SIDE or self.size % 8:
            raise ConfigError(f"size must be a multiple of 8 and >= {MIN_SIDE}, got "
                              f"{self.size!r}")
        if self.level is not None:
            if self.level not in LEVEL_LAYERS:
                raise ConfigError(f"level must be 1-5, got {self.level!r}")
            if self.uses_style_images:
                raise ConfigError("a WCT level's decoder only learns to reconstruct: alpha, "
                                  "style and Gram weights must be 0 (--reconstruct)")
            if self.size % 2 ** (self.level - 1):
                raise ConfigError(f"size must be a multiple of {2 ** (self.level - 1)} at "
                                  f"level {self.level}")

    def replace(self, **changes) -> DecoderConfig:
        return dataclasses.replace(self, **changes)

    @property
    def trains_encoder(self) -> bool:
        """Whether a distilled encoder learns with the decoder (its params join the state)."""
        return self.encoder_learning_rate > 0

    @property
    def decoder_level(self) -> int:
        """The VGG level the decoder inverts: 4 (relu4_1) for AdaIN."""
        return 4 if self.level is None else self.level

    @property
    def uses_style_images(self) -> bool:
        """False for pure reconstruction: no term looks at a style image."""
        return self.alpha > 0 or self.style_weight > 0 or self.gram_weight > 0


# Reconstruction pre-training's terms. Pixel errors of a few percent (PSNR 25 dB: MSE 3e-3)
# must weigh against relu4_1 errors of order 0.1 on normalised features, so the pixel term is
# scaled up; the perceptual layers are normalised like relu4_1 (`FEATURE_MEANS`).
RECONSTRUCTION = {"alpha": 0.0, "style_weight": 0.0, "gram_weight": 0.0, "pixel_weight": 10.0,
                  "perceptual_weight": 1.0}
PERCEPTUAL_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1")


def perceptual_layers(level: int) -> tuple[str, ...]:
    """The perceptual term's layers for a level's decoder: every level shallower than it
    (relu1_1..relu3_1 at relu4_1, as before; none at relu1_1, where the pixels are the rest)."""
    return tuple(LEVEL_LAYERS[k] for k in range(1, level))

class DecoderState(NamedTuple):
    """Everything a step changes: params, Adam's state, steps taken (int32)."""

    params: Any
    opt_state: Any
    step: Array


def make_optimizer(cfg: DecoderConfig) -> optax.GradientTransformation:
    """Adam with inverse-time decay; when the encoder trains too (params {decoder, encoder}),
    each part gets its own learning rate (Adam is blind to a gradient's scale, so the rates
    must differ in the optimiser, not in the loss)."""
    def adam(rate):
        return optax.adam(lambda step: rate / (1.0 + cfg.lr_decay * step))

    if not cfg.trains_encoder:
        return adam(cfg.learning_rate)
    return optax.multi_transform(
        {"decoder": adam(cfg.learning_rate), "encoder": adam(cfg.encoder_learning_rate)},
        lambda params: {part: jax.tree.map(lambda _, label=part: label, tree)
                        for part, tree in params.items()})


def init_decoder_state(cfg: DecoderConfig, params=None, in_channels: Optional[int] = None,
                       encoder: Optional[dict] = None) -> DecoderState:
    """Fresh training state: a new decoder (for features of `in_channels`), or `params`
    (fine-tuning) with a fresh Adam. When `cfg.trains_encoder`, the state's params are
    {"decoder", "encoder"}, with `encoder` the distilled encoder's params."""
    if params is None:
        params = init_decoder(cfg.seed, cfg.width, in_channels, level=cfg.decoder_level)
    if cfg.trains_encoder:
        if encoder is None:
            raise ConfigError("encoder_learning_rate > 0 needs a distilled encoder (--encoder)")
        params = {"decoder": params, "encoder": encoder}
    state = DecoderState(params, make_optimizer(cfg).init(params), jnp.zeros([], jnp.int32))
    # The step donates the state, so no two leaves may share a buffer.
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


def stats_loss(features: dict[str, Array], targets: dict[str, tuple[Array, Array]]) -> Array:
    """Per image: sum over layers of the mean squared difference of channel means and stds."""
    total = 0.0
    for layer, (mean, std) in targets.items():
        got_mean, got_std = channel_stats(features[layer])
        total = total + jnp.square(got_mean - mean).mean(-1) + jnp.square(got_std - std).mean(-1)
    return total


def gram_loss(features: dict[str, Array], targets: dict[str, Array]) -> Array:
    """Per image: sum over the targets' layers of the mean squared difference of Gram
    matrices (normalised features: relu4_1's is the raw one / 600^4, `FEATURE_MEANS`)."""
    return sum(jnp.square(gram_matrix(features[layer]) - target).mean(axis=(1, 2))
               for layer, target in targets.items())


def normalised(features: dict[str, Array]) -> dict[str, Array]:
    """Each layer divided by its mean activation over photos (see `FEATURE_MEANS`)."""
    return {layer: f / FEATURE_MEANS[layer] for layer, f in features.items()}


def decoder_loss(params, vgg_params, photos: Array, styles: Array, cfg: DecoderConfig,
                 encoder: Optional[dict] = None):
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

    def content_of(images, vgg_features, own_features=None):
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
    out = Decoder(width=cfg.width, level=cfg.decoder_level).apply({"params": params},
                                                                 target * scale)
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
        parts["perceptual"] = cfg.perceptual_weight * sum(
            jnp.square(out_features[name] - photo_features[name]).mean(axis=(1, 2, 3))
            for name in shallower)
    if cfg.layout_weight:
        parts["layout"] = cfg.layout_weight * layout_decorrelation(out, photos)
    if cfg.grid_weight:
        parts["grid"] = cfg.grid_weight * grid_loss(out, photos)
    if distilling:  # encoder.distill_loss per image, on the photos
        parts["distill"] = cfg.distill_weight * sum(
            jnp.square(embed(small[layer], encoder["embed"][layer]) - photo_features[layer])
            .mean(axis=(1, 2, 3)) for layer in DISTILL_LAYERS)
    return sum(parts.values()).mean(), parts


def make_decoder_step_fn(cfg: DecoderConfig) -> Callable:
    """The pure step((vgg_params, encoder or None), state, (photos_uint8, styles_uint8))
    -> (state, metrics)."""
    tx = make_optimizer(cfg)

    def loss_of(params, vgg_params, photos, styles, encoder):
        if cfg.trains_encoder:  # the encoder is in the state, not among the frozen inputs
            return decoder_loss(params["decoder"], vgg_params, photos, styles, cfg,
                                params["encoder"])
        return decoder_loss(params, vgg_params, photos, styles, cfg, encoder)

    def step(frozen, state: DecoderState, batch):
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

    def __init__(self, cfg: DecoderConfig, mesh=None):
        super().__init__(make_decoder_step_fn(cfg), cfg.batch, mesh)


@functools.lru_cache(maxsize=4)
def cached_decoder_step(cfg: DecoderConfig, mesh=None) -> DecoderStep:
    return DecoderStep(cfg, mesh)


class DecoderTrainResult(NamedTuple):
    params: dict
    header: dict
    steps: int
    seconds: float
    skipped_steps: int


def training_settings(cfg: DecoderConfig) -> dict:
    return {"size": cfg.size, "batch": cfg.batch, "steps_planned": cfg.steps,
            "learning_rate": cfg.learning_rate, "lr_decay": cfg.lr_decay,
            "content_weight": cfg.content_weight, "style_weight": cfg.style_weight,
            "gram_weight": cfg.gram_weight, "alpha": cfg.alpha,
            "pixel_weight": cfg.pixel_weight, "perceptual_weight": cfg.perceptual_weight,
            "layout_weight": cfg.layout_weight, "grid_weight": cfg.grid_weight,
            "encoder_learning_rate": cfg.encoder_learning_rate,
            "distill_weight": cfg.distill_weight, "seed": cfg.seed,
            **({} if cfg.level is None else {"level": cfg.level})}


def _render_preview(encoder_params, params, photo: np.ndarray, style: np.ndarray,
                    cfg: DecoderConfig) -> np.ndarray:
    """photo | style image | result at alpha 1 | the photo reconstructed (alpha 0), side by
    side (H, 4W, 3): the last shows what reconstruction pre-training teaches."""
    from jaxstyle.arbitrary.transfer import style_statistics

    photos = jnp.asarray(photo)[None]
    if cfg.level is not None:  # a WCT level's decoder: photo | its reconstruction
        rebuilt = _reconstruct_fn(cfg.width, cfg.level)(encoder_params, params, photos)
        return np.concatenate([photo, np.asarray(rebuilt[0])], axis=1)
    stats = style_statistics(encoder_params, style)
    styled, rebuilt = (_preview_fn(cfg.width)(encoder_params, params, photos, stats, alpha)
                       for alpha in (1.0, 0.0))
    return np.concatenate([photo, style, np.asarray(styled[0]), np.asarray(rebuilt[0])], axis=1)


@functools.lru_cache(maxsize=2)
def _reconstruct_fn(width: float, level: int):
    layer = LEVEL_LAYERS[level]
    return jax.jit(lambda vgg, params, photos: Decoder(width=width, level=level).apply(
        {"params": params}, encode(vgg, photos, (layer,))[layer]))


@functools.lru_cache(maxsize=2)
def _preview_fn(width: float):
    return jax.jit(lambda vgg, params, photos, stats, alpha: stylize_arrays(
        vgg, params, width, photos, stats, alpha=alpha))


def level_run_path(output: str | os.PathLike, level: int) -> Path:
    """`wct.jxs` -> `wct.relu2_1.jxs`: the name a level's run takes its checkpoints and log
    from (wct.relu2_1.checkpoints/, wct.relu2_1.log.jsonl), as several levels train into
    one WCT file and their runs must never mix."""
    from jaxstyle.arbitrary.decoder import level_name

    output = Path(output)
    return output.with_name(f"{output.stem}.{level_name(level)}{output.suffix}")


def train_decoder(vgg_params, photo_paths: Sequence[str | os.PathLike],
                  style_paths: Sequence[str | os.PathLike], output: str | os.PathLike,
                  cfg: DecoderConfig, *, checkpoint_dir: str | os.PathLike | None = None,
                  resume: bool = False, preview: Optional[tuple[np.ndarray, np.ndarray]] = None,
                  log_path: str | os.PathLike | None = None, worker_count: Optional[int] = None,
                  mesh=None, on_log: Optional[Callable[[list[dict]], None]] = None,
                  time_limit: Optional[float] = None,
                  init: Optional[tuple[dict, str]] = None,
                  encoder: Optional[tuple[dict, float]] = None) -> DecoderTrainResult:
    """Train a decoder on photos and style images and save it to `output`.

    encoder: (params, width) of a distilled encoder (`jaxstyle.arbitrary.encoder`) whose
    features the decoder learns to decode, saved inside the model file; None: VGG19's.

    init: (params, description) of a trained decoder of the same width to start from
    (fine-tuning, e.g. the shipped one on your own paintings) instead of a random one; a
    checkpoint (`resume`) still takes precedence, as it holds the run's own progress.

    preview: (photo, style image), both (S, S, 3) in [0, 1], rendered every
    `cfg.preview_every` steps. Checkpoints, resume (exact: the data positions are saved),
    the JSON-lines log, Ctrl-C and time_limit work as for `jaxstyle.feedforward.train.train`.
    """
    from jaxstyle.data import close_iterator, make_loader
    from jaxstyle.mesh import global_batch

    output = Path(output)
    if cfg.level is not None:
        from jaxstyle.training import default_checkpoint_dir, log_path_for

        per_level = level_run_path(output, cfg.level)
        checkpoint_dir = checkpoint_dir or default_checkpoint_dir(per_level)
        log_path = log_path or log_path_for(per_level)
    processes = jax.process_count()
    if cfg.batch % processes:
        raise ConfigError(f"batch {cfg.batch} does not split over {processes} processes")
    step = cached_decoder_step(cfg, training_mesh() if mesh is None else auto_axes(mesh))
    whole, split = step.replicated, step.batch_sharding
    vgg_params = jax.device_put(vgg_params, whole)
    if cfg.level is not None and encoder is not None:
        raise ConfigError("WCT levels decode VGG19's features; a distilled encoder is not "
                          "supported with a level yet")
    in_channels = None if encoder is None else encoder[0]["block4_conv1"]["bias"].shape[0]
    state = jax.device_put(init_decoder_state(cfg, None if init is None else init[0],
                                              in_channels, encoder and encoder[0]), whole)
    # A training encoder lives in the state; the step's frozen inputs then hold none.
    own_encoder = None if encoder is None or cfg.trains_encoder else jax.device_put(
        encoder[0], whole)

    def parts_of(params) -> tuple[dict, Optional[dict]]:
        """(decoder params, the encoder's as of these params, or None for VGG19)."""
        if cfg.trains_encoder:
            return params["decoder"], params["encoder"]
        return params, own_encoder
    encoder_fields = {} if encoder is None else {"encoder_width": float(encoder[1])}
    record = {"width": cfg.width, "data_count": len(photo_paths),
              **({} if cfg.level is None else {"level": cfg.level}),
              "style_count": len(style_paths), "seconds": 0.0, **encoder_fields}
    started_from = {} if init is None else {"initialised_from": init[1]}
    header = {}

    def save_model_file(state, steps, seconds, interrupted):
        training = {**training_settings(cfg), "steps": steps, "seconds": round(seconds, 1),
                    "devices": jax.device_count(), "backend": jax.default_backend(),
                    **started_from, **({"interrupted": True} if interrupted else {})}
        header.update({"width": cfg.width, "training": training,
                       "data_count": len(photo_paths), "style_count": len(style_paths),
                       **encoder_fields})
        if jax.process_index() == 0:
            decoder, own = host_copy(parts_of(state.params))
            if cfg.level is not None:  # one level of a WCT file; its other levels are kept
                save_wct_level(output, cfg.level, decoder, header)
            else:
                save_decoder(output, decoder, header, encoder=own)

    local = cfg.batch // processes
    photos = iter(make_loader(photo_paths, cfg.size, local, cfg.seed, worker_count))
    iterators = {"dataset": photos}
    if cfg.uses_style_images:
        # Another seed, so photo i and style i are not drawn in lockstep when folders match.
        iterators["style_dataset"] = iter(make_loader(style_paths, cfg.size, local,
                                                      cfg.seed + 1, worker_count))

    def next_batch():
        photo_batch = global_batch(next(photos)["image"], split, cfg.batch)
        if not cfg.uses_style_images:  # the step ignores them; no second stream to load
            return photo_batch, photo_batch
        return photo_batch, global_batch(next(iterators["style_dataset"])["image"], split,
                                         cfg.batch)

    try:
        result = run_training(
            lambda state, batch: step((vgg_params, own_encoder), state, batch), state,
            next_batch, iterators,
            LoopSettings(cfg.steps, cfg.batch, cfg.checkpoint_every, cfg.keep,
                         cfg.preview_every, cfg.log_every), output, record=record,
            must_match={"width": "decoder width", **({"encoder_width": "encoder width"}
                                                     if encoder else {}),
                        **({"level": "WCT level"} if cfg.level is not None else {})},
            save_model_file=save_model_file,
            render_preview=None if preview is None
            else lambda params: _render_preview(
                vgg_params if encoder is None else conv_params(parts_of(params)[1]),
                parts_of(params)[0], *preview, cfg),
            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, resume=resume,
            log_path=Path(log_path) if log_path else None, on_log=on_log,
            time_limit=time_limit)
    finally:
        for iterator in iterators.values():
            close_iterator(iterator)
    return DecoderTrainResult(host_copy(parts_of(result.state.params)[0]), header,
                              result.steps, result.seconds, result.skipped_steps)


__all__ = ["PERCEPTUAL_LAYERS", "RECONSTRUCTION", "DecoderConfig", "DecoderState", "DecoderStep",
           "DecoderTrainResult", "cached_decoder_step", "decoder_loss", "init_decoder_state",
           "level_run_path", "make_decoder_step_fn", "perceptual_layers", "stats_loss",
           "train_decoder"]
