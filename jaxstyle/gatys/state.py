"""The optimisation engine's explicit state and its one compiled step.

The step is a pure function `step(params, targets, state) -> (state, metrics)`: VGG params and
targets are arguments (closing over ~80 MB of params would bake them into the program as
constants), configuration is bound by closure, and the state's buffers are donated so the image
and Adam moments are updated in place. `make_step(cfg, batched=True)` vmaps it over a stack of
independent states (one image each), optionally sharded over a device mesh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from jaxstyle.config import StyleConfig
from jaxstyle.objective import Targets, as_image_batch, per_image_loss
from jaxstyle.optim import make_optimizer

Array = jax.Array
Metrics = dict[str, Array]


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


def initial_image(content: Array, cfg: StyleConfig, key=None) -> Array:
    """The starting image for `cfg.init`: the content, or uniform noise (N, H, W, 3).

    Image i of the batch draws its noise from `fold_in(key, i)` (key defaults to
    `cfg.seed`'s), so a job's noise does not depend on what else is in its batch.
    """
    if cfg.init != "noise":
        return content
    key = jax.random.key(cfg.seed) if key is None else key
    shape = content.shape[1:]
    return jnp.stack([jax.random.uniform(jax.random.fold_in(key, i), shape, jnp.float32)
                      for i in range(content.shape[0])])


def init_state(content, cfg: StyleConfig, init_image=None, key=None) -> StyleState:
    """Initial state of an (N, H, W, 3) batch: `init_image`, the content, or noise from `key`."""
    content = as_image_batch(content, "content image")
    if init_image is not None:
        image = as_image_batch(init_image, "init image")
        if image.shape != content.shape:
            raise ValueError(f"init image shape {image.shape} differs from content {content.shape}")
    else:
        image = initial_image(content, cfg, key)
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
        # The sum, not the mean: every image of a batch gets exactly its own gradient (Adam's
        # epsilon is not scale-free, so a 1/N factor would change the optimisation).
        totals, parts = per_image_loss(params, targets, image, cfg)
        return totals.sum(), (totals, parts)

    def step(params, targets, state: StyleState):
        if cfg.optimizer == "lbfgs":
            def loss_of_latent(latent):
                return loss_of_image(jax.nn.sigmoid(latent), params, targets)

            (loss, (totals, parts)), grad = jax.value_and_grad(loss_of_latent, has_aux=True)(
                state.latent)
            updates, opt_state = tx.update(grad, state.opt_state, state.latent, value=loss,
                                           grad=grad, value_fn=lambda z: loss_of_latent(z)[0])
            latent = optax.apply_updates(state.latent, updates)
            image = jax.nn.sigmoid(latent)
        else:
            (loss, (totals, parts)), grad = jax.value_and_grad(loss_of_image, has_aux=True)(
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
        # Means over the state's images, as `loss_fn` reports them (scalars for one state; a
        # vmapped step gives one per job). The host synchronises only when it reports.
        metrics = {"loss": totals.mean(), **{k: v.mean() for k, v in parts.items()},
                   "finite": finite}
        return new, metrics

    return step


class CompiledStep:
    """`jax.jit` of the step with the state donated; counts traces (one per image shape).

    batched: the step is vmapped over a leading job axis of the targets and state (each job
        one image with its own optimizer state, loss weights and hyper-parameters).
    shardings: optional `(params, targets, state)` shardings, e.g. from `jaxstyle.mesh`;
        the outputs keep the state's sharding, so a sharded run stays sharded.
    """

    def __init__(self, cfg: StyleConfig, batched: bool = False, shardings=None):
        self.cfg = cfg
        self.trace_count = 0
        step_fn = make_step_fn(cfg)
        if batched:
            step_fn = jax.vmap(step_fn, in_axes=(None, 0, 0))

        def counted(params, targets, state):
            self.trace_count += 1  # runs only while tracing
            return step_fn(params, targets, state)

        if shardings is None:
            self._jitted = jax.jit(counted, donate_argnums=(2,))
        else:
            state_sharding = shardings[2]
            if isinstance(state_sharding, NamedSharding):  # one sharding for every leaf
                metrics_sharding = state_sharding
            else:  # a per-leaf tree (spatial sharding): metrics are scalars, replicated
                mesh = jax.tree.leaves(state_sharding)[0].mesh
                metrics_sharding = NamedSharding(mesh, PartitionSpec())
            self._jitted = jax.jit(counted, in_shardings=shardings,
                                   out_shardings=(state_sharding, metrics_sharding),
                                   donate_argnums=(2,))

    def __call__(self, params, targets: Targets, state: StyleState):
        return self._jitted(params, targets, state)

    def lower(self, params, targets, state):
        return self._jitted.lower(params, targets, state)


def make_step(cfg: StyleConfig, batched: bool = False, shardings=None) -> CompiledStep:
    """The jit-compiled `step(params, targets, state) -> (state, metrics)`, state donated."""
    return CompiledStep(cfg, batched, shardings)


__all__ = ["CompiledStep", "StyleState", "init_state", "initial_image", "logit", "make_step",
           "make_step_fn", "output_image"]
