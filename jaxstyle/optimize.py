"""Targets, explicit optimisation state, the one compiled step, and the loop around it.

The step is a pure function `step(params, targets, state) -> (state, metrics)`: VGG params and
targets are arguments (closing over ~80 MB of params would bake them into the program as
constants), configuration is bound by closure, and the state's buffers are donated so the image
and Adam moments are updated in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.files import atomic_write
from jaxstyle.losses import (
    content_loss,
    gram_matrix,
    masked_gram_matrix,
    mean_squared_error,
    total_variation,
    weighted_mean,
)
from jaxstyle.vgg import MIN_SIDE, pool2x2, vgg19_features

Array = jax.Array
Metrics = dict[str, Array]


# --------------------------------------------------------------------------- optimizer


class ScaleByKerasAdamState(NamedTuple):
    count: Array
    mu: Any
    nu: Any


def scale_by_keras_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7):
    """Adam's direction with Keras/TensorFlow semantics: sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v)+eps).

    Keras folds the bias corrections into the step size and adds eps to the *uncorrected*
    sqrt(v); optax.scale_by_adam adds eps to the corrected sqrt(v_hat). With the seed's eps=0.1
    that is a visibly different optimiser for the first hundreds of steps, so this is the
    default (it reproduces the seed); `optimizer='adam-optax'` selects optax's.
    """

    def init_fn(params):
        zeros = lambda p: jnp.zeros_like(p, dtype=jnp.float32)  # noqa: E731
        return ScaleByKerasAdamState(jnp.zeros([], jnp.int32), jax.tree.map(zeros, params),
                                     jax.tree.map(zeros, params))

    def update_fn(updates, state, params=None):
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
        t = count.astype(jnp.float32)
        correction = jnp.sqrt(1 - b2**t) / (1 - b1**t)
        direction = jax.tree.map(lambda m, v: correction * m / (jnp.sqrt(v) + eps), mu, nu)
        return direction, ScaleByKerasAdamState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def keras_adam(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-7):
    """`tf.keras.optimizers.Adam` as an optax transformation (see `scale_by_keras_adam`)."""
    return optax.chain(scale_by_keras_adam(b1, b2, eps),
                       optax.scale_by_learning_rate(learning_rate))


def make_optimizer(cfg: StyleConfig) -> optax.GradientTransformation:
    """The optimizer `cfg.optimizer` names, with the config's hyper-parameters."""
    if cfg.optimizer == "adam":
        return keras_adam(cfg.learning_rate, cfg.beta1, cfg.beta2, cfg.epsilon)
    if cfg.optimizer == "adam-optax":
        return optax.adam(cfg.learning_rate, cfg.beta1, cfg.beta2, cfg.epsilon)
    if cfg.optimizer == "lbfgs":
        # Zoom line search picks the step length, so the learning rate is not used.
        return optax.lbfgs(memory_size=10, linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=15, verbose=False))
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}")


# --------------------------------------------------------------------------- targets and loss


class Targets(NamedTuple):
    """What the image is pulled towards, computed once per run (never inside the step).

    content: {layer: (1, h, w, C)} content-image features.
    style: {layer: (S, C, C)} Gram matrices; S=1 (the blend of all styles) without masks,
        one per style with masks.
    masks: None, or {layer: (S, h, w)} per-style guidance at each style layer's resolution.
    """

    content: dict[str, Array]
    style: dict[str, Array]
    masks: Optional[dict[str, Array]] = None


# Targets are computed once per run, but compiling the whole network once is still much faster
# than running it op by op (each op would be compiled separately).
_features_once = jax.jit(vgg19_features, static_argnames=("layers", "pooling", "dtype", "remat"))


def _network_options(cfg: StyleConfig) -> dict:
    dtype = jnp.bfloat16 if cfg.precision == "bf16" else jnp.float32
    return dict(pooling=cfg.pooling, dtype=dtype, remat=cfg.remat)


def as_image_batch(image, name: str) -> Array:
    image = jnp.asarray(image, jnp.float32)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[-1] != 3:
        raise ValueError(f"{name} must be (H, W, 3) or (1, H, W, 3), got {image.shape}")
    if min(image.shape[1:3]) < MIN_SIDE:
        raise ValueError(f"{name} must be at least {MIN_SIDE}x{MIN_SIDE} px, got "
                         f"{image.shape[2]}x{image.shape[1]}")
    return image


def _blend_weights(cfg: StyleConfig, n_styles: int) -> np.ndarray:
    weights = np.ones(n_styles) if cfg.style_blend is None else np.asarray(cfg.style_blend, float)
    if len(weights) != n_styles:
        raise ConfigError(f"style_blend has {len(weights)} weights for {n_styles} style images")
    return weights / weights.sum()


def downsample_masks(masks: Array, layers: Sequence[str]) -> dict[str, Array]:
    """Masks pooled to each layer's resolution as the network pools: (S,H,W) -> {layer: (S,h,w)}."""
    resized = {}
    for layer in layers:
        block = int(layer[len("block")])
        m = masks[..., None]
        for _ in range(block - 1):
            m = pool2x2(m, "avg")
        resized[layer] = m[..., 0]
    return resized


def make_targets(params, content, style, cfg: StyleConfig, masks=None) -> Targets:
    """Content features and style Grams. `style` is one image or a sequence of images.

    Several styles are blended by `cfg.style_blend` (Gram targets mixed per layer). With
    `masks` (S, H, W) at the content's size, one per style, each style keeps its own Gram and
    applies only where its mask is (regional style).
    """
    content = as_image_batch(content, "content image")
    styles = [style] if not isinstance(style, (list, tuple)) else list(style)
    styles = [as_image_batch(s, f"style image {i + 1}") for i, s in enumerate(styles)]
    options = _network_options(cfg)
    content_features = _features_once(params, content, cfg.content_layers, **options)
    grams = []  # per style: {layer: (C, C)}
    for image in styles:
        features = _features_once(params, image, cfg.style_layers, **options)
        grams.append({layer: gram_matrix(f)[0] for layer, f in features.items()})
    if masks is None:
        weights = _blend_weights(cfg, len(styles))
        style_targets = {layer: sum(float(w) * g[layer] for w, g in zip(weights, grams))[None]
                         for layer in cfg.style_layers}
        return Targets(content_features, style_targets, None)
    if cfg.style_blend is not None:
        raise ConfigError("style_blend and masks cannot be combined: masks say where each "
                          "style goes")
    masks = jnp.asarray(masks, jnp.float32)
    if masks.shape != (len(styles),) + content.shape[1:3]:
        raise ConfigError(f"need {len(styles)} masks of {content.shape[2]}x{content.shape[1]} px "
                          f"(one per style), got shape {masks.shape}")
    style_targets = {layer: jnp.stack([g[layer] for g in grams]) for layer in cfg.style_layers}
    return Targets(content_features, style_targets, downsample_masks(masks, cfg.style_layers))


def _style_term(features: Array, target: Array, masks: Optional[Array]) -> Array:
    if masks is None:
        return mean_squared_error(gram_matrix(features), target)
    grams = masked_gram_matrix(features, masks)[0]  # (S, C, C)
    per_style = jnp.mean(jnp.square(grams - target), axis=(1, 2))
    # Each region counts by its share of the image, so a partition of the image has the
    # same scale as one unmasked style.
    share = masks.mean(axis=(1, 2))
    return (per_style * share).sum() / share.sum()


def loss_fn(params, targets: Targets, image: Array, cfg: StyleConfig):
    """Seed loss of `image` (1, H, W, 3): returns (total, {'content', 'style', 'tv'} weighted)."""
    layers = tuple(dict.fromkeys(cfg.content_layers + cfg.style_layers))
    features = vgg19_features(params, image, layers, **_network_options(cfg))
    content = weighted_mean([content_loss(features[layer], targets.content[layer])
                             for layer in cfg.content_layers], cfg.content_layer_weights)
    style = weighted_mean(
        [_style_term(features[layer], targets.style[layer],
                     None if targets.masks is None else targets.masks[layer])
         for layer in cfg.style_layers], cfg.style_layer_weights)
    tv = total_variation(image).sum()
    parts = {"content": cfg.content_weight * content, "style": cfg.style_weight * style,
             "tv": cfg.tv_weight * tv}
    return parts["content"] + parts["style"] + parts["tv"], parts


# --------------------------------------------------------------------------- state and step


class StyleState(NamedTuple):
    """Everything that changes during a run; a pytree, so it can be saved, resumed or vmapped.

    image: (1, H, W, 3) current image in [0, 1].
    opt_state: the optax state.
    step: number of steps taken (int32 scalar).
    average: running sum for the image EMA (`cfg.ema`), else None.
    latent: the unconstrained variable for L-BFGS (image = sigmoid(latent)), else None.
    """

    image: Array
    opt_state: Any
    step: Array
    average: Optional[Array] = None
    latent: Optional[Array] = None


def logit(image: Array) -> Array:
    clipped = jnp.clip(image, 1e-3, 1 - 1e-3)  # keep the reparametrisation finite at 0 and 1
    return jnp.log(clipped) - jnp.log1p(-clipped)


def init_state(content, cfg: StyleConfig, init_image=None) -> StyleState:
    """Initial state: the image starts as `init_image`, the content, or seeded noise."""
    content = as_image_batch(content, "content image")
    if init_image is not None:
        image = as_image_batch(init_image, "init image")
        if image.shape != content.shape:
            raise ValueError(f"init image shape {image.shape} differs from content {content.shape}")
    elif cfg.init == "noise":
        image = jax.random.uniform(jax.random.key(cfg.seed), content.shape, jnp.float32)
    else:
        image = content
    image = jnp.clip(image, 0.0, 1.0)
    latent = logit(image) if cfg.optimizer == "lbfgs" else None
    variable = image if latent is None else latent
    opt_state = make_optimizer(cfg).init(variable)
    average = jnp.zeros_like(image) if cfg.ema is not None else None
    state = StyleState(image, opt_state, jnp.zeros([], jnp.int32), average, latent)
    # The step donates the state, so no leaf may share a buffer with another leaf or with
    # the caller's arrays (the image starts as the content; optimizers may alias zeros).
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


def output_image(state: StyleState, cfg: StyleConfig) -> Array:
    """The image a run outputs: the bias-corrected EMA when `cfg.ema` is set, else the image."""
    if cfg.ema is None or state.average is None:
        return state.image
    correction = 1 - cfg.ema ** jnp.maximum(state.step, 1).astype(jnp.float32)
    return jnp.clip(state.average / correction, 0.0, 1.0)


def _all_finite(tree) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def make_step_fn(cfg: StyleConfig) -> Callable:
    """The pure, uncompiled step(params, targets, state) -> (state, metrics)."""
    tx = make_optimizer(cfg)

    def loss_of_image(image, params, targets):
        return loss_fn(params, targets, image, cfg)

    def step(params, targets, state: StyleState):
        if cfg.optimizer == "lbfgs":
            def loss_of_latent(latent):
                return loss_of_image(jax.nn.sigmoid(latent), params, targets)

            (loss, parts), grad = jax.value_and_grad(loss_of_latent, has_aux=True)(state.latent)
            updates, opt_state = tx.update(grad, state.opt_state, state.latent, value=loss,
                                           grad=grad, value_fn=lambda z: loss_of_latent(z)[0])
            latent = optax.apply_updates(state.latent, updates)
            image = jax.nn.sigmoid(latent)
        else:
            (loss, parts), grad = jax.value_and_grad(loss_of_image, has_aux=True)(
                state.image, params, targets)
            updates, opt_state = tx.update(grad, state.opt_state, state.image)
            image = jnp.clip(optax.apply_updates(state.image, updates), 0.0, 1.0)
            latent = None
        new = StyleState(image, opt_state, state.step + 1, state.average, latent)
        if cfg.ema is not None:
            new = new._replace(average=cfg.ema * state.average + (1 - cfg.ema) * image)
        # A non-finite loss or update keeps the last finite state; the host sees `finite`
        # and stops, so no work is lost and nothing is synchronised per step.
        finite = jnp.isfinite(loss) & _all_finite((image, opt_state))
        new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        metrics = {"loss": loss, **parts, "finite": finite}
        return new, metrics

    return step


class CompiledStep:
    """`jax.jit` of the step with the state donated; counts traces (one per image shape)."""

    def __init__(self, cfg: StyleConfig):
        self.cfg = cfg
        self.trace_count = 0
        step_fn = make_step_fn(cfg)

        def counted(params, targets, state):
            self.trace_count += 1  # runs only while tracing
            return step_fn(params, targets, state)

        self._jitted = jax.jit(counted, donate_argnums=(2,))

    def __call__(self, params, targets: Targets, state: StyleState):
        return self._jitted(params, targets, state)

    def lower(self, params, targets, state):
        return self._jitted.lower(params, targets, state)


def make_step(cfg: StyleConfig) -> CompiledStep:
    """The jit-compiled `step(params, targets, state) -> (state, metrics)`, state donated."""
    return CompiledStep(cfg)


# --------------------------------------------------------------------------- the loop


class NonFiniteLossError(JaxstyleError):
    """The loss became NaN/inf; `image` is the last finite image, `history` the losses so far."""

    def __init__(self, step: int, image, history):
        super().__init__(f"loss became non-finite at step {step}; stopped and kept the last "
                         "finite image (try smaller weights or learning rate)")
        self.step, self.image, self.history = step, image, history


class StylizeInterrupted(JaxstyleError):
    """Ctrl-C during `stylize`; carries the latest state, image and history."""

    def __init__(self, state, image, history):
        super().__init__(f"interrupted at step {int(state.step)}")
        self.state, self.image, self.history = state, image, history


def _to_history(metrics: list[Metrics]) -> list[dict[str, float]]:
    host = jax.device_get(metrics)
    return [{k: float(v) for k, v in m.items() if k != "finite"} for m in host]


def run_steps(step: CompiledStep, params, targets: Targets, state: StyleState, num_steps: int,
              cfg: StyleConfig, history: list, callback=None, sync_every: int = 100):
    """Run `num_steps` steps; every `sync_every` steps the host checks the loss stayed finite.

    Between syncs the host only dispatches work, so steps run back to back on the device.
    """
    start = int(state.step)
    pending: list[Metrics] = []
    try:
        for i in range(num_steps):
            state, metrics = step(params, targets, state)
            pending.append(metrics)
            if callback is not None:
                callback(start + i + 1, metrics, state)
            if len(pending) == sync_every or i == num_steps - 1:
                finite = jax.device_get([m["finite"] for m in pending])
                if not all(finite):
                    bad = finite.index(False)
                    history.extend(_to_history(pending[:bad]))
                    raise NonFiniteLossError(start + i + 2 - len(pending) + bad,
                                             output_image(state, cfg), history)
                history.extend(_to_history(pending))
                pending = []
    except KeyboardInterrupt:
        history.extend(_to_history(pending))
        raise StylizeInterrupted(state, output_image(state, cfg), history) from None
    return state


# --------------------------------------------------------------------------- checkpoints


def save_state(path, state: StyleState) -> None:
    """Write a state to `path` (flax msgpack), atomically."""
    with atomic_write(path) as f:
        f.write(serialization.to_bytes(jax.device_get(state)))


def load_state(path, template: StyleState) -> StyleState:
    """Read a state saved by `save_state`; `template` (from `init_state`) fixes its structure."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        restored = serialization.from_bytes(jax.device_get(template), data)
    except FileNotFoundError:
        raise JaxstyleError(f"checkpoint {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JaxstyleError(f"checkpoint {path}: unreadable or from another run ({exc})") from None
    for saved, wanted in zip(jax.tree.leaves(restored), jax.tree.leaves(template)):
        if np.shape(saved) != np.shape(wanted):
            raise JaxstyleError(f"checkpoint {path}: made for an image of another size or "
                                f"other settings ({np.shape(saved)} vs {np.shape(wanted)})")
    return jax.tree.map(lambda x: jnp.array(x, copy=True), restored)


def flops_per_step(height: int, width: int) -> int:
    """Model of one default step's FLOPs (see BENCHMARKS.md): 1,551,104 * H * W."""
    return 1_551_104 * height * width


__all__ = [
    "CompiledStep", "NonFiniteLossError", "ScaleByKerasAdamState", "StyleState",
    "StylizeInterrupted", "Targets", "flops_per_step", "init_state", "keras_adam", "loss_fn",
    "load_state", "make_optimizer", "make_step", "make_step_fn", "make_targets", "output_image",
    "run_steps", "save_state", "scale_by_keras_adam",
]
