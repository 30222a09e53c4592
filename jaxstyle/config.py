"""StyleConfig: every setting of a run, with the seed's defaults, validated on construction."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from jaxstyle._types import ArrayLike
from jaxstyle.errors import ConfigError
from jaxstyle.vgg import LAYER_NAMES, MIN_SIDE

DEFAULT_CONTENT_LAYERS = ("block5_conv2",)
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1",
                        "block5_conv1")
OPTIMIZERS = ("adam", "adam-optax", "lbfgs")
# How L-BFGS keeps the image in [0, 1]: it optimises an unconstrained latent mapped into the
# box (jaxstyle.gatys.state.image_of_latent). "sigmoid" flattens towards 0 and 1, so a pixel
# that starts near either end barely moves; "reflect" (the default since issue 36) folds the
# latent back into the box like a triangle wave, slope +-1 everywhere. Measured on tuning
# pairs at 256 px, 300 L-BFGS steps: 0.64x the sigmoid's loss on a photo with 47% clipped
# values, 0.99x on one with 0.8% (BENCHMARKS.md, "Issue 36").
LBFGS_BOXES = ("sigmoid", "reflect")
PRECISIONS = ("fp32", "bf16")
# jax.default_matmul_precision names: on GPU/TPU, "default" lets JAX run float32 matmuls and
# convolutions as TF32 or bf16 passes; "highest" keeps true float32 (the seed's numbers).
MATMUL_PRECISIONS = ("highest", "high", "default")
POOLINGS = ("max", "avg")
INITS = ("content", "noise")
PRESERVE_COLOR = (None, "luminance", "histogram")


# Groups of the command line's options, in the order `--help` shows them.
SIZE, LOSS, ART, OPTIM = "size and length", "loss", "artistic controls", "optimizer"


def _option(default: Any, group: str, kind: str, help: Optional[str] = None,
            **extra: Any) -> Any:
    """A config field that is also a command-line option; the CLI reads all of it from here.

    kind: how the CLI parses it: 'count' (int >= 1), 'int', 'float', 'flag', 'choice',
    'layers' (comma-separated names), 'floats' (comma-separated), 'floats+' / 'ints+' (several
    arguments), 'init' (content|noise|PATH).
    """
    return dataclasses.field(default=default, metadata=dict(group=group, kind=kind, help=help,
                                                            **extra))


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """All settings of one stylization. Defaults reproduce the TensorFlow tutorial (the seed).

    Frozen and hashable, so it can be bound into a jitted step by closure.

    Example:

    >>> cfg = jaxstyle.StyleConfig(epochs=2, style_layers="block1_conv1,block2_conv1")
    >>> cfg.style_layers, cfg.total_steps
    (('block1_conv1', 'block2_conv1'), 200)
    >>> cfg.replace(steps=5).total_steps
    5
    """

    # Loss.
    content_layers: tuple[str, ...] = _option(DEFAULT_CONTENT_LAYERS, LOSS, "layers",
                                              "comma-separated VGG19 layer names")
    style_layers: tuple[str, ...] = _option(DEFAULT_STYLE_LAYERS, LOSS, "layers",
                                            "comma-separated VGG19 layer names")
    content_weight: float = _option(1e4, LOSS, "float", "weight of the content loss")
    style_weight: float = _option(1e-2, LOSS, "float", "weight of the style (Gram) loss")
    tv_weight: float = _option(4e-4, LOSS, "float",
                               "weight of total variation (smoothness)")
    pooling: str = _option("max", LOSS, "choice", "VGG19's pooling layers: max (as trained) or "
                           "average", choices=POOLINGS)
    # Per-layer weights; None means the seed's equal average over the layers.
    content_layer_weights: Optional[tuple[float, ...]] = _option(
        None, ART, "floats", "per content layer weights (default: equal)", metavar="W,W,...")
    style_layer_weights: Optional[tuple[float, ...]] = _option(
        None, ART, "floats", "per style layer weights (default: equal)", metavar="W,W,...")
    # Blend weights of several style images; None means equal.
    style_blend: Optional[tuple[float, ...]] = _option(
        None, ART, "floats+", "blend weights of the style images (default: equal)", metavar="W")
    # Optimizer (the seed: Adam with Keras semantics, lr 0.02, beta1 0.99, eps 0.1).
    optimizer: str = _option("adam", OPTIM, "choice",
                             "adam: Keras/TF semantics (the seed); lbfgs: optax L-BFGS on a "
                             "latent kept between black and white by --lbfgs-box",
                             choices=OPTIMIZERS)
    learning_rate: float = _option(0.02, OPTIM, "float", "Adam's step size (lbfgs: unused, a "
                                   "line search picks it)")
    beta1: float = _option(0.99, OPTIM, "float", "Adam's first-moment decay")
    beta2: float = _option(0.999, OPTIM, "float", "Adam's second-moment decay")
    epsilon: float = _option(0.1, OPTIM, "float", "Adam's epsilon (as Keras adds it)")
    lbfgs_memory: int = _option(10, OPTIM, "count", "L-BFGS: how many past steps shape its "
                                "curvature estimate")
    lbfgs_box: str = _option("reflect", OPTIM, "choice", "L-BFGS: how the image is kept "
                             "between black and white: the sigmoid of a latent, or the latent "
                             "folded back at both ends (reflect: no pixel is slowed near "
                             "black or white)",
                             choices=LBFGS_BOXES)
    # Stopping rules, checked every STOP_CHECK_EVERY steps of the last scale; None: off.
    stop_loss: Optional[float] = _option(None, OPTIM, "float", "stop once the loss is at most "
                                         "this", metavar="LOSS")
    stop_improvement: Optional[float] = _option(
        None, OPTIM, "float", "stop once the loss fell by less than this fraction over the "
        "last --stop-window steps (e.g. 0.002)", metavar="FRACTION")
    stop_window: int = _option(50, OPTIM, "count", "steps over which --stop-improvement is "
                               "measured")
    epochs: int = _option(10, SIZE, "count", "epochs of --steps-per-epoch steps")
    steps_per_epoch: int = _option(100, SIZE, "count", "optimizer steps per epoch")
    steps: Optional[int] = _option(None, SIZE, "count",
                                   "total steps, overriding --epochs x --steps-per-epoch")
    # A budget that grows with the image (the fast preset's): larger images converge in more
    # L-BFGS steps. Resolved once the working size is known (`sized_budget`).
    steps_growth: float = _option(0.0, SIZE, "float", "grow the step budget for images over "
                                  "256x256 pixels: steps x (pixels / 256^2)^G (0: the same "
                                  "steps at any size)", metavar="G")
    # Exponential moving average of the image (None: off); the average is the output.
    ema: Optional[float] = _option(None, OPTIM, "float", "output an exponential moving average "
                                   "of the image (e.g. 0.99)", metavar="DECAY")
    # Images.
    max_dim: int = _option(512, SIZE, "count", "longer side of the output, px (images are "
                           "only shrunk)")
    style_max_dim: Optional[int] = _option(None, SIZE, "count", "longer side limit for style "
                                           "images, px (default: --max-dim)")
    style_scale: float = _option(1.0, ART, "float", "style image size relative to the output's")
    init: str = _option("content", OPTIM, "init", "start from the content image, seeded noise, "
                        "an image file, or a one-pass model's result on the content (any, "
                        "wct, paintings:starry_night or a .jxs file; the CLI runs it)",
                        metavar="content|noise|PATH|MODEL")
    seed: int = _option(0, OPTIM, "int", "random seed (of --init noise)")
    preserve_color: Optional[str] = _option(None, ART, "choice", "keep the content's colours "
                                            "(Gatys et al. 2016)",
                                            choices=tuple(c for c in PRESERVE_COLOR if c))
    # Coarse-to-fine: optimise at 1/scale_factor^(scales-1) size first.
    scales: int = _option(1, ART, "count", "coarse-to-fine: optimise at 1/f^(N-1) size first")
    scale_factor: float = _option(2.0, ART, "float", "size ratio f between successive "
                                  "--scales")
    # Steps at each scale; None: total_steps each.
    scale_steps: Optional[tuple[int, ...]] = _option(
        None, ART, "ints+", "steps at each scale, coarsest first (default: all steps at each)",
        metavar="N")
    # Resize Adam's moments to the next scale instead of resetting them.
    carry_optimizer: bool = _option(False, ART, "flag", "resize Adam's moments to the next "
                                    "scale instead of resetting them")
    # Network and numerics.
    precision: str = _option("fp32", OPTIM, "choice", "bf16: convolutions in bfloat16, losses "
                             "and optimizer in fp32", choices=PRECISIONS)
    matmul_precision: str = _option(
        "highest", OPTIM, "choice", "float32 matmul/conv precision on GPU/TPU: highest is true "
        "float32 (the seed's numbers); high or default let JAX use TF32/bf16 passes, faster "
        "and less exact (CPUs compute float32 either way)", choices=MATMUL_PRECISIONS)
    remat: bool = _option(False, OPTIM, "flag", "recompute activations in the backward pass "
                          "(less memory)")

    def __post_init__(self):
        # NumPy and JAX scalars are stored as Python numbers, so the config stays hashable
        # and compares equal to one built from plain numbers; "a,b" layer lists are split.
        # Sequences (lists, tuples, 1-D NumPy or JAX arrays) become tuples of them.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.metadata.get("kind") == "layers" and isinstance(value, str):
                value = tuple(name.strip() for name in value.split(",") if name.strip())
            elif isinstance(value, (list, tuple)) or getattr(value, "ndim", None) == 1:
                value = tuple(_python_scalar(v) for v in value)
            else:
                value = _python_scalar(value)
            object.__setattr__(self, field.name, value)
        check_config(self)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> StyleConfig:
        """The config of a named preset (`PRESETS`), with `changes` on top.

        `seed` is the TensorFlow tutorial's recipe (the defaults); `fast` is the shortest
        route measured to the seed's own 1000-step loss (BENCHMARKS.md, issue 36).

        Example:

        >>> fast = jaxstyle.StyleConfig.preset("fast", max_dim=256)
        >>> fast.optimizer, fast.max_dim
        ('lbfgs', 256)
        >>> jaxstyle.StyleConfig.preset("seed") == jaxstyle.StyleConfig()
        True
        """
        return cls(**{**preset_fields(name, set(changes)), **changes})

    @property
    def total_steps(self) -> int:
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch

    def replace(self, **changes: Any) -> StyleConfig:
        return dataclasses.replace(self, **changes)


# Named starting points (`StyleConfig.preset`, `jaxstyle stylize --preset`): the fields each
# sets; options given beside a preset override it. `fast` was chosen by measurement on the
# tuning pairs (never the held-out paintings): see BENCHMARKS.md, "Issue 36".
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {},
    # L-BFGS (one evaluation per accepted step) with a long memory, on the reflected box. On
    # the tuning pair at 256 px (coffee x The Starry Night, the seed loss / the seed's
    # 1000-step loss): memory 10 1.06x at 300 steps, 20 1.05x, 50 1.04x; the sigmoid box 1.00x
    # at 400, the reflected one 0.99x at 400, 0.96x at 500 and 0.95x at 600. On two more tuning
    # pairs (coffee x The Shipwreck, coffee x Woman with a Hat) 500 steps gave 0.99x and 0.98x
    # but 600 gave 0.97x and 0.96x: 600 is the budget, a margin of 3% or more on every tuning
    # pair for pairs that converge slower. The stop rule ends a run that has converged
    # sooner; an ordinary run still falls ~2% per 50 steps at 500.
    # Larger images need more steps: coffee x The Shipwreck (the slowest tuning pair at 256
    # px, 0.973x at 600) is 0.981x at 600 steps at 512x341, 0.965x at 700, 0.942x at 900 and
    # 0.934x at 1000. A 2.5% margin there (700 steps, growth 0.16) proved too thin: the
    # paintings spread wider at 512 px than at 256 (the held-out Udnie pair ended 2.1% over
    # at 750 steps on 512x512). The growth now leaves a 6% margin on the tuning pair: 930-940
    # steps at 512x341 (2.66x the pixels of 256x256), 600 x 2.66^0.45, so steps_growth 0.45
    # (512x512: 1120 steps; 1024x768: 1840, an extrapolation). Above ~950 steps a fast run
    # costs about what the seed's 1000 Adam steps do: the preset buys the seed's picture
    # sooner at 256 px, and at 512 px mostly its smoother, photo-keeping result.
    "fast": dict(optimizer="lbfgs", lbfgs_memory=50, lbfgs_box="reflect", steps=600,
                 steps_growth=0.45, stop_improvement=0.002, stop_window=50),
}


# The fields that set a run's length. A user who gives one of them beside a preset asks for
# that many steps, so the preset's budget growth is dropped with its own length.
LENGTH_FIELDS = ("steps", "epochs", "steps_per_epoch", "scale_steps")
BUDGET_REFERENCE_PIXELS = 256 * 256  # steps_growth scales the budget from this image size up


def preset_fields(name: str, given: set[str]) -> dict[str, Any]:
    """The fields preset `name` sets that `given` (the fields the caller sets itself) leaves
    to it. Giving a run's length (steps, epochs, ...) also takes over `steps_growth`.

    Example:

    >>> import jaxstyle.config
    >>> sorted(jaxstyle.config.preset_fields("fast", {"steps"}))[:3]
    ['lbfgs_box', 'lbfgs_memory', 'optimizer']
    >>> "steps_growth" in jaxstyle.config.preset_fields("fast", {"steps"})
    False
    """
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {tuple(PRESETS)}, got {name!r}")
    if given & set(LENGTH_FIELDS):
        given = given | {"steps_growth"}
    return {key: value for key, value in PRESETS[name].items() if key not in given}


def sized_budget(cfg: StyleConfig, height: int, width: int) -> StyleConfig:
    """`cfg` with its step budget fixed for an image of height x width: `steps` (or epochs x
    steps_per_epoch) x (pixels / 256^2)^steps_growth above 256x256 pixels, rounded up to 10,
    and steps_growth 0 (so resolving twice changes nothing). Without growth, `cfg` itself.

    Example:

    >>> cfg = jaxstyle.StyleConfig(optimizer="lbfgs", steps=600, steps_growth=0.3)
    >>> jaxstyle.sized_budget(cfg, 256, 171).steps, jaxstyle.sized_budget(cfg, 512, 512).steps
    (600, 910)
    """
    if not cfg.steps_growth:
        return cfg
    ratio = max(1.0, height * width / BUDGET_REFERENCE_PIXELS)
    steps = 10 * math.ceil(cfg.total_steps * ratio ** cfg.steps_growth / 10)
    return cfg.replace(steps=steps, steps_growth=0.0)


def _python_scalar(value):
    """A NumPy or JAX scalar (0-d array) as the Python number it holds; anything else as is."""
    if isinstance(value, np.generic):  # before the Python types: np.float64 is a float
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if (getattr(value, "shape", None) == ()
                                         and hasattr(value, "item")):
        try:
            return value.item()
        except Exception:  # an abstract value under jax.jit: check_config names the field
            return value
    return value


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


def _check_layer_weights(name: str, weights: Optional[Sequence[float]],
                         layers: Sequence[str]) -> None:
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
    if cfg.stop_loss is not None:
        _check_weight("stop_loss", cfg.stop_loss)
    if cfg.stop_improvement is not None:
        _check_weight("stop_improvement", cfg.stop_improvement)
    for name in ("lbfgs_memory", "stop_window"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if (not isinstance(cfg.steps_growth, (int, float)) or not math.isfinite(cfg.steps_growth)
            or not 0 <= cfg.steps_growth <= 1):
        raise ConfigError(f"steps_growth must be a number in [0, 1], got {cfg.steps_growth!r}")
    if cfg.steps_growth and cfg.scale_steps is not None:
        raise ConfigError("steps_growth grows `steps`, not scale_steps: pass steps_growth=0 "
                          "with scale_steps")
    if cfg.steps is not None and (not isinstance(cfg.steps, int) or cfg.steps < 1):
        raise ConfigError(f"steps must be an integer >= 1, got {cfg.steps!r}")
    for name in ("max_dim", "style_max_dim"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, int) or value < MIN_SIDE):
            raise ConfigError(f"{name} must be an integer >= {MIN_SIDE}, got {value!r}")
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
                          ("matmul_precision", MATMUL_PRECISIONS),
                          ("pooling", POOLINGS), ("init", INITS), ("lbfgs_box", LBFGS_BOXES),
                          ("preserve_color", PRESERVE_COLOR)):
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")


def normalised_blend(weights: ArrayLike | Sequence[float], count: int,
                     counted: str = "styles") -> np.ndarray:
    """Blend weights for `count` styles, one each, >= 0 and not all zero, scaled to sum 1.

    Shared by the trained models (`--style-blend` over a model's styles) and engine 3 (over
    the style images given), so both check and scale the same way. Raises ConfigError.
    """
    values = np.asarray(weights, np.float64)
    if values.shape != (count,):
        raise ConfigError(f"{count} {counted} need {count} blend weights, got {values.size}")
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise ConfigError(f"blend weights must be >= 0 and not all zero, got {list(values)}")
    return (values / values.sum()).astype(np.float32)
