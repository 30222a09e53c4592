"""The optimisation engine's explicit state and its one compiled step.

The step is a pure function `step(params, targets, state) -> (state, metrics)`: VGG params and
targets are arguments (closing over ~80 MB of params would bake them into the program as
constants), configuration is bound by closure, and the state's buffers are donated so the image
and Adam moments are updated in place. `make_step(cfg, batched=True)` vmaps it over a stack of
independent states (one image each), optionally sharded over a device mesh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from jaxstyle._types import ArrayLike, ParamTree
from jaxstyle.config import StyleConfig
from jaxstyle.cputune import step_compiler_options
from jaxstyle.objective import Targets, as_image_batch, per_image_loss, precision_scope
from jaxstyle.optim import ScaleByKerasAdamState, make_optimizer
from jaxstyle.vgg import prepare_params

Array = jax.Array
Metrics = dict[str, Array]
# (params, targets, state) shardings: for each, one sharding or a pytree of them (its leaves').
StepShardings = tuple[Any, Any, Any]


class StyleState(NamedTuple):
    """Everything that changes during a run; a pytree, so it can be saved, resumed or vmapped.

    image: (1, H, W, 3) current image in [0, 1].
    opt_state: the optax state.
    step: number of steps taken (int32 scalar).
    average: running sum for the image EMA (`cfg.ema`), else None.
    latent: the unconstrained variable for L-BFGS (image = image_of_latent(latent,
        cfg.lbfgs_box)), else None.

    Example:

    >>> state = jaxstyle.init_state(np.zeros((32, 32, 3), np.float32), jaxstyle.StyleConfig())
    >>> state._fields
    ('image', 'opt_state', 'step', 'average', 'latent')
    >>> jax.tree.map(lambda x: jnp.stack([x, x]), state).image.shape  # a pytree: stack, vmap
    (2, 1, 32, 32, 3)
    """

    image: Array
    opt_state: Any
    step: Array
    average: Optional[Array] = None
    latent: Optional[Array] = None


def logit(image: Array) -> Array:
    clipped = jnp.clip(image, 1e-3, 1 - 1e-3)  # keep the reparametrisation finite at 0 and 1
    return jnp.log(clipped) - jnp.log1p(-clipped)


def latent_of_image(image: Array, box: str) -> Array:
    """L-BFGS's unconstrained variable for an image in [0, 1] (`StyleConfig.lbfgs_box`).

    Example:

    >>> image = jnp.array([0.0, 0.25, 1.0])
    >>> jaxstyle.gatys.latent_of_image(image, "reflect").tolist()  # the image itself
    [0.0, 0.25, 1.0]
    >>> back = jaxstyle.gatys.image_of_latent(jaxstyle.gatys.latent_of_image(image, "sigmoid"),
    ...                                       "sigmoid")
    >>> [round(float(v), 3) for v in back]  # the sigmoid's latent is clipped short of 0 and 1
    [0.001, 0.25, 0.999]
    """
    return image if box == "reflect" else logit(image)


def image_of_latent(latent: Array, box: str) -> Array:
    """The image in [0, 1] an L-BFGS latent stands for.

    "sigmoid": sigmoid(latent), whose slope at a pixel that starts at 0.001 or 0.999 is
    0.001: on a photo with clipped whites or blacks (11% of the astronaut's values) those
    pixels hardly move. "reflect": the latent folded back into [0, 1] at 0 and 1 (a triangle
    wave, period 2), so every pixel moves at the gradient's own rate and the image still
    never leaves the box; the kinks are where a pixel would have been clipped.

    Example:

    >>> jaxstyle.gatys.image_of_latent(jnp.array([-0.25, 0.5, 1.25, 2.5]), "reflect").tolist()
    [0.25, 0.5, 0.75, 0.5]
    """
    if box == "reflect":
        return 1.0 - jnp.abs(1.0 - jnp.mod(latent, 2.0))
    return jax.nn.sigmoid(latent)


def initial_image(content: Array, cfg: StyleConfig, key: Optional[Array] = None) -> Array:
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


def init_state(content: ArrayLike, cfg: StyleConfig, init_image: Optional[ArrayLike] = None,
               key: Optional[Array] = None,
               optimizer: Optional[optax.GradientTransformation] = None) -> StyleState:
    """Initial state of an (N, H, W, 3) batch: `init_image`, the content, or noise from `key`.

    `optimizer` (any optax transformation) must be the one given to `make_step`; by default
    the config's (`make_optimizer(cfg)`, the seed's Keras Adam).

        state = init_state(photo, cfg, optimizer=optax.adam(optax.cosine_decay_schedule(0.05, 500)))

    Example:

    >>> import optax
    >>> photo = np.random.default_rng(0).random((32, 32, 3), np.float32)
    >>> state = jaxstyle.init_state(photo, jaxstyle.StyleConfig())
    >>> state.image.shape, int(state.step)
    ((1, 32, 32, 3), 0)
    >>> noise_cfg = jaxstyle.StyleConfig(init="noise")
    >>> noise = jaxstyle.init_state(photo, noise_cfg, key=jax.random.key(1))
    >>> bool(jnp.array_equal(noise.image, state.image))
    False
    >>> own = jaxstyle.init_state(photo, jaxstyle.StyleConfig(), optimizer=optax.adam(0.05))
    >>> type(own.opt_state[0]).__name__
    'ScaleByAdamState'
    """
    content = as_image_batch(content, "content image")
    if init_image is not None:
        image = as_image_batch(init_image, "init image")
        if image.shape != content.shape:
            raise ValueError(f"init image shape {image.shape} differs from content {content.shape}")
    else:
        image = initial_image(content, cfg, key)
    image = jnp.clip(image, 0.0, 1.0)
    latent = latent_of_image(image, cfg.lbfgs_box) if cfg.optimizer == "lbfgs" else None
    variable = image if latent is None else latent
    opt_state = (make_optimizer(cfg) if optimizer is None else optimizer).init(variable)
    average = jnp.zeros_like(image) if cfg.ema is not None else None
    state = StyleState(image, opt_state, jnp.zeros([], jnp.int32), average, latent)
    # The step donates the state, so no leaf may share a buffer with another leaf or with
    # the caller's arrays (the image starts as the content; optimizers may alias zeros).
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


def output_image(state: StyleState, cfg: StyleConfig) -> Array:
    """The image a run outputs: the bias-corrected EMA when `cfg.ema` is set, else the image.

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(ema=0.9, content_layers="block2_conv2",
    ...                            style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, photo, painting, cfg)
    >>> state, _ = jaxstyle.make_step(cfg)(params, targets, jaxstyle.init_state(photo, cfg))
    >>> bool(jnp.allclose(jaxstyle.output_image(state, cfg), state.image))  # EMA of one step
    True
    """
    if cfg.ema is None or state.average is None:
        return state.image
    correction = 1 - cfg.ema ** jnp.maximum(state.step, 1).astype(jnp.float32)
    return jnp.clip(state.average / correction, 0.0, 1.0)


def _all_finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _reuse_value_and_grad(value_fn: Callable[[Array], Array], variable: Array,
                          opt_state: Any) -> tuple[Array, Array]:
    """value_fn's value and gradient at `variable`, taken from `opt_state` where a line
    search stored them (optax's L-BFGS), else computed. A first step, a reset state or a
    non-finite stored value computes them."""
    stored = [optax.tree.get(opt_state, name, None) for name in ("value", "grad")]
    if any(leaf is None for leaf in stored):
        return jax.value_and_grad(value_fn)(variable)
    return optax.value_and_grad_from_state(value_fn)(variable, state=opt_state)


def make_step_fn(cfg: StyleConfig,
                 optimizer: Optional[optax.GradientTransformation] = None) -> Callable:
    """The pure, uncompiled step(params, targets, state) -> (state, metrics).

    `optimizer`: any optax transformation (chains, schedules, clipping) in place of the
    config's. It updates the image itself, clipped to [0, 1] after each step, or the
    latent (`image_of_latent`) when `cfg.optimizer == 'lbfgs'`. Transformations that take
    extra arguments (`optax.lbfgs`' line search) get `value`, `grad` and `value_fn`.

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, photo, painting, cfg)
    >>> step_fn = jaxstyle.gatys.make_step_fn(cfg)
    >>> state, metrics = jax.jit(step_fn)(params, targets, jaxstyle.init_state(photo, cfg))
    >>> bool(metrics["finite"]), int(state.step)
    (True, 1)
    """
    custom = optimizer is not None
    tx = make_optimizer(cfg) if optimizer is None else optax.with_extra_args_support(optimizer)

    def loss_of_image(image: Array, params: ParamTree,
                      targets: Targets) -> tuple[Array, tuple[Array, dict[str, Array]]]:
        # The sum, not the mean: every image of a batch gets exactly its own gradient (Adam's
        # epsilon is not scale-free, so a 1/N factor would change the optimisation).
        totals, parts = per_image_loss(params, targets, image, cfg)
        return totals.sum(), (totals, parts)

    def step(params: ParamTree, targets: Targets, state: StyleState) -> tuple[StyleState, Metrics]:
        if cfg.optimizer == "lbfgs":
            def loss_of_latent(latent):
                return loss_of_image(image_of_latent(latent, cfg.lbfgs_box), params, targets)

            def latent_value(latent):
                return loss_of_latent(latent)[0]

            # The line search evaluated the loss and its gradient where it stopped, which is
            # this step's starting point: reusing them makes an accepted step cost one
            # evaluation instead of two (measured: 303 evaluations for 300 steps at 256 px).
            # That evaluation returns no parts, so L-BFGS reports the loss alone.
            assert state.latent is not None  # init_state makes one for L-BFGS
            loss, grad = _reuse_value_and_grad(latent_value, state.latent, state.opt_state)
            updates, opt_state = tx.update(grad, state.opt_state, state.latent, value=loss,
                                           grad=grad, value_fn=latent_value)
            latent = optax.apply_updates(state.latent, updates)
            image = image_of_latent(latent, cfg.lbfgs_box)
            totals, parts = loss / state.image.shape[0], dict[str, Array]()
        else:
            (loss, (totals, parts)), grad = jax.value_and_grad(loss_of_image, has_aux=True)(
                state.image, params, targets)
            if custom:  # the default path stays exactly the seed's (TF-parity tests)
                updates, opt_state = tx.update(
                    grad, state.opt_state, state.image, value=loss, grad=grad,
                    value_fn=lambda x: loss_of_image(x, params, targets)[0])
            else:
                updates, opt_state = tx.update(grad, state.opt_state, state.image)
            image = jnp.clip(optax.apply_updates(state.image, updates), 0.0, 1.0)
            latent = None
        new = StyleState(image, opt_state, state.step + 1, state.average, latent)
        if cfg.ema is not None:
            if state.average is None:
                raise ValueError("cfg.ema is set but the state keeps no average: make the state "
                                 "with init_state(..., cfg) for this config")
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

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, photo, painting, cfg)
    >>> step, state = jaxstyle.gatys.CompiledStep(cfg), jaxstyle.init_state(photo, cfg)
    >>> for _ in range(3):
    ...     state, metrics = step(params, targets, state)
    >>> int(state.step), step.trace_count  # one image shape: traced once
    (3, 1)
    """

    def __init__(self, cfg: StyleConfig, batched: bool = False,
                 shardings: Optional[StepShardings] = None, donate: bool = True,
                 optimizer: Optional[optax.GradientTransformation] = None) -> None:
        self.cfg = cfg
        self.trace_count = 0
        self._prepare = shardings is None  # sharded callers place prepared params themselves
        donated = (2,) if donate else ()
        step_fn = make_step_fn(cfg, optimizer)
        if batched:
            step_fn = jax.vmap(step_fn, in_axes=(None, 0, 0))

        def counted(params: ParamTree, targets: Targets,
                    state: StyleState) -> tuple[StyleState, Metrics]:
            self.trace_count += 1  # runs only while tracing
            return step_fn(params, targets, state)

        # This CPU's faster convolution path, measured once and cached (`jaxstyle.cputune`).
        options = step_compiler_options()
        if shardings is None:
            self._jitted = jax.jit(counted, donate_argnums=donated, compiler_options=options)
        else:
            state_sharding = shardings[2]
            if isinstance(state_sharding, NamedSharding):  # one sharding for every leaf
                metrics_sharding = state_sharding
            else:  # a per-leaf tree (spatial sharding): metrics are scalars, replicated
                mesh = jax.tree.leaves(state_sharding)[0].mesh
                metrics_sharding = NamedSharding(mesh, PartitionSpec())
            self._jitted = jax.jit(counted, in_shardings=shardings,
                                   out_shardings=(state_sharding, metrics_sharding),
                                   donate_argnums=donated, compiler_options=options)

    def __call__(self, params: ParamTree, targets: Targets,
                 state: StyleState) -> tuple[StyleState, Metrics]:
        if self._prepare:  # backward kernels made once per kernel array, checked if given
            params = prepare_params(params)
        with precision_scope(self.cfg):  # part of jit's cache key, so traced under it
            return self._jitted(params, targets, state)

    def lower(self, params: ParamTree, targets: Targets, state: StyleState,
              platforms: Optional[Sequence[str]] = None) -> jax.stages.Lowered:
        """The step's `jax.stages.Lowered` for these arguments (params as `prepare_params`
        gives them), for this process's backend or for `platforms` ('cuda', 'tpu', ...),
        which need no such device: `.as_text()` is the StableHLO, `.compile()` runs here."""
        with precision_scope(self.cfg):
            traced = self._jitted.trace(params, targets, state)
            return traced.lower(lowering_platforms=None if platforms is None
                                else tuple(platforms))

    def export(self, params: ParamTree, targets: Targets, state: StyleState,
               platforms: Sequence[str] = ("cpu",)) -> jax.export.Exported:
        """The step as a `jax.export.Exported` for `platforms` ('cpu', 'cuda', 'tpu', ...),
        lowered for the shapes of these arguments. It serialises (`.serialize()`) with the
        state's and targets' NamedTuples registered, and `.call(params, targets, state)` runs
        it. The params are prepared as `__call__` prepares them; pass the same to `.call`.

            exported = make_step(cfg).export(params, targets, state, ("cpu", "cuda", "tpu"))
            blob = exported.serialize()

        Another process reads the bytes back with `jax.export.deserialize` after `import
        jaxstyle`, which registers the NamedTuples a step's arguments hold (`Targets`,
        `StyleState`, the Keras Adam state and optax's state classes). A NamedTuple state of
        your own optimizer needs `jax.export.register_namedtuple_serialization(cls,
        serialized_name=f"{cls.__module__}.{cls.__qualname__}")` there too.
        """
        if self._prepare:
            params = prepare_params(params)
        register_namedtuples((params, targets, state))
        with precision_scope(self.cfg):
            return jax.export.export(self._jitted, platforms=tuple(platforms))(
                params, targets, state)


def _register_namedtuple(cls: type) -> None:
    """Register one NamedTuple class for `jax.export` serialisation under its
    module-qualified name, once."""
    if cls not in _REGISTERED:
        try:
            jax.export.register_namedtuple_serialization(
                cls, serialized_name=f"{cls.__module__}.{cls.__qualname__}")
        except ValueError:  # registered already (by optax, or another copy)
            pass
        _REGISTERED.add(cls)


def register_namedtuples(tree: Any) -> None:
    """Register every NamedTuple class in `tree` (ours and optax's states) for
    `jax.export` serialisation, once each, under its module-qualified name."""
    def visit(node: Any) -> None:
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            _register_namedtuple(type(node))
        if isinstance(node, dict):
            for child in node.values():
                visit(child)
        elif isinstance(node, (list, tuple)):
            for child in node:
                visit(child)

    visit(tree)


_REGISTERED: set[type] = set()

# A serialised step names the NamedTuples of its arguments, and `jax.export.deserialize`
# refuses a name nobody registered: registering only at export left a file that no other
# process could read back. So importing jaxstyle registers every NamedTuple a step's
# arguments may hold: ours, and each one optax exports (its optimizers' states).
for _cls in (Targets, StyleState, ScaleByKerasAdamState, *vars(optax).values()):
    if isinstance(_cls, type) and issubclass(_cls, tuple) and hasattr(_cls, "_fields"):
        _register_namedtuple(_cls)
del _cls


def make_step(cfg: StyleConfig, batched: bool = False, shardings: Optional[StepShardings] = None,
              donate: bool = True,
              optimizer: Optional[optax.GradientTransformation] = None) -> CompiledStep:
    """The jit-compiled `step(params, targets, state) -> (state, metrics)`.

    donate: the state's buffers are reused for the new state (fast, in place); the caller's
        old state is then invalid. `donate=False` keeps it, for comparisons and debugging.
    optimizer: any optax transformation in place of the config's (give the same one to
        `init_state`). The step prepares plain params itself (`prepare_params`, cached).

        step = make_step(cfg, optimizer=optax.chain(optax.clip(0.1), optax.adam(0.02)))
        state, metrics = step(params, targets, state)

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, photo, painting, cfg)
    >>> step = jaxstyle.make_step(cfg)
    >>> state, metrics = step(params, targets, jaxstyle.init_state(photo, cfg))
    >>> int(state.step), sorted(metrics)
    (1, ['content', 'finite', 'loss', 'style', 'tv'])
    """
    return CompiledStep(cfg, batched, shardings, donate, optimizer)


__all__ = ["CompiledStep", "StyleState", "image_of_latent", "init_state", "initial_image",
           "latent_of_image", "logit", "make_step",
           "make_step_fn", "output_image"]
