"""Faster XLA CPU forms of TransformerNet's convolutions, same numbers up to float rounding.

Two findings on a 2-core AVX2 CPU (AMD EPYC, no AVX-512; jax 0.10.2), measured with
`jaxstyle bench model-convs` and `jaxstyle bench model` on a shared machine:

1. XLA CPU sends convolutions to YNNPACK ("ynn_fusion"), which there ran TransformerNet's
   3x3 layers 2-7x slower than XLA's other (Eigen) convolution path (256 px, width 0.5:
   decode1 32->16 66 ms vs 10 ms; width 1: the 9x9 output conv 898 ms vs 136 ms), forward and
   backward alike. `NO_YNN_CONV_OPTIONS`, passed as `jax.jit(..., compiler_options=...)`, keeps
   convolutions off YNNPACK for one compiled function without touching the process's
   XLA_FLAGS. On a CPU with AMX, BENCHMARKS.md found YNNPACK fast: measure before choosing.
2. The two 9x9 convolutions have 3 input or 3 output channels, a thin matrix product for any
   conv algorithm. Over 2x2 space-to-depth blocks the same convolution is a 5x5 one with 4x
   the channels (e.g. 12 -> 64 and 64 -> 12 at width 0.5), which the Eigen path runs 1.5-3x
   faster despite 23% more multiply-adds (`conv_space_to_depth`). Under YNNPACK it is slower:
   use the two together.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_NHWC = ("NHWC", "HWIO", "NHWC")
# The overwrite form of this repeated option lists the YNNPACK fusions to keep: single dots and
# reductions (instance norm's statistics ran 1.5-3x slower without YNNPACK), not single
# convolutions, which fall back to XLA's own (Eigen) kernels.
NO_YNN_CONV_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type":
                       "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
SPACE_TO_DEPTH_MIN_KERNEL = 9  # measured faster for the 9x9 layers only; 3x3 ones are not


def cpu_conv_compiler_options() -> dict:
    """NO_YNN_CONV_OPTIONS when the default backend is the CPU, else no options."""
    return dict(NO_YNN_CONV_OPTIONS) if jax.default_backend() == "cpu" else {}


def conv_valid(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """The reference: lax VALID conv, (N,H,W,Cin), (k,k,Cin,Cout) -> (N,(H-k)//s+1,...,Cout)."""
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                        dimension_numbers=_NHWC)


def space_to_depth(x: jax.Array) -> jax.Array:
    """2x2 blocks into channels, (dy, dx, c) order: (N,2H,2W,C) -> (N,H,W,4C)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        n, h // 2, w // 2, 4 * c)


def depth_to_space(y: jax.Array, channels: int) -> jax.Array:
    """Inverse of space_to_depth: (N,H,W,4C) -> (N,2H,2W,C)."""
    n, h, w, _ = y.shape
    return y.reshape(n, h, w, 2, 2, channels).transpose(0, 1, 3, 2, 4, 5).reshape(
        n, 2 * h, 2 * w, channels)


def _tap_table(kernel_size: int) -> np.ndarray:
    """[p, q, r] -> kernel row 2p + q - r (q: input phase, r: output phase), or k for none."""
    taps = kernel_size // 2 + 1
    table = np.full((taps, 2, 2), kernel_size, np.int32)
    for p in range(taps):
        for q in range(2):
            for r in range(2):
                if 0 <= 2 * p + q - r < kernel_size:
                    table[p, q, r] = 2 * p + q - r
    return table


def space_to_depth_kernel(kernel: jax.Array) -> jax.Array:
    """(k,k,Cin,Cout) -> (k//2+1, k//2+1, 4Cin, 4Cout): the same conv on 2x2-block inputs.

    Output pixel (2a+r, 2b+s) reads input rows 2a+r+i = 2(a+p)+q, so block tap p, input phase
    q and output phase r use kernel row i = 2p+q-r; taps outside the kernel are zero.
    """
    k, _, cin, cout = kernel.shape
    rows = _tap_table(k)
    padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # row/column k is all zeros
    # blocks[p, p', q, t, r, s, c, o] = kernel[rows[p,q,r], rows[p',t,s], c, o]
    blocks = padded[rows[:, None, :, None, :, None], rows[None, :, None, :, None, :]]
    taps = k // 2 + 1
    return blocks.transpose(0, 1, 2, 3, 6, 4, 5, 7).reshape(taps, taps, 4 * cin, 4 * cout)


def conv_space_to_depth(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """conv_valid(x, kernel) at stride 1, computed on 2x2 blocks; output H, W must be even.

    (N,H+k-1,W+k-1,Cin), (k,k,Cin,Cout) -> (N,H,W,Cout). Equal to the reference up to float
    rounding (the sums run in another order); k odd, input sides even.
    """
    k, _, _, cout = kernel.shape
    n, padded_h, padded_w, _ = x.shape
    out_h, out_w = padded_h - k + 1, padded_w - k + 1
    if k % 2 == 0 or out_h % 2 or out_w % 2:
        raise ValueError(f"conv_space_to_depth needs an odd kernel and an even output size, "
                         f"got kernel {k} and output {out_h}x{out_w}")
    y = conv_valid(space_to_depth(x), space_to_depth_kernel(kernel))
    return depth_to_space(y, cout)


def conv(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """conv_valid, through conv_space_to_depth where that was measured faster (9x9, stride 1)."""
    k = kernel.shape[0]
    out_h, out_w = x.shape[1] - k + 1, x.shape[2] - k + 1
    if stride == 1 and k >= SPACE_TO_DEPTH_MIN_KERNEL and k % 2 and not (out_h % 2 or out_w % 2):
        return conv_space_to_depth(x, kernel)
    return conv_valid(x, kernel, stride)
