"""Engine 2's compiled train step: `make_train_step(cfg)` gives
`step(vgg_params, grams, state, batch_uint8) -> (state, metrics)`, the style Gram targets it
trains towards (`style_grams`), which style each image trains (`style_assignment`) and the
temporal stability term (`stability_loss`: a random shift and noise must move the output
only as much as the input)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from jaxstyle._types import ArrayLike, ParamTree
from jaxstyle.errors import ConfigError
from jaxstyle.fastconv import cpu_conv_compiler_options
from jaxstyle.feedforward.config import (
    FeedForwardConfig,
    TrainState,
    make_optimizer,
    network,
)
from jaxstyle.losses import gram_matrix, grid_loss, layout_loss
from jaxstyle.objective import Targets, as_image_batch, network_options, per_image_loss
from jaxstyle.training import all_finite, auto_axes, keep_if_finite
from jaxstyle.vgg import vgg19_features

Array = jax.Array


@functools.partial(jax.jit, static_argnames=("layers", "pooling", "dtype", "remat"))
def _grams_of(params, image, layers, pooling, dtype, remat):
    features = vgg19_features(params, image, layers, pooling=pooling, dtype=dtype, remat=remat)
    return {layer: gram_matrix(f)[0] for layer, f in features.items()}


def style_grams(vgg_params: ParamTree, style_images: Sequence[ArrayLike],
                cfg: FeedForwardConfig) -> dict[str, Array]:
    """Gram targets of each style image, once per run: S x (H, W, 3) -> {layer: (S, C, C)}.

    Each image keeps its own size (resize it to `cfg.style_side` first); Grams are divided by
    H*W, so they do not depend on it.

    Example:

    >>> cfg = jaxstyle.FeedForwardConfig(num_styles=2, loss=jaxstyle.StyleConfig(
    ...     style_layers="block1_conv1,block2_conv1"))
    >>> paintings = list(np.random.default_rng(0).random((2, 32, 32, 3), np.float32))
    >>> grams = jaxstyle.feedforward.style_grams(params, paintings, cfg)
    >>> {layer: gram.shape for layer, gram in grams.items()}
    {'block1_conv1': (2, 64, 64), 'block2_conv1': (2, 128, 128)}
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


def stability_of_outputs(apply_fn: Callable, params: Any, images: Array, outputs: Array,
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


def stability_loss(apply_fn: Callable, params: Any, images: Array, style_weights: Array,
                   key: Array, max_shift: int = 2, noise_std: float = 0.02) -> Array:
    """How much the output moves more than the input: (N,H,W,3), (N,S) -> (N,).

    For each image a random shift T of up to `max_shift` px along each axis, never zero
    (mirrored at the edges), and gaussian noise n of std `noise_std`, both drawn from `key`:
    mean |f(clip(T x + n)) - T f(x)|^2 over the pixels T keeps inside the image. Exactly
    zero for a constant network, and for a translation-equivariant one when noise_std is 0;
    positive for one whose output depends on position or amplifies noise, the two causes of
    flicker when a network stylises video frames one by one. Not in Johnson et al.; in the
    spirit of Gupta et al. 2017 ("Characterizing and Improving Stability in Neural Style
    Transfer"), with a shift added to the noise.

    Example:

    >>> def brighten(params, images, style_weights):  # e.g. a TransformerNet's apply instead
    ...     return params * images  # pixelwise: its output moves exactly as its input moves
    >>> photos = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> stability = jax.jit(jaxstyle.feedforward.stability_loss, static_argnums=0)
    >>> stability(brighten, 0.5, photos, jnp.ones((2, 1)), jax.random.key(0), noise_std=0.0)
    Array([0., 0.], dtype=float32)
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

    def step(vgg_params: ParamTree, grams: dict[str, Array], state: TrainState,
             batch: Array) -> tuple[TrainState, dict[str, Array]]:
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

    def __init__(self, cfg: FeedForwardConfig, mesh: Optional[Mesh] = None) -> None:
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

    def __call__(self, vgg_params: ParamTree, grams: dict[str, Array], state: TrainState,
                 batch: ArrayLike) -> tuple[TrainState, dict[str, Array]]:
        return self._jitted(vgg_params, grams, state, batch)

    def lower(self, vgg_params: ParamTree, grams: dict[str, Array], state: TrainState,
              batch: ArrayLike) -> jax.stages.Lowered:
        return self._jitted.lower(vgg_params, grams, state, batch)


def make_train_step(cfg: FeedForwardConfig, mesh: Optional[Mesh] = None) -> TrainStep:
    """The compiled `step(vgg_params, grams, state, batch_uint8) -> (state, metrics)`.

    batch: (N, size, size, 3) uint8 photos, N = cfg.batch; grams from `style_grams`;
    vgg_params ideally from `prepare_params`. Metrics are scalars: loss, content, style, tv,
    stability (weighted, means over the batch), grad_norm (global L2 norm of the gradient) and
    finite (False: the update was skipped).

    Example:

    >>> cfg = jaxstyle.FeedForwardConfig(size=64, batch=1, width=0.25, loss=jaxstyle.StyleConfig(
    ...     content_layers="block2_conv2", style_layers="block1_conv1"))
    >>> painting = np.random.default_rng(0).random((32, 32, 3), np.float32)
    >>> grams = jaxstyle.feedforward.style_grams(params, [painting], cfg)
    >>> step = jaxstyle.feedforward.make_train_step(cfg)
    >>> photos = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3), np.uint8)
    >>> state, metrics = step(params, grams, jaxstyle.feedforward.init_train_state(cfg), photos)
    >>> int(state.step), bool(metrics["finite"])
    (1, True)
    """
    return TrainStep(cfg, mesh)


# The host loop compiles one step per distinct step-shaping config and mesh; reruns and
# resumes in one process (tests, notebooks) reuse it.
_STEP_FIELDS_IGNORED = ("steps", "seed", "checkpoint_every", "keep", "preview_every", "log_every")


@functools.lru_cache(maxsize=4)
def _cached_step(cfg: FeedForwardConfig, mesh: Optional[Mesh]) -> TrainStep:
    return make_train_step(cfg, mesh)


def cached_train_step(cfg: FeedForwardConfig, mesh: Optional[Mesh] = None) -> TrainStep:
    """`make_train_step`, shared by configs that differ only in host-loop settings."""
    defaults = FeedForwardConfig()
    key = cfg.replace(**{name: getattr(defaults, name) for name in _STEP_FIELDS_IGNORED})
    return _cached_step(key, mesh)


__all__ = ["TrainStep", "cached_train_step", "make_train_step", "make_train_step_fn",
           "random_offsets", "shift_images", "shifted_valid", "stability_loss",
           "stability_of_outputs", "style_assignment", "style_grams"]
