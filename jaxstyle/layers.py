"""Layers the trained networks share (engine 2's transformer, engine 3's decoder).

Reflection padding (no dark borders), nearest-neighbour upsampling followed by a conv (no
transposed convs: their uneven overlap paints checkerboards, Odena et al. 2016), and a
reflection-padded conv that runs through `jaxstyle.fastconv`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxstyle import fastconv


def reflect_pad(x: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
    """Mirror-pad H and W (edge pixel not repeated): (N,H,W,C) -> (N,H+sum(rows),W+sum(cols),C).

    Under `jax.export` or jax2onnx (symbolic H and W) the pad is a gather of mirrored indices:
    jnp.pad's reflect mode cannot trace pads that depend on the size (the networks' padding
    to a multiple), and jax2onnx 0.17.1 mis-lowers the gathers of engine 3 when the fixed pads
    stay jnp.pad. Each pad must be under the side.
    """
    if all(isinstance(p, int) for p in (*rows, *cols, *x.shape[1:3])):
        return jnp.pad(x, ((0, 0), rows, cols, (0, 0)), mode="reflect")
    if _fixed_pad and all(isinstance(p, int) for p in (*rows, *cols)):
        return _fixed_pad[-1](x, rows, cols)
    return mirror_pad_gather(x, rows, cols)


# What a fixed-width pad of a symbolic-size map traces to, while `fixed_reflect_pad` is
# active: ONNX export swaps in one Pad node (jaxstyle/onnx_ops.py). A trace-time switch,
# as jax2onnx's own patches are; the stack holds nothing outside a `with`.
_fixed_pad: list = []


@contextlib.contextmanager
def fixed_reflect_pad(implementation):
    _fixed_pad.append(implementation)
    try:
        yield
    finally:
        _fixed_pad.pop()


def mirror_pad_gather(x: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
    """`reflect_pad` as gathers of mirrored indices: traces with symbolic sizes and pads."""
    return _mirror_take(_mirror_take(x, rows, axis=1), cols, axis=2)


def _mirror_take(x: jax.Array, pads: tuple[int, int], axis: int) -> jax.Array:
    size = x.shape[axis]
    # lax.iota, not jnp.arange: jax2onnx replaces arange with a stand-in for symbolic sizes.
    index = jax.lax.iota(jnp.int32, size + pads[0] + pads[1]) - pads[0]
    index = jnp.abs(index)  # the before side mirrored about 0
    index = jnp.where(index > size - 1, 2 * (size - 1) - index, index)  # the after side
    return jnp.take(x, index, axis=axis)


def crop_padding(x: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
    """Undo `reflect_pad(..., rows, cols)`: (N,H',W',C) -> the (N,H,W,C) core.

    With symbolic sizes (export) the start depends on the size: a dynamic slice, which
    jax.export and jax2onnx both lower to a plain slice (a symbolic basic slice is a gather).
    """
    height = x.shape[1] - rows[0] - rows[1]
    width = x.shape[2] - cols[0] - cols[1]
    if all(isinstance(p, int) for p in (*rows, *cols, height, width)):
        return x[:, rows[0]:rows[0] + height, cols[0]:cols[0] + width]
    x = jax.lax.dynamic_slice_in_dim(x, rows[0], height, axis=1)
    return jax.lax.dynamic_slice_in_dim(x, cols[0], width, axis=2)


def padding_to_multiple(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) padding that brings `size` up to a multiple, split as evenly as possible."""
    # Written so that size + padding reads as `multiple * k` to jax.export's symbolic sizes,
    # which then know every halving of it is exact (-size % multiple is the same number).
    extra = (size + multiple - 1) // multiple * multiple - size
    return extra // 2, extra - extra // 2


def transpose_kernels(params):
    """Every conv kernel (kh, kw, in, out) in a params tree with its two spatial axes swapped.

    A conv network whose other layers treat H and W alike (reflection padding, square pooling
    and upsampling, per-channel statistics) maps a transposed image through transposed kernels
    to the transposed output, so a caller may run whichever orientation its backend is faster
    at. Leaves that are not 4-D (biases, norms) are left as they are.
    """
    return jax.tree.map(lambda a: a.swapaxes(0, 1) if a.ndim == 4 else a, params)


def upsample_nearest(x: jax.Array) -> jax.Array:
    """Nearest-neighbour x2 as one broadcast + reshape: (N,H,W,C) -> (N,2H,2W,C)."""
    n, h, w, c = x.shape
    return jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c)).reshape(
        n, 2 * h, 2 * w, c)


class ReflectConv(nn.Module):
    """Square conv with reflection padding that keeps the size (divided by the stride)."""

    features: int
    kernel_size: int
    stride: int = 1
    use_bias: bool = True
    dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(N,H,W,Cin) -> (N,ceil(H/stride),ceil(W/stride),features) in self.dtype."""
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init,
                            (k, k, x.shape[-1], self.features), jnp.float32)
        pad = (k // 2, k // 2)
        x = reflect_pad(x.astype(self.dtype), pad, pad)
        # fastconv: the thin 9x9 convs run over 2x2 blocks as 5x5 convs (measured faster on
        # XLA CPU, same numbers to float rounding); every other conv is a plain VALID conv.
        y = fastconv.conv(x, kernel.astype(self.dtype), self.stride)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
            y = y + bias.astype(self.dtype)
        return y
