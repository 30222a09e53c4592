"""StyleConfig: every setting of a run, with the seed's defaults, validated on construction."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from jaxstyle.errors import ConfigError
from jaxstyle.weights import LAYER_NAMES

DEFAULT_CONTENT_LAYERS = ("block5_conv2",)
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                        "block5_conv1")
OPTIMIZERS = ("adam", "adam-optax", "lbfgs")
PRECISIONS = ("fp32", "bf16")
POOLINGS = ("max", "avg")
INITS = ("content", "noise")
PRESERVE_COLOR = (None, "luminance", "histogram")


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """All settings of one stylization. Defaults reproduce the TensorFlow tutorial (the seed).

    Frozen and hashable, so it can be bound into a jitted step by closure.
    """

    # Loss.
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    content_weight: float = 1e4
    style_weight: float = 1e-2
    tv_weight: float = 4e-4
    # Per-layer weights; None means the seed's equal average over the layers.
    content_layer_weights: Optional[tuple[float, ...]] = None
    style_layer_weights: Optional[tuple[float, ...]] = None
    # Blend weights of several style images; None means equal.
    style_blend: Optional[tuple[float, ...]] = None
    # Optimizer (the seed: Adam with Keras semantics, lr 0.02, beta1 0.99, eps 0.1).
    optimizer: str = "adam"
    learning_rate: float = 0.02
    beta1: float = 0.99
    beta2: float = 0.999
    epsilon: float = 0.1
    epochs: int = 10
    steps_per_epoch: int = 100
    steps: Optional[int] = None  # total steps, overriding epochs x steps_per_epoch
    # Exponential moving average of the image (None: off); the average is the output.
    ema: Optional[float] = None
    # Images.
    max_dim: int = 512
    style_max_dim: Optional[int] = None  # None: same as max_dim
    style_scale: float = 1.0
    init: str = "content"
    seed: int = 0
    preserve_color: Optional[str] = None
    # Coarse-to-fine: optimise at 1/scale_factor^(scales-1) size first.
    scales: int = 1
    scale_factor: float = 2.0
    scale_steps: Optional[tuple[int, ...]] = None  # steps at each scale; None: total_steps each
    carry_optimizer: bool = False  # resize Adam's moments to the next scale instead of resetting
    # Network and numerics.
    pooling: str = "max"
    precision: str = "fp32"
    remat: bool = False

    def __post_init__(self):
        for field in ("content_layers", "style_layers", "content_layer_weights",
                      "style_layer_weights", "style_blend", "scale_steps"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, field, tuple(value))
        check_config(self)

    @property
    def total_steps(self) -> int:
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch

    def replace(self, **changes) -> StyleConfig:
        return dataclasses.replace(self, **changes)


def _check_weight(name: str, value: float, positive: bool = False) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    if positive and value == 0:
        raise ConfigError(f"{name} must be > 0")


def _check_layers(name: str, layers: tuple[str, ...]) -> None:
    if not layers:
        raise ConfigError(f"{name}: at least one layer is needed")
    for layer in layers:
        if layer not in LAYER_NAMES:
            raise ConfigError(f"{name}: unknown layer {layer!r}; "
                              f"choose from {', '.join(LAYER_NAMES)}")
    if len(set(layers)) != len(layers):
        raise ConfigError(f"{name}: a layer is listed twice")


def _check_layer_weights(name: str, weights, layers) -> None:
    if weights is None:
        return
    if len(weights) != len(layers):
        raise ConfigError(f"{name}: {len(weights)} weights for {len(layers)} layers")
    for w in weights:
        _check_weight(name, w)
    if sum(weights) <= 0:
        raise ConfigError(f"{name}: weights must not all be zero")


def check_config(cfg: StyleConfig) -> None:
    """Raise ConfigError naming the first bad setting."""
    _check_layers("content_layers", cfg.content_layers)
    _check_layers("style_layers", cfg.style_layers)
    for name in ("content_weight", "style_weight", "tv_weight"):
        _check_weight(name, getattr(cfg, name))
    _check_layer_weights("content_layer_weights", cfg.content_layer_weights, cfg.content_layers)
    _check_layer_weights("style_layer_weights", cfg.style_layer_weights, cfg.style_layers)
    if cfg.style_blend is not None:
        for w in cfg.style_blend:
            _check_weight("style_blend", w)
        if sum(cfg.style_blend) <= 0:
            raise ConfigError("style_blend: weights must not all be zero")
    _check_weight("learning_rate", cfg.learning_rate, positive=True)
    _check_weight("epsilon", cfg.epsilon)
    for name in ("beta1", "beta2"):
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
    if cfg.ema is not None and not 0 <= cfg.ema < 1:
        raise ConfigError(f"ema decay must be in [0, 1), got {cfg.ema!r}")
    for name in ("epochs", "steps_per_epoch", "scales"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if cfg.steps is not None and (not isinstance(cfg.steps, int) or cfg.steps < 1):
        raise ConfigError(f"steps must be an integer >= 1, got {cfg.steps!r}")
    for name in ("max_dim", "style_max_dim"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, int) or value < 32):
            raise ConfigError(f"{name} must be an integer >= 32, got {value!r}")
    if cfg.scale_steps is not None:
        if len(cfg.scale_steps) != cfg.scales:
            raise ConfigError(f"scale_steps has {len(cfg.scale_steps)} entries for "
                              f"{cfg.scales} scales")
        if any(not isinstance(n, int) or n < 0 for n in cfg.scale_steps):
            raise ConfigError(f"scale_steps must be integers >= 0, got {cfg.scale_steps}")
    if not math.isfinite(cfg.style_scale) or cfg.style_scale <= 0:
        raise ConfigError(f"style_scale must be > 0, got {cfg.style_scale!r}")
    if not math.isfinite(cfg.scale_factor) or cfg.scale_factor <= 1:
        raise ConfigError(f"scale_factor must be > 1, got {cfg.scale_factor!r}")
    for name, allowed in (("optimizer", OPTIMIZERS), ("precision", PRECISIONS),
                          ("pooling", POOLINGS), ("init", INITS),
                          ("preserve_color", PRESERVE_COLOR)):
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")
