"""Engine 2's training loop: a feed-forward network learns to stylise any photo in one pass
(Johnson et al. 2016), several styles in one network through conditional instance norm
(Dumoulin et al. 2017), with the shared objective (`jaxstyle.objective`) as its loss.

The pure pieces live beside it: settings and state in `jaxstyle.feedforward.config`, the
compiled step in `jaxstyle.feedforward.step`. The host loop `train` here adds the data
stream, orbax checkpoints, a JSON-lines log, previews, Ctrl-C handling and the model file
(through the engines' shared `jaxstyle.training.run_training`).

Checkpoints (orbax `CheckpointManager`, one folder per saved step):

    CHECKPOINT_DIR/<step>/state/      TrainState (params, Adam state, step, PRNG key data)
    CHECKPOINT_DIR/<step>/dataset/    grain iterator position, process_<i>-of-<n>.json
    CHECKPOINT_DIR/<step>/run/        JSON: architecture, styles, data count, seconds so far
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, Optional

import jax
import numpy as np
from jax.sharding import Mesh

from jaxstyle._types import ParamTree
from jaxstyle.errors import ConfigError
from jaxstyle.feedforward.config import FeedForwardConfig, init_train_state, network
from jaxstyle.feedforward.modelfile import save_model, style_record
from jaxstyle.feedforward.step import cached_train_step, style_grams
from jaxstyle.training import (
    LoopSettings,
    auto_axes,
    host_copy,
    run_training,
    training_mesh,
)


class StyleImage(NamedTuple):
    """A style to train: its name, its image (H, W, 3) in [0, 1] at the training style size,
    and the file it came from (its bytes' sha256 goes into the model header).

    Example:

    >>> painting = np.random.default_rng(0).random((32, 48, 3), np.float32)
    >>> style = jaxstyle.feedforward.StyleImage("noise", painting)
    >>> style.name, style.image.shape, style.file
    ('noise', (32, 48, 3), None)
    """

    name: str
    image: np.ndarray
    file: Optional[Path] = None


class TrainResult(NamedTuple):
    params: dict      # the trained params, host numpy arrays
    header: dict      # the model file's header
    steps: int        # total steps done (including those before a resume)
    seconds: float    # training time (including that before a resume)
    skipped_steps: int  # updates skipped for a non-finite loss in this session


def training_settings(cfg: FeedForwardConfig) -> dict:
    """The settings a model header records (JSON-ready)."""
    loss = cfg.loss
    return {"size": cfg.size, "batch": cfg.batch, "steps_planned": cfg.steps,
            "learning_rate": cfg.learning_rate, "style_size": cfg.style_side,
            "content_layers": list(loss.content_layers),
            "content_layer_weights": None if loss.content_layer_weights is None
            else list(loss.content_layer_weights),
            "style_layers": list(loss.style_layers),
            "style_layer_weights": None if loss.style_layer_weights is None
            else list(loss.style_layer_weights),
            "content_weight": loss.content_weight, "style_weight": loss.style_weight,
            "tv_weight": loss.tv_weight, "pooling": loss.pooling, "precision": loss.precision,
            "stability_weight": cfg.stability_weight, "layout_weight": cfg.layout_weight,
            "grid_weight": cfg.grid_weight, "seed": cfg.seed}


def model_header(cfg: FeedForwardConfig, styles: Sequence[StyleImage], data_count: int,
                 steps: int, seconds: float, interrupted: bool = False) -> dict:
    """The header `save_model` writes: architecture, styles, settings and provenance."""
    training = {**training_settings(cfg), "steps": steps, "seconds": round(seconds, 1),
                "devices": jax.device_count(), "backend": jax.default_backend()}
    if interrupted:
        training["interrupted"] = True
    return {"width": cfg.width, "num_styles": cfg.num_styles,
            "identity_start": cfg.identity_start,
            "styles": [style_record(s.name, s.image, s.file) for s in styles],
            "training": training, "data_count": data_count}


def _run_record(cfg: FeedForwardConfig, styles: Sequence[StyleImage], data_count: int,
                seconds: float) -> dict:
    """What a checkpoint must agree on with the run resuming it, plus the time spent so far."""
    return {"width": cfg.width, "num_styles": cfg.num_styles,
            "identity_start": cfg.identity_start,
            "styles": [style_record(s.name, s.image, s.file)["sha256"] for s in styles],
            "data_count": data_count, "seconds": seconds}


@functools.lru_cache(maxsize=4)
def _preview_fn(cfg: FeedForwardConfig) -> Callable:
    net = network(cfg)
    return jax.jit(lambda params, images, weights: net.apply({"params": params}, images, weights))


def render_preview(params: ParamTree, photo: np.ndarray, cfg: FeedForwardConfig) -> np.ndarray:
    """The photo in each style, side by side: (H, W, 3) -> (H, S*W, 3) in [0, 1]."""
    images = np.repeat(np.asarray(photo, np.float32)[None], cfg.num_styles, axis=0)
    weights = np.eye(cfg.num_styles, dtype=np.float32)
    out = np.asarray(_preview_fn(cfg)(params, images, weights))
    return np.concatenate(list(out), axis=1)


def train(vgg_params: ParamTree, styles: Sequence[StyleImage], paths: Sequence[str | os.PathLike],
          output: str | os.PathLike, cfg: FeedForwardConfig, *,
          checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
          preview: Optional[np.ndarray] = None, log_path: str | os.PathLike | None = None,
          worker_count: Optional[int] = None, mesh: Optional[Mesh] = None,
          on_log: Optional[Callable[[list[dict]], None]] = None,
          time_limit: Optional[float] = None,
          init: Optional[tuple[dict, str]] = None) -> TrainResult:
    """Train a network on the photos at `paths` and save it to `output` (a .jxs model file).

    vgg_params: VGG19 params (`prepare_params` makes the step faster). styles: one
    `StyleImage` per style, images already at `cfg.style_side`. checkpoint_dir: default
    `default_checkpoint_dir(output)`; `resume` continues from its latest checkpoint, data
    position included, so the losses equal those of an uninterrupted run. preview: a photo
    (H, W, 3) rendered in every style every `cfg.preview_every` steps to
    `preview_path(output)`. log_path: JSON lines of step, loss, content, style, tv,
    stability, grad_norm and images/s (default `log_path_for(output)`). mesh: data-parallel
    over its 'data' axis (default: all devices). on_log: called with each batch of log
    records (a progress bar).

    Every process loads its own shard of the photos; the global batch is assembled from them.
    Ctrl-C or SIGTERM saves a checkpoint and the model, then raises `TrainingInterrupted`.
    time_limit (seconds of this run) stops early in the same way, but returns (`result.steps`
    short of `cfg.steps`). init: (params, description) of a trained model of the same
    architecture to continue from (several runs adding up to one long one); a checkpoint
    (`resume`) still takes precedence. Its steps and time are recorded in the header
    (`initialised_from`).
    """
    from jaxstyle.data import close_iterator, make_loader
    from jaxstyle.mesh import global_batch

    output = Path(output)
    if len(styles) != cfg.num_styles:
        raise ConfigError(f"{len(styles)} styles given for num_styles={cfg.num_styles}")
    processes = jax.process_count()
    if cfg.batch % processes:
        raise ConfigError(f"batch {cfg.batch} does not split over {processes} processes")
    train_step = cached_train_step(cfg, training_mesh() if mesh is None else auto_axes(mesh))
    whole, split = train_step.replicated, train_step.batch_sharding
    assert split is not None  # the step has a mesh (training_mesh by default)
    vgg_params = jax.device_put(vgg_params, whole)
    grams = jax.device_put(style_grams(vgg_params, [s.image for s in styles], cfg), whole)
    state = jax.device_put(init_train_state(cfg, None if init is None else init[0]), whole)
    record = _run_record(cfg, styles, len(paths), 0.0)
    header = {}

    def save_model_file(state, step, seconds, interrupted):
        header.update(model_header(cfg, styles, len(paths), step, seconds, interrupted))
        if init is not None:
            header["training"]["initialised_from"] = init[1]
        if jax.process_index() == 0:
            save_model(output, host_copy(state.params), header)

    iterator = iter(make_loader(paths, cfg.size, cfg.batch // processes, cfg.seed, worker_count))
    try:
        result = run_training(
            lambda state, batch: train_step(vgg_params, grams, state, batch), state,
            lambda: global_batch(next(iterator)["image"], split, cfg.batch),
            {"dataset": iterator}, _loop_settings(cfg), output, record=record,
            must_match=_MUST_MATCH, save_model_file=save_model_file,
            render_preview=None if preview is None
            else lambda params: render_preview(params, preview, cfg),
            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, resume=resume,
            log_path=Path(log_path) if log_path else None, on_log=on_log,
            time_limit=time_limit)
    finally:
        close_iterator(iterator)
    return TrainResult(host_copy(result.state.params), header, result.steps, result.seconds,
                       result.skipped_steps)


def _loop_settings(cfg: FeedForwardConfig) -> LoopSettings:
    return LoopSettings(cfg.steps, cfg.batch, cfg.checkpoint_every, cfg.keep, cfg.preview_every,
                        cfg.log_every)


_MUST_MATCH = {"width": "network width", "num_styles": "number of styles",
               "identity_start": "identity start", "styles": "style images"}


__all__ = ["StyleImage", "TrainResult", "model_header", "render_preview", "train",
           "training_settings"]
