"""Engine 3's decoder training settings and state: `DecoderConfig` (frozen, hashable: the step
binds it by closure), the reconstruction pre-training preset, `DecoderState` and its optimiser
(one learning rate per part when the distilled encoder trains too)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxstyle._types import ParamTree
from jaxstyle.arbitrary.decoder import LEVEL_LAYERS, init_decoder
from jaxstyle.errors import ConfigError
from jaxstyle.training import check_settings
from jaxstyle.vgg import MIN_SIDE

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Settings of one decoder training run. Frozen and hashable (bound into the step)."""

    size: int = 256               # side of the square crops of photos and style images, px
    batch: int = 8                # photo/style pairs per step, over all devices and hosts
    steps: int = 160_000          # Huang & Belongie: 160k steps of batch 8 (MS-COCO, WikiArt)
    learning_rate: float = 1e-4   # Adam, as Huang & Belongie
    lr_decay: float = 5e-5        # their inverse-time decay: lr / (1 + decay * step)
    width: float = 1.0            # channel multiplier of the decoder (1.0: 256/128/64)
    content_weight: float = 1.0
    style_weight: float = 10.0    # Huang & Belongie's lambda
    # The Gram matrix (channel second moments) at relu4_1, against the style image's: the
    # cross-channel correlations that AdaIN's per-channel mean and std leave out. 0 in Huang &
    # Belongie. The seed loss that scores every engine (and that Gatys and engine 2 minimise)
    # takes raw Grams at block1..5_conv1; on paintings 99% of it is relu4_1's, where the
    # shipped decoder's output fell short (BENCHMARKS.md, "Arbitrary style ... quality").
    gram_weight: float = 0.0
    # AdaIN strength of the training targets: 1 Huang & Belongie's, 0 the photo's own
    # features (reconstruction, with the style terms usually 0 too: `reconstruction`).
    alpha: float = 1.0
    pixel_weight: float = 0.0       # mean squared pixel error against the photo, [0, 1] units
    perceptual_weight: float = 0.0  # the same for normalised relu1_1..relu3_1 features
    # Anchors on what a person sees (issue 18), both 0 in Huang & Belongie: the layout (1 -
    # the correlation of 8 px block luminance with the photo's, `losses.layout_decorrelation`:
    # where the big shapes are, not how light they are, which AdaIN takes from the painting)
    # and the grid (`losses.grid_loss`: edge strength tied to the 8 px period of the three
    # x2 upsamplings, beyond the photo's own).
    layout_weight: float = 0.0
    grid_weight: float = 0.0
    # A distilled encoder's own training (`train-decoder --encoder`): its Adam learning rate
    # (0: frozen, the decoder alone learns) and the weight of its distillation loss on the
    # photos (the embedded features against VGG19's, `encoder.distill_loss`), which keeps
    # the relu4_1 embedding that carries the content target true to VGG19.
    encoder_learning_rate: float = 0.0
    distill_weight: float = 0.0
    # None: the AdaIN decoder at relu4_1. 1..5: a WCT level's decoder (relu{level}_1 ->
    # image), which only learns to reconstruct (`jaxstyle.arbitrary.wct` does the style).
    level: Optional[int] = None
    seed: int = 0
    checkpoint_every: int = 1000
    keep: int = 3
    preview_every: int = 500
    log_every: int = 10

    def __post_init__(self):
        check_settings(self, counts=("batch", "steps", "keep", "log_every"),
                       nonnegative_ints=("checkpoint_every", "preview_every", "seed"),
                       positive_numbers=("learning_rate", "width"),
                       nonnegative_numbers=("lr_decay", "content_weight", "style_weight",
                                            "gram_weight", "pixel_weight",
                                            "perceptual_weight", "layout_weight",
                                            "grid_weight", "encoder_learning_rate",
                                            "distill_weight"))
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if not isinstance(self.size, int) or self.size < MIN_SIDE or self.size % 8:
            raise ConfigError(f"size must be a multiple of 8 and >= {MIN_SIDE}, got "
                              f"{self.size!r}")
        if self.level is not None:
            if self.level not in LEVEL_LAYERS:
                raise ConfigError(f"level must be 1-5, got {self.level!r}")
            if self.uses_style_images:
                raise ConfigError("a WCT level's decoder only learns to reconstruct: alpha, "
                                  "style and Gram weights must be 0 (--reconstruct)")
            if self.size % 2 ** (self.level - 1):
                raise ConfigError(f"size must be a multiple of {2 ** (self.level - 1)} at "
                                  f"level {self.level}")

    def replace(self, **changes: Any) -> DecoderConfig:
        return dataclasses.replace(self, **changes)

    @property
    def trains_encoder(self) -> bool:
        """Whether a distilled encoder learns with the decoder (its params join the state)."""
        return self.encoder_learning_rate > 0

    @property
    def decoder_level(self) -> int:
        """The VGG level the decoder inverts: 4 (relu4_1) for AdaIN."""
        return 4 if self.level is None else self.level

    @property
    def uses_style_images(self) -> bool:
        """False for pure reconstruction: no term looks at a style image."""
        return self.alpha > 0 or self.style_weight > 0 or self.gram_weight > 0


# Reconstruction pre-training's terms. Pixel errors of a few percent (PSNR 25 dB: MSE 3e-3)
# must weigh against relu4_1 errors of order 0.1 on normalised features, so the pixel term is
# scaled up; the perceptual layers are normalised like relu4_1 (`FEATURE_MEANS`).
RECONSTRUCTION = {"alpha": 0.0, "style_weight": 0.0, "gram_weight": 0.0, "pixel_weight": 10.0,
                  "perceptual_weight": 1.0}
PERCEPTUAL_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1")


def perceptual_layers(level: int) -> tuple[str, ...]:
    """The perceptual term's layers for a level's decoder: every level shallower than it
    (relu1_1..relu3_1 at relu4_1, as before; none at relu1_1, where the pixels are the rest)."""
    return tuple(LEVEL_LAYERS[k] for k in range(1, level))

class DecoderState(NamedTuple):
    """Everything a step changes: params, Adam's state, steps taken (int32)."""

    params: Any
    opt_state: Any
    step: Array


def make_optimizer(cfg: DecoderConfig) -> optax.GradientTransformation:
    """Adam with inverse-time decay; when the encoder trains too (params {decoder, encoder}),
    each part gets its own learning rate (Adam is blind to a gradient's scale, so the rates
    must differ in the optimiser, not in the loss)."""
    def adam(rate):
        return optax.adam(lambda step: rate / (1.0 + cfg.lr_decay * step))

    if not cfg.trains_encoder:
        return adam(cfg.learning_rate)
    return optax.multi_transform(
        {"decoder": adam(cfg.learning_rate), "encoder": adam(cfg.encoder_learning_rate)},
        lambda params: {part: jax.tree.map(lambda _, label=part: label, tree)
                        for part, tree in params.items()})


def init_decoder_state(cfg: DecoderConfig, params: Optional[ParamTree] = None,
                       in_channels: Optional[int] = None,
                       encoder: Optional[dict] = None) -> DecoderState:
    """Fresh training state: a new decoder (for features of `in_channels`), or `params`
    (fine-tuning) with a fresh Adam. When `cfg.trains_encoder`, the state's params are
    {"decoder", "encoder"}, with `encoder` the distilled encoder's params."""
    if params is None:
        params = init_decoder(cfg.seed, cfg.width, in_channels, level=cfg.decoder_level)
    if cfg.trains_encoder:
        if encoder is None:
            raise ConfigError("encoder_learning_rate > 0 needs a distilled encoder (--encoder)")
        params = {"decoder": params, "encoder": encoder}
    state = DecoderState(params, make_optimizer(cfg).init(params), jnp.zeros([], jnp.int32))
    # The step donates the state, so no two leaves may share a buffer.
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


__all__ = ["PERCEPTUAL_LAYERS", "RECONSTRUCTION", "DecoderConfig", "DecoderState",
           "init_decoder_state", "make_optimizer", "perceptual_layers"]
