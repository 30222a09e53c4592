"""Engine 2's training settings and state: `FeedForwardConfig` (frozen, hashable: the step
binds it by closure), `TrainState` (the pytree a step changes and a checkpoint saves), the
network being trained, its optimiser and its initial state."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxstyle._types import ParamTree
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError
from jaxstyle.feedforward.network import TransformerNet, init_params
from jaxstyle.training import check_settings
from jaxstyle.vgg import MIN_SIDE

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

    Example:

    >>> cfg = jaxstyle.FeedForwardConfig(size=64, batch=2, num_styles=3, style_size=128)
    >>> cfg.style_side, cfg.loss.content_layers
    (128, ('block3_conv3', 'block5_conv2'))
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

    def replace(self, **changes: Any) -> FeedForwardConfig:
        return dataclasses.replace(self, **changes)


class TrainState(NamedTuple):
    """Everything a step changes; a pytree, saved whole by orbax.

    params: the network's params dict. opt_state: Adam's state. step: steps taken (int32).
    key: PRNG key data (uint32[2], threefry) for the stability term's random motions; raw
    data rather than a typed key so any checkpointer can store it.

    Example:

    >>> cfg = jaxstyle.FeedForwardConfig(size=64, width=0.25)
    >>> state = jaxstyle.feedforward.init_train_state(cfg)
    >>> state._fields, int(state.step), state.key.dtype
    (('params', 'opt_state', 'step', 'key'), 0, dtype('uint32'))
    """

    params: Any
    opt_state: Any
    step: Array
    key: Array


def network(cfg: FeedForwardConfig) -> TransformerNet:
    """The module being trained; its convs run in bfloat16 when the loss's precision is bf16."""
    dtype = jnp.bfloat16 if cfg.loss.precision == "bf16" else jnp.float32
    return TransformerNet(num_styles=cfg.num_styles, width=cfg.width, dtype=dtype,
                          identity_start=cfg.identity_start)


def make_optimizer(cfg: FeedForwardConfig) -> optax.GradientTransformation:
    """Adam with optax's semantics (eps 1e-8), as Johnson et al. trained."""
    return optax.adam(cfg.learning_rate)


def init_train_state(cfg: FeedForwardConfig, params: Optional[ParamTree] = None) -> TrainState:
    """Fresh network params (from `cfg.seed`) or `params` (continuing a trained model), a
    fresh Adam state, step 0 and the stability key.

    Example:

    >>> cfg = jaxstyle.FeedForwardConfig(size=64, width=0.25)
    >>> model = jaxstyle.feedforward.init_params(1, width=0.25, identity_start=True)
    >>> state = jaxstyle.feedforward.init_train_state(cfg, params=model)
    >>> bool(jnp.array_equal(state.params["output"]["kernel"], model["output"]["kernel"]))
    True
    """
    if params is None:
        params = init_params(cfg.seed, cfg.num_styles, cfg.width, size=cfg.size,
                             identity_start=cfg.identity_start)
    state = TrainState(params, make_optimizer(cfg).init(params), jnp.zeros([], jnp.int32),
                       jax.random.key_data(jax.random.key(cfg.seed)))
    # The step donates the state, so no two leaves may share a buffer.
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


__all__ = ["DEFAULT_CONTENT_LAYERS", "DEFAULT_CONTENT_LAYER_WEIGHTS", "DEFAULT_LOSS",
           "FeedForwardConfig", "TrainState", "init_train_state", "make_optimizer", "network"]
