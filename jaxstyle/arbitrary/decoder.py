"""The decoders of engine 3: VGG19 features at one level -> image, the encoder's mirror image.

Huang & Belongie's decoder (and Li et al.'s for WCT, which is the same network at relu4_1),
with a width multiplier: reflection-padded 3x3 convs and ReLUs, a nearest-neighbour x2
upsampling before each resolution change (no transposed convs: they paint checkerboards), no
normalisation layer (it would wash out the very statistics AdaIN and WCT set). The decoder
of level k mirrors VGG19 from relu{k}_1 back to the pixels; with w the width multiplier:

    relu5_1 (512, H/16) -> 512w -> x2 -> 512w, 512w, 512w ->          (level 5 only)
    relu4_1 (512, H/8)  -> 256w -> x2 -> 256w, 256w, 256w ->          (levels 4-5)
    relu3_1 (256, H/4)  -> 128w -> x2 -> 128w ->                      (levels 3-5)
    relu2_1 (128, H/2)  ->  64w -> x2 ->  64w ->                      (levels 2-5)
    relu1_1 (64, H)     ->  3, sigmoid

Params are flax's plain nested dict: conv{0..}/kernel (3,3,Cin,Cout), conv{0..}/bias, numbered
from the decoder's own first conv (level 4: conv0..conv8, as every AdaIN decoder file has).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxstyle.layers import ReflectConv, upsample_nearest

ENCODER_LAYER = "block4_conv1"  # relu4_1: where AdaIN happens
ENCODER_CHANNELS = 512
ENCODER_DOWNSAMPLING = 8  # three 2x2 poolings before block4
# The five levels of Li et al.'s WCT: relu{k}_1 is VGG19's block{k}_conv1 (post-ReLU), the
# very layers the seed's style loss scores. (layer, channels, downsampling) per level.
LEVEL_LAYERS = {1: "block1_conv1", 2: "block2_conv1", 3: "block3_conv1", 4: "block4_conv1",
                5: "block5_conv1"}
LEVEL_CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
# Mean activation of the encoder's layers over photos (coffee, chelsea and The Starry Night at
# 256 px, rounded): this VGG19 takes 0-255 BGR input, so relu4_1 averages ~600 with an RMS
# ~1000. Dividing by these gives every layer a mean near 1, as in the "normalised" VGG that
# Huang & Belongie trained with: the decoder's first conv then starts with unit-sized inputs
# (not saturating its sigmoid output at once), and the style loss weighs the layers evenly
# as their lambda assumes, rather than relu4_1 dominating relu1_1 by (600/25)^2.
# relu5_1's (the same three images, 2026-12-02: 64, 43, 61) is a tenth of relu4_1's: without
# its own entry a level-5 decoder's input would start ten times too small.
FEATURE_MEANS = {"block1_conv1": 25.0, "block2_conv1": 130.0, "block3_conv1": 140.0,
                 "block4_conv1": 600.0, "block5_conv1": 55.0}
BASE_CHANNELS = (256, 128, 64)  # level 4's decoder at H/4, H/2 and H, width 1
CHANNEL_MULTIPLE = 8
# Level 5's decoder, conv by conv: (base output channels, upsample after it); the last conv
# (to RGB) is separate. Level k's decoder is the tail from _LEVEL_START[k]. Level 5's fourth
# conv gives relu4_1's own 512 channels at every width (-512: not scaled), so level 5 can
# start as a fresh head on a trained level-4 decoder (`train-decoder --level 5 --init`).
_FULL_LAYOUT = ((512, True), (512, False), (512, False), (-512, False),
                (256, True), (256, False), (256, False), (256, False),
                (128, True), (128, False), (64, True), (64, False))
_LEVEL_START = {5: 0, 4: 4, 3: 8, 2: 10, 1: 12}


def level_number(level: int | str) -> int:
    """1..5 from 1..5, 'relu3_1' or 'block3_conv1'; ValueError otherwise."""
    names = {**{f"relu{k}_1": k for k in LEVEL_LAYERS},
             **{layer: k for k, layer in LEVEL_LAYERS.items()}}
    if isinstance(level, str) and level.strip().isdigit():
        level = int(level)
    if isinstance(level, int) and not isinstance(level, bool) and level in LEVEL_LAYERS:
        return level
    if isinstance(level, str) and level in names:
        return names[level]
    raise ValueError(f"level must be 1-5 or relu1_1 .. relu5_1, got {level!r}")


def level_name(level: int) -> str:
    """'relu3_1' for 3."""
    return f"relu{level_number(level)}_1"


def _layout(level: int) -> tuple[tuple[int, bool], ...]:
    return _FULL_LAYOUT[_LEVEL_START[level]:]


def _scaled(base: int, width: float) -> int:
    return max(CHANNEL_MULTIPLE, int(base * width / CHANNEL_MULTIPLE + 0.5) * CHANNEL_MULTIPLE)


def _channels(base: int, width: float) -> int:
    """A layout entry's channels: base * width, or -base itself for an unscaled entry."""
    return -base if base < 0 else _scaled(base, width)


def decoder_channels(width: float) -> tuple[int, int, int]:
    """Level 4's channels at H/4, H/2, H: base * width rounded to a multiple of 8, at least 8.

    Example:

    >>> jaxstyle.arbitrary.decoder_channels(1.0), jaxstyle.arbitrary.decoder_channels(0.25)
    ((256, 128, 64), (64, 32, 16))
    """
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    quarter, half, full = (_scaled(base, width) for base in BASE_CHANNELS)
    return quarter, half, full


class Decoder(nn.Module):
    """(N, h, w, C) relu{level}_1 features -> (N, f h, f w, 3) float32 image in (0, 1), with f
    the level's downsampling (8 at relu4_1).

    C is VGG19's (512 at relu4_1), or a distilled encoder's fewer
    (`jaxstyle.arbitrary.encoder`); the first conv's kernel has that many inputs.

    Example:

    >>> net = jaxstyle.arbitrary.Decoder(width=0.25)
    >>> decoder = jaxstyle.arbitrary.init_decoder(0, width=0.25)
    >>> jax.jit(net.apply)({"params": decoder}, jnp.ones((1, 4, 4, 512))).shape  # 8x the size
    (1, 32, 32, 3)
    """

    width: float = 1.0
    dtype: DTypeLike = jnp.float32  # compute dtype of the convs; the output stays float32
    level: int = 4                  # 4: the AdaIN decoder; 1..5 for WCT's chain

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        if features.ndim != 4:
            raise ValueError(f"features must be (N, h, w, C), got {features.shape}")
        layout = _layout(self.level)
        x = (features / FEATURE_MEANS[LEVEL_LAYERS[self.level]]).astype(self.dtype)
        for i, (base, upsample) in enumerate(layout):
            x = nn.relu(ReflectConv(_channels(base, self.width), 3, dtype=self.dtype,
                                    name=f"conv{i}")(x))
            if upsample:
                x = upsample_nearest(x)
        x = ReflectConv(3, 3, dtype=self.dtype, name=f"conv{len(layout)}")(x)
        # A sigmoid keeps every pixel's gradient alive (a clip would zero it past the edge),
        # and puts the output in [0, 1] with no clip; the same choice as engine 2's network.
        return jax.nn.sigmoid(x.astype(jnp.float32))


def init_decoder(seed: int | jax.Array, width: float = 1.0,
                 in_channels: Optional[int] = None, level: int = 4) -> dict:
    """Fresh params (the inner `params` dict) of Decoder(width, level) for features of
    `in_channels` (default: VGG19's at that level); see `_compiled_init`.

    Example:

    >>> decoder = jaxstyle.arbitrary.init_decoder(0, width=0.25)
    >>> decoder["conv0"]["kernel"].shape  # 3x3 from VGG19's 512 relu4_1 channels
    (3, 3, 512, 64)
    """
    key = jax.random.key(seed, impl="rbg") if isinstance(seed, int) else seed
    channels = LEVEL_CHANNELS[level] if in_channels is None else int(in_channels)
    return _compiled_init(float(width), channels, level)(key)["params"]


@functools.lru_cache(maxsize=8)
def _compiled_init(width: float, in_channels: int, level: int = 4) -> Callable:
    """key -> variables, all initialisers in one compiled program (fast to compile with rbg)."""
    example = jnp.zeros((1, 4, 4, in_channels), jnp.float32)  # a constant in the program
    return jax.jit(lambda key: Decoder(width=width, level=level).init(key, example))


def decoder_param_shapes(width: float, in_channels: Optional[int] = None,
                         level: int = 4) -> dict:
    """The params' shapes and dtypes (ShapeDtypeStructs), with nothing computed."""
    channels = LEVEL_CHANNELS[level] if in_channels is None else int(in_channels)
    return jax.eval_shape(lambda: Decoder(width=width, level=level).init(
        jax.random.key(0), jnp.zeros((1, 4, 4, channels), jnp.float32)))["params"]


def decoder_flops_per_pixel(width: float, in_channels: Optional[int] = None,
                            level: int = 4) -> float:
    """Multiply-adds x 2 per output pixel (convs only)."""
    cin = LEVEL_CHANNELS[level] if in_channels is None else in_channels
    flops, area = 0.0, 1 / 4 ** (level - 1)  # conv0 runs at the level's resolution
    for base, upsample in _layout(level):
        cout = _channels(base, width)
        flops += 2 * 9 * cin * cout * area
        cin = cout
        if upsample:
            area *= 4
    return flops + 2 * 9 * cin * 3 * area


__all__ = ["Decoder", "ENCODER_CHANNELS", "ENCODER_DOWNSAMPLING", "ENCODER_LAYER", "FEATURE_MEANS",
           "LEVEL_CHANNELS", "LEVEL_LAYERS", "decoder_channels", "decoder_flops_per_pixel",
           "decoder_param_shapes", "init_decoder", "level_name", "level_number"]
