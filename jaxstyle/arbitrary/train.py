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

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxstyle._types import ParamTree
from jaxstyle.arbitrary.config import DecoderConfig, init_decoder_state
from jaxstyle.arbitrary.decoder import LEVEL_LAYERS, Decoder
from jaxstyle.arbitrary.decoderfile import save_decoder, save_wct_level
from jaxstyle.arbitrary.step import cached_decoder_step
from jaxstyle.arbitrary.transfer import conv_params, encode, stylize_arrays
from jaxstyle.errors import ConfigError
from jaxstyle.training import (
    LoopSettings,
    auto_axes,
    host_copy,
    run_training,
    training_mesh,
)


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


def _render_preview(encoder_params: ParamTree, params: ParamTree, photo: np.ndarray,
                    style: np.ndarray,
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
def _reconstruct_fn(width: float, level: int) -> Callable:
    layer = LEVEL_LAYERS[level]
    return jax.jit(lambda vgg, params, photos: Decoder(width=width, level=level).apply(
        {"params": params}, encode(vgg, photos, (layer,))[layer]))


@functools.lru_cache(maxsize=2)
def _preview_fn(width: float) -> Callable:
    return jax.jit(lambda vgg, params, photos, stats, alpha: stylize_arrays(
        vgg, params, width, photos, stats, alpha=alpha))


def level_run_path(output: str | os.PathLike, level: int) -> Path:
    """`wct.jxs` -> `wct.relu2_1.jxs`: the name a level's run takes its checkpoints and log
    from (wct.relu2_1.checkpoints/, wct.relu2_1.log.jsonl), as several levels train into
    one WCT file and their runs must never mix."""
    from jaxstyle.arbitrary.decoder import level_name

    output = Path(output)
    return output.with_name(f"{output.stem}.{level_name(level)}{output.suffix}")


def train_decoder(vgg_params: ParamTree, photo_paths: Sequence[str | os.PathLike],
                  style_paths: Sequence[str | os.PathLike], output: str | os.PathLike,
                  cfg: DecoderConfig, *, checkpoint_dir: str | os.PathLike | None = None,
                  resume: bool = False, preview: Optional[tuple[np.ndarray, np.ndarray]] = None,
                  log_path: str | os.PathLike | None = None, worker_count: Optional[int] = None,
                  mesh: Optional[Mesh] = None,
                  on_log: Optional[Callable[[list[dict]], None]] = None,
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
    assert split is not None  # the step has a mesh (training_mesh by default)
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

    def parts_of(params: Any) -> tuple[dict, Optional[dict]]:
        """(decoder params, the encoder's as of these params, or None for VGG19)."""
        if cfg.trains_encoder:
            return params["decoder"], params["encoder"]
        return params, own_encoder
    def preview_encoder(params: Any) -> Any:
        """What a preview encodes with: VGG19's params, or the own encoder's convs."""
        own = parts_of(params)[1]
        return vgg_params if own is None else conv_params(own)

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
            else lambda params: _render_preview(preview_encoder(params), parts_of(params)[0],
                                                *preview, cfg),
            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, resume=resume,
            log_path=Path(log_path) if log_path else None, on_log=on_log,
            time_limit=time_limit)
    finally:
        for iterator in iterators.values():
            close_iterator(iterator)
    return DecoderTrainResult(host_copy(parts_of(result.state.params)[0]), header,
                              result.steps, result.seconds, result.skipped_steps)


__all__ = ["DecoderTrainResult", "level_run_path", "train_decoder", "training_settings"]
