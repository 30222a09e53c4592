"""Engine 2's training: a feed-forward network learns to stylise any photo in one pass
(Johnson et al. 2016), several styles in one network through conditional instance norm
(Dumoulin et al. 2017), with the shared objective (`jaxstyle.objective`) as its loss.

Pure pieces: `FeedForwardConfig`, `TrainState`, `style_grams`, `stability_loss` and
`make_train_step`, whose compiled step is `step(vgg_params, grams, state, batch) -> (state,
metrics)`. The host loop `train` adds the data stream, orbax checkpoints, a JSON-lines log,
previews, Ctrl-C handling and the model file.

Checkpoints (orbax `CheckpointManager`, one folder per saved step):

    CHECKPOINT_DIR/<step>/state/      TrainState (params, Adam state, step, PRNG key data)
    CHECKPOINT_DIR/<step>/dataset/    grain iterator position, process_<i>-of-<n>.json
    CHECKPOINT_DIR/<step>/run/        JSON: architecture, styles, data count, seconds so far
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

from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError
from jaxstyle.fastconv import cpu_conv_compiler_options
from jaxstyle.feedforward.modelfile import save_model, style_record
from jaxstyle.feedforward.network import TransformerNet, init_params
from jaxstyle.losses import gram_matrix, grid_loss, layout_loss
from jaxstyle.objective import Targets, as_image_batch, network_options, per_image_loss
from jaxstyle.training import (  # noqa: F401  (re-exported: this module's API before the split)
    LoopSettings,
    TrainingDiverged,
    TrainingInterrupted,
    all_finite,
    auto_axes,
    check_settings,
    default_checkpoint_dir,
    host_copy,
    keep_if_finite,
    log_path_for,
    preview_path,
    read_log,
    run_training,
    training_mesh,
)
from jaxstyle.vgg import MIN_SIDE, vgg19_features

Array = jax.Array
Metrics = dict[str, Array]

# Content layers and weights. The seed (Gatys through the TensorFlow tutorial) anchors content
# at block5_conv2 alone, which suffices for the optimiser because it starts from the photo. A
# network starts from noise: the CPU probe (shared/notes/feedforward-cpu-probe.md) found that
# one trained on block5_conv2 alone paints convincing texture but loses the photo's structure.
# Johnson et al. anchor content at a shallow layer instead (relu2_2 in the paper, relu3_3 in
# common implementations; block2_conv2 / block3_conv3 here). We keep the seed's block5_conv2
# term at the seed's weight, so the balance against the style term, and hence the look, stays
# the seed's, and add block3_conv3, whose MSE the probe measured about 265x larger on the same
# pair: at an effective weight of 40 the two terms start about equal, which lowered the seed's
# own loss at equal time (1.16e8 against 1.23e8). As layer weights normalised by their sum:
# 1e4 * (0.004, 1.0) / 1.004 = (about 40, about 9960).
DEFAULT_CONTENT_LAYERS = ("block3_conv3", "block5_conv2")
DEFAULT_CONTENT_LAYER_WEIGHTS = (0.004, 1.0)
DEFAULT_LOSS = StyleConfig(content_layers=DEFAULT_CONTENT_LAYERS,
                           content_layer_weights=DEFAULT_CONTENT_LAYER_WEIGHTS)


@dataclasses.dataclass(frozen=True)
class FeedForwardConfig:
    """Settings of one training run. Frozen and hashable, bound into the step by closure.

    `loss` is the shared objective's config: of its fields the trainer reads the layers, their
    weights, the loss weights, pooling, precision and remat (the optimiser fields are the
    Gatys engine's and are ignored here).
    """

    loss: StyleConfig = DEFAULT_LOSS
    size: int = 256               # side of the square training crops, px
    batch: int = 4                # images per step, over all devices and hosts
    steps: int = 40_000           # Johnson et al.: 2 epochs of COCO's 80k images at batch 4
    learning_rate: float = 1e-3   # Adam (optax's, eps 1e-8), as Johnson et al.
    width: float = 1.0            # channel multiplier of the network (1.0: 32/64/128)
    num_styles: int = 1
    # Longer side of the style images, px; it sets the stroke size. None: `size`, so style
    # and content are seen at the same scale, as the seed sees both at its max_dim.
    style_size: Optional[int] = None
    # The network returns the photo before training (`TransformerNet.identity_start`): the
    # default since the A/B in BENCHMARKS.md ("Keeping the photo"), where it kept the
    # photo's layout (median 0.87 against 0.06) at equal CPU time.
    identity_start: bool = True
    stability_weight: float = 0.0  # temporal stability term (see `stability_loss`); 0: off
    # Block-averaged luminance against the photo's (`losses.layout_loss`, 8 px blocks, [0, 1]
    # units): holds the photo's big shapes and light while the style term paints. 0: off.
    layout_weight: float = 0.0
    # Edge strength tied to the upsamplings' period beyond the photo's own (`losses.grid_loss`,
    # issue 18's grid score made a loss). 0: off.
    grid_weight: float = 0.0
    stability_shift: int = 2       # largest shift, px, of the stability term
    stability_noise: float = 0.02  # std of its gaussian noise, in [0, 1] pixel units
    seed: int = 0
    checkpoint_every: int = 1000   # steps between checkpoints; 0: only at the end and Ctrl-C
    keep: int = 3                  # checkpoints kept
    preview_every: int = 500       # steps between previews; 0: none
    log_every: int = 10            # steps between host synchronisations (log lines, bar)

    def __post_init__(self):
        if not isinstance(self.loss, StyleConfig):
            raise ConfigError(f"loss must be a StyleConfig, got {type(self.loss).__name__}")
        check_settings(self, counts=("batch", "steps", "num_styles", "stability_shift", "keep",
                                     "log_every"),
                       nonnegative_ints=("checkpoint_every", "preview_every", "seed"),
                       positive_numbers=("learning_rate", "width"),
                       nonnegative_numbers=("stability_weight", "stability_noise",
                                            "layout_weight", "grid_weight"))
        for name in ("size", "style_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < MIN_SIDE):
                raise ConfigError(f"{name} must be an integer >= {MIN_SIDE}, got {value!r}")
        if self.stability_shift >= self.size:
            raise ConfigError(f"stability_shift must be below size, got {self.stability_shift}")

    @property
    def style_side(self) -> int:
        """Longer side of the style images, px."""
        return self.size if self.style_size is None else self.style_size

    def replace(self, **changes) -> FeedForwardConfig:
        return dataclasses.replace(self, **changes)


class TrainState(NamedTuple):
    """Everything a step changes; a pytree, saved whole by orbax.

    params: the network's params dict. opt_state: Adam's state. step: steps taken (int32).
    key: PRNG key data (uint32[2], threefry) for the stability term's random motions; raw
    data rather than a typed key so any checkpointer can store it.
    """

    params: Any
    opt_state: Any
    step: Array
    key: Array


# --- Pure pieces --------------------------------------------------------------------------------

def network(cfg: FeedForwardConfig) -> TransformerNet:
    """The module being trained; its convs run in bfloat16 when the loss's precision is bf16."""
    dtype = jnp.bfloat16 if cfg.loss.precision == "bf16" else jnp.float32
    return TransformerNet(num_styles=cfg.num_styles, width=cfg.width, dtype=dtype,
                          identity_start=cfg.identity_start)


def make_optimizer(cfg: FeedForwardConfig) -> optax.GradientTransformation:
    """Adam with optax's semantics (eps 1e-8), as Johnson et al. trained."""
    return optax.adam(cfg.learning_rate)


def init_train_state(cfg: FeedForwardConfig, params=None) -> TrainState:
    """Fresh network params (from `cfg.seed`) or `params` (continuing a trained model), a
    fresh Adam state, step 0 and the stability key."""
    if params is None:
        params = init_params(cfg.seed, cfg.num_styles, cfg.width, size=cfg.size,
                             identity_start=cfg.identity_start)
    state = TrainState(params, make_optimizer(cfg).init(params), jnp.zeros([], jnp.int32),
                       jax.random.key_data(jax.random.key(cfg.seed)))
    # The step donates the state, so no two leaves may share a buffer.
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


@functools.partial(jax.jit, static_argnames=("layers", "pooling", "dtype", "remat"))
def _grams_of(params, image, layers, pooling, dtype, remat):
    features = vgg19_features(params, image, layers, pooling=pooling, dtype=dtype, remat=remat)
    return {layer: gram_matrix(f)[0] for layer, f in features.items()}


def style_grams(vgg_params, style_images: Sequence, cfg: FeedForwardConfig) -> dict[str, Array]:
    """Gram targets of each style image, once per run: S x (H, W, 3) -> {layer: (S, C, C)}.

    Each image keeps its own size (resize it to `cfg.style_side` first); Grams are divided by
    H*W, so they do not depend on it.
    """
    if len(style_images) != cfg.num_styles:
        raise ConfigError(f"{len(style_images)} style images for num_styles={cfg.num_styles}")
    per_style = []
    for i, image in enumerate(style_images):
        image = as_image_batch(image, f"style image {i + 1}")
        if image.shape[0] != 1:
            raise ValueError(f"each style image must be one image, got {image.shape}")
        per_style.append(_grams_of(vgg_params, image, cfg.loss.style_layers,
                                   **network_options(cfg.loss)))
    return {layer: jnp.stack([grams[layer] for grams in per_style])
            for layer in cfg.loss.style_layers}


def style_assignment(step: Array, batch: int, num_styles: int) -> Array:
    """Style of each image of a step's global batch: (batch,) int32, styles cycling evenly.

    Image i of step t trains style (t * batch + i) mod S, so over any S consecutive global
    images every style is trained once, whatever the batch size.
    """
    return ((step * batch + jnp.arange(batch)) % num_styles).astype(jnp.int32)


def shift_images(images: Array, offsets: Array, max_shift: int) -> Array:
    """Move each image by its (dy, dx) px, mirroring at the edges: (N,H,W,C), (N,2) -> (N,H,W,C).

    out[r, c] = in[r - dy, c - dx] where that lies inside the image.
    """
    n, h, w, c = images.shape
    m = max_shift
    padded = jnp.pad(images, ((0, 0), (m, m), (m, m), (0, 0)), mode="reflect")

    def one(image, offset):
        return jax.lax.dynamic_slice(image, (m - offset[0], m - offset[1], 0), (h, w, c))

    return jax.vmap(one)(padded, offsets)


def shifted_valid(offsets: Array, height: int, width: int) -> Array:
    """Pixels whose shifted value came from inside the image: (N, 2) -> (N, H, W) float32."""
    rows = jnp.arange(height)[None, :] - offsets[:, :1]  # source row of each row
    cols = jnp.arange(width)[None, :] - offsets[:, 1:]
    row_ok = (rows >= 0) & (rows < height)
    col_ok = (cols >= 0) & (cols < width)
    return (row_ok[:, :, None] & col_ok[:, None, :]).astype(jnp.float32)


def random_offsets(key: Array, count: int, max_shift: int) -> Array:
    """`count` random (dy, dx), each in [-max_shift, max_shift], never (0, 0): (count, 2) int32."""
    side = 2 * max_shift + 1
    index = jax.random.randint(key, (count,), 0, side * side - 1)
    index = index + (index >= side * side // 2)  # skip the centre, the zero shift
    return jnp.stack([index // side - max_shift, index % side - max_shift], axis=1)


def stability_of_outputs(apply_fn: Callable, params, images: Array, outputs: Array,
                         style_weights: Array, key: Array, max_shift: int = 2,
                         noise_std: float = 0.02) -> Array:
    """`stability_loss` given outputs = apply_fn(params, images, style_weights) already."""
    n, h, w, _ = images.shape
    shift_key, noise_key = jax.random.split(key)
    offsets = random_offsets(shift_key, n, max_shift)
    noise = noise_std * jax.random.normal(noise_key, images.shape, jnp.float32)
    moved = jnp.clip(shift_images(images, offsets, max_shift) + noise, 0.0, 1.0)
    moved_outputs = apply_fn(params, moved, style_weights)
    expected = shift_images(outputs, offsets, max_shift)
    valid = shifted_valid(offsets, h, w)[..., None]
    squared = valid * jnp.square(moved_outputs.astype(jnp.float32) - expected)
    return squared.sum(axis=(1, 2, 3)) / (valid.sum(axis=(1, 2, 3)) * images.shape[-1])


def stability_loss(apply_fn: Callable, params, images: Array, style_weights: Array, key: Array,
                   max_shift: int = 2, noise_std: float = 0.02) -> Array:
    """How much the output moves more than the input: (N,H,W,3), (N,S) -> (N,).

    For each image a random shift T of up to `max_shift` px along each axis, never zero
    (mirrored at the edges), and gaussian noise n of std `noise_std`, both drawn from `key`:
    mean |f(clip(T x + n)) - T f(x)|^2 over the pixels T keeps inside the image. Exactly
    zero for a constant network, and for a translation-equivariant one when noise_std is 0;
    positive for one whose output depends on position or amplifies noise, the two causes of
    flicker when a network stylises video frames one by one. Not in Johnson et al.; in the
    spirit of Gupta et al. 2017 ("Characterizing and Improving Stability in Neural Style
    Transfer"), with a shift added to the noise.
    """
    outputs = apply_fn(params, images, style_weights)
    return stability_of_outputs(apply_fn, params, images, outputs, style_weights, key,
                                max_shift, noise_std)


def make_train_step_fn(cfg: FeedForwardConfig) -> Callable:
    """The pure, uncompiled step(vgg_params, grams, state, batch_uint8) -> (state, metrics)."""
    net = network(cfg)
    tx = make_optimizer(cfg)
    loss_cfg = cfg.loss
    options = network_options(loss_cfg)

    def apply_net(params, images, style_weights):
        return net.apply({"params": params}, images, style_weights)

    def batch_loss(params, vgg_params, grams, images, style_ids, key):
        style_weights = jax.nn.one_hot(style_ids, cfg.num_styles, dtype=jnp.float32)
        outputs = apply_net(params, images, style_weights)
        # The photo itself is the content target, so it carries no gradient.
        content = jax.lax.stop_gradient(
            vgg19_features(vgg_params, images, loss_cfg.content_layers, **options))
        style = {layer: grams[layer][style_ids][:, None] for layer in loss_cfg.style_layers}
        totals, parts = per_image_loss(vgg_params, Targets(content, style), outputs, loss_cfg)
        if cfg.stability_weight > 0:
            stability = cfg.stability_weight * stability_of_outputs(
                apply_net, params, images, outputs, style_weights, key,
                cfg.stability_shift, cfg.stability_noise)
        else:
            stability = jnp.zeros_like(totals)
        totals = totals + stability
        extra = {"stability": stability}
        if cfg.layout_weight > 0:  # a Python branch: not computed at weight 0
            extra["layout"] = cfg.layout_weight * layout_loss(outputs, images)
            totals = totals + extra["layout"]
        if cfg.grid_weight > 0:
            extra["grid"] = cfg.grid_weight * grid_loss(outputs, images)
            totals = totals + extra["grid"]
        return totals.mean(), {**parts, **extra}

    def step(vgg_params, grams, state: TrainState, batch):
        images = batch.astype(jnp.float32) / 255.0  # uint8 on the wire, float on the device
        style_ids = style_assignment(state.step, images.shape[0], cfg.num_styles)
        key, stability_key = jax.random.split(jax.random.wrap_key_data(state.key))
        (loss, parts), grads = jax.value_and_grad(batch_loss, has_aux=True)(
            state.params, vgg_params, grams, images, style_ids, stability_key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # A non-finite loss or update skips this batch (params and Adam state stay), so one
        # bad batch cannot poison the network; the host stops after many in a row.
        finite = jnp.isfinite(loss) & all_finite((params, opt_state))
        params, opt_state = keep_if_finite(finite, (params, opt_state),
                                           (state.params, state.opt_state))
        new = TrainState(params, opt_state, state.step + 1, jax.random.key_data(key))
        metrics = {"loss": loss, **{name: value.mean() for name, value in parts.items()},
                   "grad_norm": optax.tree.norm(grads), "finite": finite}
        return new, metrics

    return step


class TrainStep:
    """`jax.jit` of the train step, state donated; counts its traces (one per batch shape).

    With a mesh the batch is split over its 'data' axis and everything else is replicated;
    XLA inserts the gradient all-reduce. Arguments must be placed with `self.replicated` and
    `self.batch_sharding` (on `self.mesh`, the given mesh with Auto axes; see `auto_axes`);
    host (numpy) arguments are placed by the call.
    """

    def __init__(self, cfg: FeedForwardConfig, mesh=None):
        from jaxstyle.mesh import batch_sharding, replicated

        self.cfg = cfg
        self.trace_count = 0
        step_fn = make_train_step_fn(cfg)

        def counted(vgg_params, grams, state, batch):
            self.trace_count += 1  # runs only while tracing
            return step_fn(vgg_params, grams, state, batch)

        if mesh is None:
            self.mesh = self.replicated = self.batch_sharding = None
            self._jitted = jax.jit(counted, donate_argnums=(2,),
                                   compiler_options=cpu_conv_compiler_options())
            return
        if cfg.batch % mesh.devices.size:
            raise ConfigError(f"batch {cfg.batch} does not split evenly over "
                              f"{mesh.devices.size} devices")
        self.mesh = auto_axes(mesh)
        self.replicated, self.batch_sharding = replicated(self.mesh), batch_sharding(self.mesh)
        whole, split = self.replicated, self.batch_sharding
        self._jitted = jax.jit(counted, in_shardings=(whole, whole, whole, split),
                               out_shardings=(whole, whole), donate_argnums=(2,),
                               compiler_options=cpu_conv_compiler_options())

    def __call__(self, vgg_params, grams, state: TrainState, batch):
        return self._jitted(vgg_params, grams, state, batch)

    def lower(self, vgg_params, grams, state, batch):
        return self._jitted.lower(vgg_params, grams, state, batch)


def make_train_step(cfg: FeedForwardConfig, mesh=None) -> TrainStep:
    """The compiled `step(vgg_params, grams, state, batch_uint8) -> (state, metrics)`.

    batch: (N, size, size, 3) uint8 photos, N = cfg.batch; grams from `style_grams`;
    vgg_params ideally from `prepare_params`. Metrics are scalars: loss, content, style, tv,
    stability (weighted, means over the batch), grad_norm (global L2 norm of the gradient) and
    finite (False: the update was skipped).
    """
    return TrainStep(cfg, mesh)


# The host loop compiles one step per distinct step-shaping config and mesh; reruns and
# resumes in one process (tests, notebooks) reuse it.
_STEP_FIELDS_IGNORED = ("steps", "seed", "checkpoint_every", "keep", "preview_every", "log_every")


@functools.lru_cache(maxsize=4)
def _cached_step(cfg: FeedForwardConfig, mesh) -> TrainStep:
    return make_train_step(cfg, mesh)


def cached_train_step(cfg: FeedForwardConfig, mesh=None) -> TrainStep:
    """`make_train_step`, shared by configs that differ only in host-loop settings."""
    defaults = FeedForwardConfig()
    key = cfg.replace(**{name: getattr(defaults, name) for name in _STEP_FIELDS_IGNORED})
    return _cached_step(key, mesh)


# --- Host loop ----------------------------------------------------------------------------------

class StyleImage(NamedTuple):
    """A style to train: its name, its image (H, W, 3) in [0, 1] at the training style size,
    and the file it came from (its bytes' sha256 goes into the model header)."""

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


def render_preview(params, photo: np.ndarray, cfg: FeedForwardConfig) -> np.ndarray:
    """The photo in each style, side by side: (H, W, 3) -> (H, S*W, 3) in [0, 1]."""
    images = np.repeat(np.asarray(photo, np.float32)[None], cfg.num_styles, axis=0)
    weights = np.eye(cfg.num_styles, dtype=np.float32)
    out = np.asarray(_preview_fn(cfg)(params, images, weights))
    return np.concatenate(list(out), axis=1)


def train(vgg_params, styles: Sequence[StyleImage], paths: Sequence[str | os.PathLike],
          output: str | os.PathLike, cfg: FeedForwardConfig, *,
          checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
          preview: Optional[np.ndarray] = None, log_path: str | os.PathLike | None = None,
          worker_count: Optional[int] = None, mesh=None,
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
    Ctrl-C saves a checkpoint and the model, then raises `TrainingInterrupted`. time_limit
    (seconds of this run) stops early in the same way, but returns (`result.steps` short of
    `cfg.steps`). init: (params, description) of a trained model of the same architecture to
    continue from (several runs adding up to one long one); a checkpoint (`resume`) still
    takes precedence. Its steps and time are recorded in the header (`initialised_from`).
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


__all__ = ["DEFAULT_CONTENT_LAYERS", "DEFAULT_CONTENT_LAYER_WEIGHTS", "DEFAULT_LOSS",
           "FeedForwardConfig", "StyleImage", "TrainResult", "TrainState", "TrainStep",
           "TrainingDiverged", "TrainingInterrupted", "cached_train_step",
           "default_checkpoint_dir", "init_train_state", "log_path_for", "make_train_step",
           "make_train_step_fn", "model_header", "preview_path", "random_offsets", "read_log",
           "render_preview", "shift_images", "shifted_valid", "stability_loss",
           "stability_of_outputs", "style_assignment", "style_grams", "train", "auto_axes",
           "training_mesh"]
