"""Johnson et al. 2016 image transformation network with Dumoulin et al. 2017 conditional
instance norm: one network, S styles, each style only a (scale, shift) pair per norm layer.

Params are flax's plain nested dict (the inner `params` collection). Layout, with C the layer's
channel count and S the number of styles:

    encode0/conv/kernel (9,9,3,C1)        encode0/norm/scale, shift (S,C1)
    encode1/conv/kernel (3,3,C1,C2)       encode1/norm/scale, shift (S,C2)
    encode2/conv/kernel (3,3,C2,C3)       encode2/norm/scale, shift (S,C3)
    residual{0..4}/{first,second}/conv/kernel (3,3,C3,C3), .../norm/scale, shift (S,C3)
    decode0/conv/kernel (3,3,C3,C2)       decode0/norm/scale, shift (S,C2)
    decode1/conv/kernel (3,3,C2,C1)       decode1/norm/scale, shift (S,C1)
    output/kernel (9,9,C1,3), output/bias (3,)

Every per-style leaf, and nothing else, is named `scale` or `shift`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxstyle.layers import (
    ReflectConv,
    crop_padding,
    padding_to_multiple,
    reflect_pad,
    upsample_nearest,
)
from jaxstyle.vgg import MIN_SIDE, under_min_side

BASE_CHANNELS = (32, 64, 128)  # C1, C2, C3 at width 1
NUM_RESIDUAL_BLOCKS = 5
# Two stride-2 convs halve the size twice and two x2 upsamplings restore it, which is exact
# only for sides divisible by 4.
SIZE_MULTIPLE = 4
CHANNEL_MULTIPLE = 8  # a whole number of 8-float SIMD lanes keeps XLA CPU's conv loops full
STYLE_PARAM_NAMES = ("scale", "shift")
INSTANCE_NORM_EPS = 1e-5
# The identity start reads the photo through a logit; clipping first keeps black and white
# pixels finite (logit(0.02) = -3.9) at the cost of a 2% contrast squeeze at step 0.
IDENTITY_CLIP = 0.02
_NHWC = ("NHWC", "HWIO", "NHWC")


def scaled_channels(base: int, width: float) -> int:
    """base * width rounded (half up) to a multiple of 8, at least 8."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(CHANNEL_MULTIPLE,
               int(base * width / CHANNEL_MULTIPLE + 0.5) * CHANNEL_MULTIPLE)


def channel_counts(width: float) -> tuple[int, int, int]:
    """(C1, C2, C3): channels of the full, half and quarter resolution layers.

    Example:

    >>> jaxstyle.feedforward.channel_counts(1.0), jaxstyle.feedforward.channel_counts(0.25)
    ((32, 64, 128), (8, 16, 32))
    """
    full, half, quarter = (scaled_channels(base, width) for base in BASE_CHANNELS)
    return full, half, quarter


def instance_norm(x: jax.Array, scale: jax.Array, shift: jax.Array,
                  eps: float = INSTANCE_NORM_EPS) -> jax.Array:
    """Per image and channel normalise over H, W: (N,H,W,C), (N,C), (N,C) -> (N,H,W,C) in x.dtype.

    Statistics are taken in float32 even for bfloat16 activations, whose 8-bit mantissa would
    make the mean of a large map, and so the variance, visibly wrong.

    Example:

    >>> x = jnp.asarray(np.random.default_rng(0).normal(1.0, 3.0, (2, 8, 8, 4)))
    >>> y = jaxstyle.feedforward.instance_norm(x, scale=jnp.ones((2, 4)), shift=jnp.zeros((2, 4)))
    >>> y.shape, bool(jnp.allclose(y.mean(axis=(1, 2)), 0, atol=1e-5))
    ((2, 8, 8, 4), True)
    >>> bool(jnp.allclose(y.std(axis=(1, 2)), 1, atol=1e-3))
    True
    """
    x32 = x.astype(jnp.float32)
    mean = x32.mean(axis=(1, 2), keepdims=True)
    centered = x32 - mean
    variance = jnp.square(centered).mean(axis=(1, 2), keepdims=True)
    gain = scale[:, None, None, :] * jax.lax.rsqrt(variance + eps)
    return (centered * gain + shift[:, None, None, :]).astype(x.dtype)


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose gamma, beta mix S learned (scale, shift) rows by the style weights."""

    num_styles: int

    @nn.compact
    def __call__(self, x: jax.Array, style_weights: jax.Array) -> jax.Array:
        """(N,H,W,C), (N,S) -> (N,H,W,C)."""
        shape = (self.num_styles, x.shape[-1])
        scale = self.param("scale", nn.initializers.ones_init(), shape, jnp.float32)
        shift = self.param("shift", nn.initializers.zeros_init(), shape, jnp.float32)
        # Full precision so a one-hot row picks its style's values exactly on every backend
        # (GPUs would otherwise use TF32 here); the matmul is tiny.
        mix = lambda table: jnp.matmul(style_weights, table, precision=jax.lax.Precision.HIGHEST)
        return instance_norm(x, mix(scale), mix(shift))


class ConvNorm(nn.Module):
    """Reflection-padded conv, conditional instance norm, optional ReLU."""

    features: int
    kernel_size: int
    num_styles: int
    stride: int = 1
    relu: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, style_weights: jax.Array) -> jax.Array:
        """(N,H,W,Cin), (N,S) -> (N,ceil(H/stride),ceil(W/stride),features)."""
        # No bias: the norm subtracts each channel's mean, which would cancel it exactly.
        x = ReflectConv(self.features, self.kernel_size, self.stride, use_bias=False,
                        dtype=self.dtype, name="conv")(x)
        x = ConditionalInstanceNorm(self.num_styles, name="norm")(x, style_weights)
        return nn.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    """x + (conv-norm-ReLU-conv-norm)(x), no ReLU after the sum (Gross & Wilber's variant)."""

    num_styles: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, style_weights: jax.Array) -> jax.Array:
        """(N,H,W,C), (N,S) -> (N,H,W,C)."""
        c = x.shape[-1]
        y = ConvNorm(c, 3, self.num_styles, dtype=self.dtype, name="first")(x, style_weights)
        y = ConvNorm(c, 3, self.num_styles, relu=False, dtype=self.dtype,
                     name="second")(y, style_weights)
        return x + y


def check_inputs(images: jax.Array, style_weights: jax.Array, num_styles: int) -> None:
    """Raise ValueError unless images are (N,H,W,3) with H,W >= MIN_SIDE and weights are (N,S)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    if under_min_side(images.shape):
        raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE}, got {images.shape}")
    if style_weights.shape != (images.shape[0], num_styles):
        raise ValueError(f"style_weights must be (N, S) = ({images.shape[0]}, {num_styles}), "
                         f"got {style_weights.shape}")


class TransformerNet(nn.Module):
    """Feed-forward stylisation network: (N,H,W,3) in [0,1], (N,S) -> (N,H,W,3) float32 in (0,1).

    Any H, W >= MIN_SIDE works, odd ones included: the input is reflection-padded up to a
    multiple of 4 (split between the two sides) and the output cropped back to H x W, so the
    encoder's two halvings and the decoder's two doublings meet exactly.

    Example:

    >>> net = jaxstyle.feedforward.TransformerNet(width=0.25, identity_start=True)
    >>> model = jaxstyle.feedforward.init_params(0, width=0.25, identity_start=True)
    >>> photo = np.random.default_rng(0).uniform(0.1, 0.9, (1, 33, 35, 3))  # odd sides work
    >>> out = jax.jit(net.apply)({"params": model}, photo, jnp.ones((1, 1)))
    >>> out.shape, bool(jnp.allclose(out, photo, atol=1e-3))  # untrained: the photo itself
    ((1, 33, 35, 3), True)
    """

    num_styles: int = 1
    width: float = 1.0
    dtype: Any = jnp.float32  # compute dtype of the convs; norms and output stay float32
    # Output = sigmoid(logit(photo) + residual), the residual's last conv zero at init: the
    # untrained network returns the photo, and training only has to add the style, the way
    # optimisation starts from the photo (not in Johnson et al.; BENCHMARKS.md, "Keeping the
    # photo", has the A/B that made it the default).
    identity_start: bool = False

    @nn.compact
    def __call__(self, images: jax.Array, style_weights: jax.Array) -> jax.Array:
        check_inputs(images, style_weights, self.num_styles)
        c1, c2, c3 = channel_counts(self.width)
        image_h, image_w = images.shape[1:3]
        rows = padding_to_multiple(image_h, SIZE_MULTIPLE)
        cols = padding_to_multiple(image_w, SIZE_MULTIPLE)
        weights = style_weights.astype(jnp.float32)
        block = dict(num_styles=self.num_styles, dtype=self.dtype)

        x = reflect_pad(images.astype(jnp.float32), rows, cols)
        x = ConvNorm(c1, 9, name="encode0", **block)(x, weights)
        x = ConvNorm(c2, 3, stride=2, name="encode1", **block)(x, weights)
        x = ConvNorm(c3, 3, stride=2, name="encode2", **block)(x, weights)
        for i in range(NUM_RESIDUAL_BLOCKS):
            x = ResidualBlock(name=f"residual{i}", **block)(x, weights)
        # Upsample then conv rather than a transposed conv, whose uneven kernel overlap
        # paints a checkerboard (Odena et al. 2016).
        x = ConvNorm(c2, 3, name="decode0", **block)(upsample_nearest(x), weights)
        x = ConvNorm(c1, 3, name="decode1", **block)(upsample_nearest(x), weights)
        init: dict[str, Any] = ({"kernel_init": nn.initializers.zeros_init()}
                                if self.identity_start else {})
        x = ReflectConv(3, 9, dtype=self.dtype, name="output", **init)(x)
        if self.identity_start:
            x = x.astype(jnp.float32) + photo_logit(reflect_pad(images.astype(jnp.float32),
                                                                rows, cols))
        # Sigmoid, not Johnson's 150*tanh followed by a clip to the pixel range: a clipped pixel
        # has zero gradient, so a pixel pushed past the edge early in training can stay stuck
        # there. The sigmoid is smooth and only approaches 0 and 1, so every pixel keeps a
        # gradient, and the output lies in [0, 1] without any clip.
        x = jax.nn.sigmoid(x.astype(jnp.float32))
        return crop_padding(x, rows, cols)


def photo_logit(images: jax.Array) -> jax.Array:
    """The pre-sigmoid value that reproduces each pixel: (N,H,W,3) in [0,1] -> same shape."""
    clipped = jnp.clip(images, IDENTITY_CLIP, 1.0 - IDENTITY_CLIP)
    return jnp.log(clipped) - jnp.log1p(-clipped)


def _example_inputs(num_styles: int, size: int) -> tuple[jax.ShapeDtypeStruct, ...]:
    """Abstract (1, size, size, 3) images and (1, S) style weights: shapes only, no data."""
    return (jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32),
            jax.ShapeDtypeStruct((1, num_styles), jnp.float32))


def init_params(seed: int | jax.Array, num_styles: int = 1, width: float = 1.0,
                size: int = 64, identity_start: bool = False) -> dict:
    """Fresh params (the inner `params` dict) for TransformerNet(num_styles, width).

    An int seed draws from JAX's "rbg" generator: XLA CPU compiles its initialisers in a couple
    of seconds, threefry's (jax.random.key's default) in about ten times as long. rbg numbers may
    differ between backends, which does not matter for a random start. A key is used as given.
    `size` only shapes the abstract example input; no forward pass is computed.

    Example:

    >>> model = jaxstyle.feedforward.init_params(0, width=0.25, identity_start=True)
    >>> model["encode0"]["conv"]["kernel"].shape, model["encode0"]["norm"]["scale"].shape
    ((9, 9, 3, 8), (1, 8))
    """
    key = jax.random.key(seed, impl="rbg") if isinstance(seed, int) else seed
    return _compiled_init(num_styles, float(width), size, identity_start)(key)["params"]


@functools.lru_cache(maxsize=8)
def _compiled_init(num_styles: int, width: float, size: int, identity_start: bool) -> Callable:
    """key -> variables, all initialisers in one compiled program rather than one per shape."""
    model = TransformerNet(num_styles=num_styles, width=width, identity_start=identity_start)
    inputs = _example_inputs(num_styles, size)
    return jax.jit(lambda key: model.lazy_init(key, *inputs))


def param_shapes(num_styles: int, width: float) -> dict:
    """TransformerNet(num_styles, width)'s params tree as ShapeDtypeStructs, computing nothing.

    Example:

    >>> shapes = jaxstyle.feedforward.param_shapes(num_styles=3, width=0.25)  # nothing computed
    >>> shapes["output"]["kernel"]
    ShapeDtypeStruct(shape=(9, 9, 8, 3), dtype=float32)
    """
    model = TransformerNet(num_styles=num_styles, width=width)
    inputs = _example_inputs(num_styles, MIN_SIDE)
    return jax.eval_shape(model.init, jax.random.key(0), *inputs)["params"]


def style_params_paths(params: dict) -> list[tuple[str, ...]]:
    """Key paths of the per-style leaves: every norm's (S, C) `scale` and `shift`.

    Example:

    >>> shapes = jaxstyle.feedforward.param_shapes(num_styles=2, width=0.25)
    >>> jaxstyle.feedforward.style_params_paths(shapes)[:2]
    [('decode0', 'norm', 'scale'), ('decode0', 'norm', 'shift')]
    """
    return [path for path in traverse_util.flatten_dict(params) if path[-1] in STYLE_PARAM_NAMES]


def num_styles_of(params: dict) -> int:
    """S, read from the first per-style leaf."""
    for path, leaf in traverse_util.flatten_dict(params).items():
        if path[-1] in STYLE_PARAM_NAMES:
            return leaf.shape[0]
    raise ValueError("params have no per-style `scale`/`shift` leaves")


def select_styles(params: dict, indices: Sequence[int]) -> dict:
    """Params of a len(indices)-style net holding the given styles, in that order; rest shared.

    Example:

    >>> model, header = jaxstyle.load_model(jaxstyle.resolve_model("paintings")[0])
    >>> two = jaxstyle.feedforward.select_styles(model, [2, 0])  # woman_with_hat, starry_night
    >>> model["decode0"]["norm"]["scale"].shape, two["decode0"]["norm"]["scale"].shape
    ((3, 16), (2, 16))
    """
    num_styles = num_styles_of(params)
    indices = [int(i) for i in indices]
    if not indices or not all(0 <= i < num_styles for i in indices):
        raise ValueError(f"style indices must be a non-empty list in [0, {num_styles}), "
                         f"got {indices}")
    rows = np.asarray(indices)
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict(
        {path: leaf[rows] if path[-1] in STYLE_PARAM_NAMES else leaf
         for path, leaf in flat.items()})


def count_params(params: dict) -> int:
    """Total number of scalars in the params tree.

    Example:

    >>> jaxstyle.feedforward.count_params(jaxstyle.feedforward.param_shapes(1, width=0.25))
    108371
    """
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))


def flops_per_pixel(width: float) -> float:
    """Conv FLOPs (2 per multiply-add) per output pixel, for sides divisible by 4.

    Example:

    >>> jaxstyle.feedforward.flops_per_pixel(1.0), jaxstyle.feedforward.flops_per_pixel(0.25)
    (307584.0, 25056.0)
    """
    c1, c2, c3 = channel_counts(width)
    # (kernel taps, input channels, output channels, output pixels per image pixel)
    convs = [(81, 3, c1, 1), (9, c1, c2, 1 / 4), (9, c2, c3, 1 / 16),
             *[(9, c3, c3, 1 / 16)] * (2 * NUM_RESIDUAL_BLOCKS),
             (9, c3, c2, 1 / 4), (9, c2, c1, 1), (81, c1, 3, 1)]
    return sum(2 * taps * cin * cout * share for taps, cin, cout, share in convs)
