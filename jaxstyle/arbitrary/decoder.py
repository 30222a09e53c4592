"""The decoder of engine 3: VGG19 relu4_1 features -> image, the encoder's mirror image.

Huang & Belongie's decoder, with a width multiplier: reflection-padded 3x3 convs and ReLUs, a
nearest-neighbour x2 upsampling before each resolution change (no transposed convs: they paint
checkerboards), no normalisation layer (it would wash out the very statistics AdaIN sets).
Channels, with w the width multiplier:

    relu4_1 (512, H/8) -> 256w -> x2 -> 256w, 256w, 256w -> 128w -> x2 -> 128w -> 64w -> x2
      -> 64w -> 3, sigmoid

Params are flax's plain nested dict: conv{0..8}/kernel (3,3,Cin,Cout), conv{0..8}/bias.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxstyle.layers import ReflectConv, upsample_nearest

ENCODER_LAYER = "block4_conv1"  # relu4_1: where AdaIN happens
ENCODER_CHANNELS = 512
ENCODER_DOWNSAMPLING = 8  # three 2x2 poolings before block4
# Mean activation of the encoder's layers over photos (coffee, chelsea and The Starry Night at
# 256 px, rounded): this VGG19 takes 0-255 BGR input, so relu4_1 averages ~600 with an RMS
# ~1000. Dividing by these gives every layer a mean near 1, as in the "normalised" VGG that
# Huang & Belongie trained with: the decoder's first conv then starts with unit-sized inputs
# (not saturating its sigmoid output at once), and the style loss weighs the layers evenly
# as their lambda assumes, rather than relu4_1 dominating relu1_1 by (600/25)^2.
FEATURE_MEANS = {"block1_conv1": 25.0, "block2_conv1": 130.0, "block3_conv1": 140.0,
                 "block4_conv1": 600.0}
BASE_CHANNELS = (256, 128, 64)  # at H/4, H/2 and H, width 1
CHANNEL_MULTIPLE = 8
# (channel index into BASE_CHANNELS of each conv's output, upsample after it); the last conv
# (to RGB) is separate.
_LAYOUT = ((0, True), (0, False), (0, False), (0, False), (1, True), (1, False), (2, True),
           (2, False))


def decoder_channels(width: float) -> tuple[int, int, int]:
    """Channels at H/4, H/2, H: base * width rounded to a multiple of 8, at least 8."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    return tuple(max(CHANNEL_MULTIPLE, int(base * width / CHANNEL_MULTIPLE + 0.5)
                     * CHANNEL_MULTIPLE) for base in BASE_CHANNELS)


class Decoder(nn.Module):
    """(N, h, w, C) relu4_1 features -> (N, 8h, 8w, 3) float32 image in (0, 1).

    C is VGG19's 512, or a distilled encoder's fewer (`jaxstyle.arbitrary.encoder`); the
    first conv's kernel has that many inputs.
    """

    width: float = 1.0
    dtype: jnp.dtype = jnp.float32  # compute dtype of the convs; the output stays float32

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        if features.ndim != 4:
            raise ValueError(f"features must be (N, h, w, C), got {features.shape}")
        channels = decoder_channels(self.width)
        x = (features / FEATURE_MEANS[ENCODER_LAYER]).astype(self.dtype)
        for i, (level, upsample) in enumerate(_LAYOUT):
            x = nn.relu(ReflectConv(channels[level], 3, dtype=self.dtype, name=f"conv{i}")(x))
            if upsample:
                x = upsample_nearest(x)
        x = ReflectConv(3, 3, dtype=self.dtype, name=f"conv{len(_LAYOUT)}")(x)
        # A sigmoid keeps every pixel's gradient alive (a clip would zero it past the edge),
        # and puts the output in [0, 1] with no clip; the same choice as engine 2's network.
        return jax.nn.sigmoid(x.astype(jnp.float32))


def init_decoder(seed: int | jax.Array, width: float = 1.0,
                 in_channels: int = ENCODER_CHANNELS) -> dict:
    """Fresh params (the inner `params` dict) of Decoder(width) for features of
    `in_channels`; see `_compiled_init`."""
    key = jax.random.key(seed, impl="rbg") if isinstance(seed, int) else seed
    return _compiled_init(float(width), int(in_channels))(key)["params"]


@functools.lru_cache(maxsize=8)
def _compiled_init(width: float, in_channels: int) -> Callable:
    """key -> variables, all initialisers in one compiled program (fast to compile with rbg)."""
    example = jnp.zeros((1, 4, 4, in_channels), jnp.float32)  # a constant in the program
    return jax.jit(lambda key: Decoder(width=width).init(key, example))


def decoder_param_shapes(width: float, in_channels: int = ENCODER_CHANNELS) -> dict:
    """The params' shapes and dtypes (ShapeDtypeStructs), with nothing computed."""
    return jax.eval_shape(lambda: Decoder(width=width).init(
        jax.random.key(0), jnp.zeros((1, 4, 4, in_channels), jnp.float32)))["params"]


def decoder_flops_per_pixel(width: float, in_channels: int = ENCODER_CHANNELS) -> float:
    """Multiply-adds x 2 per output pixel (convs only)."""
    channels = decoder_channels(width)
    flops, cin, area = 0.0, in_channels, 1 / 64  # conv0 runs at H/8
    for level, upsample in _LAYOUT:
        cout = channels[level]
        flops += 2 * 9 * cin * cout * area
        cin = cout
        if upsample:
            area *= 4
    return flops + 2 * 9 * cin * 3 * area


__all__ = ["Decoder", "ENCODER_CHANNELS", "ENCODER_DOWNSAMPLING", "ENCODER_LAYER", "FEATURE_MEANS",
           "decoder_channels", "decoder_flops_per_pixel", "decoder_param_shapes",
           "init_decoder"]
