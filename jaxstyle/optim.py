"""Optimisers shared by every engine: TF/Keras-semantics Adam and the config's choice.

Hyper-parameters of the Adam variants are injected (`optax.inject_hyperparams`), so they live
in the optimizer state as arrays: a sweep gives each image of a batch its own learning rate or
epsilon without compiling once per value.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError

Array = jax.Array

# StyleConfig field -> keyword of the injected optimizer (the fields a sweep may vary there).
OPTIMIZER_HYPERPARAMS = {"learning_rate": "learning_rate", "beta1": "b1", "beta2": "b2",
                         "epsilon": "eps"}


class ScaleByKerasAdamState(NamedTuple):
    # A field named like tuple.count, as optax's Adam state has; typeshed's tuple declares
    # count as a method, so mypy sees an override.
    count: Array  # type: ignore[assignment]
    mu: Any
    nu: Any


def scale_by_keras_adam(b1: float = 0.9, b2: float = 0.999,
                        eps: float = 1e-7) -> optax.GradientTransformation:
    """Adam's direction with Keras/TensorFlow semantics: sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v)+eps).

    Keras folds the bias corrections into the step size and adds eps to the *uncorrected*
    sqrt(v); optax.scale_by_adam adds eps to the corrected sqrt(v_hat). With the seed's eps=0.1
    that is a visibly different optimiser for the first hundreds of steps, so this is the
    default (it reproduces the seed); `optimizer='adam-optax'` selects optax's.

    Example:

    >>> import optax
    >>> opt = optax.chain(jaxstyle.scale_by_keras_adam(eps=0.1), optax.scale(-0.02))
    >>> x = jnp.ones(3)
    >>> updates, state = opt.update(jnp.ones(3), opt.init(x))
    >>> updates.round(4)
    Array([-0.0048, -0.0048, -0.0048], dtype=float32)
    """

    def init_fn(params: Any) -> ScaleByKerasAdamState:
        zeros = lambda p: jnp.zeros_like(p, dtype=jnp.float32)  # noqa: E731
        return ScaleByKerasAdamState(jnp.zeros([], jnp.int32), jax.tree.map(zeros, params),
                                     jax.tree.map(zeros, params))

    def update_fn(updates: Any, state: ScaleByKerasAdamState,
                  params: Any = None) -> tuple[Any, ScaleByKerasAdamState]:
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g), state.nu, updates)
        t = count.astype(jnp.float32)
        correction = jnp.sqrt(1 - b2**t) / (1 - b1**t)
        direction = jax.tree.map(lambda m, v: correction * m / (jnp.sqrt(v) + eps), mu, nu)
        return direction, ScaleByKerasAdamState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def keras_adam(learning_rate: float | optax.Schedule, b1: float = 0.9, b2: float = 0.999,
               eps: float = 1e-7) -> optax.GradientTransformation:
    """`tf.keras.optimizers.Adam` as an optax transformation (see `scale_by_keras_adam`).

    Example:

    >>> import optax
    >>> opt = jaxstyle.keras_adam(0.02, b1=0.99, eps=0.1)  # the seed's Adam
    >>> x = jnp.ones(3)
    >>> updates, state = opt.update(jnp.ones(3), opt.init(x))
    >>> optax.apply_updates(x, updates).round(4)  # a step down the gradient
    Array([0.9952, 0.9952, 0.9952], dtype=float32)
    """
    return optax.chain(scale_by_keras_adam(b1, b2, eps),
                       optax.scale_by_learning_rate(learning_rate))


def make_optimizer(cfg: StyleConfig) -> optax.GradientTransformation:
    """The optimizer `cfg.optimizer` names, with the config's hyper-parameters.

    Example:

    >>> opt = jaxstyle.make_optimizer(jaxstyle.StyleConfig(learning_rate=0.05))
    >>> round(float(opt.init(jnp.zeros(3)).hyperparams["learning_rate"]), 6)  # state, not constant
    0.05
    """
    hyper = dict(learning_rate=cfg.learning_rate, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.epsilon)
    if cfg.optimizer == "adam":
        return optax.inject_hyperparams(keras_adam)(**hyper)
    if cfg.optimizer == "adam-optax":
        return optax.inject_hyperparams(optax.adam)(**hyper)
    if cfg.optimizer == "lbfgs":
        # Zoom line search picks the step length, so the learning rate is not used.
        return optax.lbfgs(memory_size=cfg.lbfgs_memory, linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=15, verbose=False))
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}")


def set_hyperparams(opt_state, **values):
    """`opt_state` with injected hyper-parameters replaced (StyleConfig field names)."""
    if not hasattr(opt_state, "hyperparams"):
        raise ConfigError(f"this optimizer has no adjustable {', '.join(values)}")
    hyper = dict(opt_state.hyperparams)
    for field, value in values.items():
        name = OPTIMIZER_HYPERPARAMS[field]
        hyper[name] = jnp.asarray(value, jnp.asarray(hyper[name]).dtype)
    return opt_state._replace(hyperparams=hyper)


__all__ = ["OPTIMIZER_HYPERPARAMS", "ScaleByKerasAdamState", "keras_adam", "make_optimizer",
           "scale_by_keras_adam", "set_hyperparams"]
