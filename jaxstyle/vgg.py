"""VGG19 feature extractor as a Flax module, with Keras 'caffe' preprocessing inside.

`VGG19(layers=...)` runs the network only as deep as the deepest requested layer, so the
seed's default loss (deepest layer block5_conv2) never computes block5_conv3/4.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, Optional, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxstyle._types import AnyArray, ArrayLike, ParamTree

# The one home of VGG19's table: every other module (weights, losses, peers, CLI) imports it.
# (name, in_channels, out_channels) of VGG19's 16 conv layers, in network order.
VGG19_CONV_LAYERS: tuple[tuple[str, int, int], ...] = tuple(
    (f"block{block}_conv{conv}", cin if conv == 1 else cout, cout)
    for block, (cin, cout, convs) in enumerate(
        [(3, 64, 2), (64, 128, 2), (128, 256, 4), (256, 512, 4), (512, 512, 4)], start=1
    )
    for conv in range(1, convs + 1)
)
LAYER_NAMES: tuple[str, ...] = tuple(name for name, _, _ in VGG19_CONV_LAYERS)
# ImageNet channel means in BGR order, as keras.applications.vgg19.preprocess_input subtracts.
BGR_MEAN = (103.939, 116.779, 123.68)
MIN_SIDE = 32  # four 2x2 poolings before block5 still leave a 2x2 map


def under_min_side(shape: Sequence[Any]) -> bool:
    """Whether an (N, H, W, C) shape's H or W is known and under MIN_SIDE. A symbolic side
    (`jax.export`, jax2onnx) is not checked here: the exported file documents the minimum."""
    return any(isinstance(side, int) and side < MIN_SIDE for side in shape[1:3])


def scaled_channels(channels: int, width: float) -> int:
    """A layer's channels at a width multiplier: rounded to a multiple of 8, at least 8."""
    return channels if width == 1.0 else max(8, int(channels * width / 8 + 0.5) * 8)


def params_width(params: ParamTree) -> float:
    """The width multiplier of VGG19-shaped params: 1.0 for VGG19 itself, 0.25 for a distilled
    encoder whose first conv has 16 channels (`jaxstyle.arbitrary.encoder`)."""
    return params["block1_conv1"]["kernel"].shape[-1] / 64


def layer_block(name: str) -> int:
    """The VGG block a layer belongs to: 'block3_conv1' -> 3 (its map is 1/2^(block-1) size)."""
    return int(name[len("block")])


def float_images(images: ArrayLike, name: str = "images") -> Any:
    """Images as floats, by their dtype alone (so also under `jax.jit`): uint8 converted
    explicitly (x / 255, float32), other integer and bool types refused with a ValueError
    naming `name` (a 0-255 image must never run as if it were in [0, 1]), floats as given."""
    dtype = getattr(images, "dtype", None)
    if dtype is None:
        return images
    if np.dtype(dtype) == np.uint8:
        return jnp.asarray(images, jnp.float32) / 255.0
    if not (np.issubdtype(np.dtype(dtype), np.floating) or np.dtype(dtype) == jnp.bfloat16):
        raise ValueError(f"{name} must be float RGB in [0, 1] or uint8, got dtype {dtype}")
    return images


def preprocess(images: ArrayLike) -> jax.Array:
    """RGB in [0, 1] -> Keras 'caffe' input: (..., 3) -> (..., 3), BGR, mean removed.

    uint8 is converted (x / 255); other integer types are refused (`float_images`).

    Example:

    >>> jaxstyle.preprocess(jnp.zeros((1, 2, 2, 3)))[0, 0, 0]  # black: minus the BGR mean
    Array([-103.939, -116.779, -123.68 ], dtype=float32)
    """
    floats = float_images(images)
    bgr = floats[..., ::-1] * 255.0
    return bgr - jnp.asarray(BGR_MEAN, dtype=floats.dtype)


@jax.custom_vjp
def _max_pool_windows(windows: jax.Array) -> jax.Array:
    return windows.max(axis=(2, 4))


def _max_pool_fwd(windows: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    pooled = windows.max(axis=(2, 4))
    return pooled, (windows, pooled)


def _max_pool_bwd(saved: tuple[jax.Array, jax.Array],
                   cotangent: jax.Array) -> tuple[jax.Array]:
    # One fused select: the gradient goes to every position equal to its window's maximum.
    # JAX's default rule also counts ties to split the gradient among them; after a ReLU the
    # only common ties are zeros, whose gradient the ReLU discards anyway.
    windows, pooled = saved
    at_max = windows == pooled[:, :, None, :, None, :]
    return (jnp.where(at_max, cotangent[:, :, None, :, None, :], 0).astype(windows.dtype),)


_max_pool_windows.defvjp(_max_pool_fwd, _max_pool_bwd)


def pool2x2(features: jax.Array, kind: str = "max") -> jax.Array:
    """2x2 stride-2 pooling, 'valid' like Keras: (N, H, W, C) -> (N, H//2, W//2, C).

    Written as reshape + reduce rather than `nn.max_pool`: XLA CPU's gradient of a windowed
    max (select_and_scatter) is slow, and the reshape form gives the same numbers.
    """
    n, h, w, c = features.shape
    cropped = features[:, : h // 2 * 2, : w // 2 * 2, :]
    windows = cropped.reshape(n, h // 2, 2, w // 2, 2, c)
    if kind == "max":
        return _max_pool_windows(windows)
    return windows.mean(axis=(2, 4))


def _conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding="SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def input_grad_kernel(kernel: jax.Array) -> jax.Array:
    """Kernel whose SAME conv maps an output cotangent to the input's: (3,3,I,O) -> (3,3,O,I)."""
    return jnp.flip(kernel, (0, 1)).swapaxes(2, 3)


@jax.custom_vjp
def _conv3x3_known_grad_kernel(x: jax.Array, kernel: jax.Array,
                               grad_kernel: jax.Array) -> jax.Array:
    return _conv3x3(x, kernel)


def _known_fwd(x: jax.Array, kernel: jax.Array, grad_kernel: jax.Array,
               ) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
    return _conv3x3(x, kernel), (x, kernel, grad_kernel)


def _known_bwd(saved: tuple[jax.Array, jax.Array, jax.Array],
               cotangent: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    # The image's cotangent uses the ready-made backward kernel. The kernel gets its true
    # cotangent too, so `jax.grad` with respect to the weights is right; a step that asks only
    # for the image's gradient never uses it, and XLA removes it as dead code. `grad_kernel`
    # is derived from `kernel`, not an input of the maths, so its cotangent is zero.
    x, kernel, grad_kernel = saved
    _, kernel_vjp = jax.vjp(lambda k: _conv3x3(x, k), kernel)
    (kernel_cotangent,) = kernel_vjp(cotangent)
    return _conv3x3(cotangent, grad_kernel), kernel_cotangent, jnp.zeros_like(grad_kernel)


_conv3x3_known_grad_kernel.defvjp(_known_fwd, _known_bwd)


def conv3x3_relu(x: jax.Array, kernel: jax.Array, bias: jax.Array,
                 grad_kernel: jax.Array | None = None) -> jax.Array:
    """3x3 SAME conv + bias + ReLU: (N, H, W, Cin) -> (N, H, W, Cout), in x's dtype.

    With `grad_kernel` (`input_grad_kernel(kernel)`, made once by `prepare_params`) the
    backward pass uses it directly. Otherwise XLA re-derives it by a flip-and-transpose copy
    in every step, which costs about 8% of a CPU step. Gradients are the same either way,
    with respect to the image and to the weights.
    """
    if grad_kernel is None:
        y = _conv3x3(x, kernel.astype(x.dtype))
    else:
        y = _conv3x3_known_grad_kernel(x, kernel.astype(x.dtype), grad_kernel.astype(x.dtype))
    return jax.nn.relu(y + bias.astype(x.dtype))


# id(kernel) -> (weak reference to the kernel, its backward kernel). JAX arrays are immutable
# (and unhashable, hence the id), so a kernel object keeps one backward kernel for life; an
# edited kernel is a new object and gets a new one. An entry goes when its kernel is collected.
# NumPy arrays can change in place, so theirs are never cached.
_grad_kernels: dict[int, tuple[weakref.ref, jax.Array]] = {}
_input_grad_kernel = jax.jit(input_grad_kernel)


def _remember(kernel: Any, grad_kernel: jax.Array) -> None:
    if isinstance(kernel, jax.Array):
        key = id(kernel)
        _grad_kernels[key] = (weakref.ref(kernel, lambda _: _grad_kernels.pop(key, None)),
                              grad_kernel)


def _known_grad_kernel(kernel: Any) -> Optional[jax.Array]:
    entry = _grad_kernels.get(id(kernel))
    return entry[1] if entry is not None and entry[0]() is kernel else None


def _cached_grad_kernel(kernel: ArrayLike) -> jax.Array:
    grad_kernel = _known_grad_kernel(kernel)
    if grad_kernel is None:
        grad_kernel = _input_grad_kernel(jnp.asarray(kernel))
        _remember(kernel, grad_kernel)
    return grad_kernel


def _verified_grad_kernel(name: str, kernel: ArrayLike, grad_kernel: jax.Array) -> jax.Array:
    """`grad_kernel` if it is `kernel`'s backward kernel. A stale one (the kernel was edited
    after `prepare_params`) would give silently wrong image gradients, so it is refused.
    One that passes is remembered, so the step's next call compares nothing."""
    if _known_grad_kernel(kernel) is grad_kernel:
        return grad_kernel
    expected = _input_grad_kernel(jnp.asarray(kernel))
    if np.shape(grad_kernel) != expected.shape or not bool(
            jnp.array_equal(jnp.asarray(grad_kernel), expected)):
        raise ValueError(f"params[{name!r}]['grad_kernel'] does not match its kernel (the kernel "
                         "was changed after prepare_params): pass plain params, or call "
                         "prepare_params on the edited params")
    _remember(kernel, grad_kernel)  # the caller's, placed (sharded) as the caller placed it
    return grad_kernel


def prepare_params(params: ParamTree) -> dict:
    """Params plus each layer's `grad_kernel`, so a step need not transpose kernels each time.

    Cheap to call every step: a kernel's backward kernel is made once and kept for as long as
    that kernel array lives (`make_step`'s step calls this itself). A `grad_kernel` already
    present is checked against its kernel, and a stale one raises ValueError. Gradients with
    respect to the weights are the same as with plain params. Under a transformation (inside
    `jax.jit`, `jax.grad`) the params are abstract and nothing can be cached or checked:
    call it outside, on concrete params.

    Example:

    >>> prepared = jaxstyle.prepare_params(params)
    >>> prepared["block1_conv2"]["grad_kernel"].shape  # (3, 3, out, in)
    (3, 3, 64, 64)
    """
    prepared = {}
    for name, layer in params.items():
        kernel = layer.get("kernel") if isinstance(layer, dict) else None
        if kernel is None or isinstance(kernel, jax.core.Tracer):
            prepared[name] = layer
        elif "grad_kernel" in layer:
            prepared[name] = {**layer, "grad_kernel": _verified_grad_kernel(
                name, kernel, layer["grad_kernel"])}
        else:
            prepared[name] = {**layer, "grad_kernel": _cached_grad_kernel(kernel)}
    return prepared


def _run_block(x: jax.Array, weights: Sequence[tuple[jax.Array, jax.Array, Optional[jax.Array]]],
               keep: Sequence[bool]) -> tuple[jax.Array, list[jax.Array]]:
    """The convs of one block; a pure function so `remat_block` can wrap it."""
    kept = []
    for (kernel, bias, grad_kernel), is_kept in zip(weights, keep):
        x = conv3x3_relu(x, kernel, bias, grad_kernel)
        if is_kept:
            kept.append(x.astype(jnp.float32))
    return x, kept


def remat_block(x: jax.Array, weights: Sequence[tuple[jax.Array, jax.Array, Optional[jax.Array]]],
                keep: Sequence[bool]) -> tuple[jax.Array, list[jax.Array]]:
    """`_run_block` that keeps only its input and recomputes its activations when differentiated.

    `jax.checkpoint` does the same in principle, but XLA CPU drops its optimisation barriers
    and common-subexpression elimination then merges the recomputation back into the forward
    pass, so it saves nothing there. Here the recomputation's input is tied to the incoming
    cotangent (`x + 0 * ct`), which XLA can neither merge with the forward pass nor schedule
    before the backward pass reaches this block. The weights are arguments, not closed over,
    so they get their true gradients too (a custom VJP cannot differentiate what it closes
    over); where only the image's gradient is asked for, XLA prunes theirs.
    """

    @jax.custom_vjp
    def run(x: jax.Array, weights: Any) -> tuple[jax.Array, list[jax.Array]]:
        return _run_block(x, weights, keep)

    def run_fwd(x: jax.Array, weights: Any) -> tuple[tuple[jax.Array, list[jax.Array]], Any]:
        return _run_block(x, weights, keep), (x, weights)

    def run_bwd(saved: tuple[jax.Array, Any], cotangent: Any) -> tuple[Any, ...]:
        saved_x, saved_weights = saved
        anchor = jax.tree.leaves(cotangent)[0].ravel()[0]
        tied = saved_x + (anchor * 0).astype(saved_x.dtype)
        _, vjp = jax.vjp(lambda v, w: _run_block(v, w, keep), tied, saved_weights)
        return vjp(cotangent)

    run.defvjp(run_fwd, run_bwd)
    return run(x, weights)


class _ConvParams(nn.Module):
    """Declares one conv layer's params under its Keras name; the maths lives in pure functions."""

    features_in: int
    features_out: int

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array, Optional[jax.Array]]:
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (3, 3, self.features_in, self.features_out), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features_out,), jnp.float32)
        grad_kernel = (self.get_variable("params", "grad_kernel")
                       if self.has_variable("params", "grad_kernel") else None)
        return kernel, bias, grad_kernel


class VGG19(nn.Module):
    """Post-ReLU activations of the requested conv layers: (N, H, W, 3) -> {name: (N, h, w, C)}.

    Input is float RGB in [0, 1]. Params are `{'block1_conv1': {'kernel', 'bias'}, ...}` as
    Keras names them. `dtype` is the compute dtype of the convolutions (bfloat16 for fast mixed
    precision); outputs are always float32. `remat` recomputes each block's activations in the
    backward pass instead of keeping them (less memory, about one more forward pass of FLOPs).

    Example:

    >>> net = jaxstyle.VGG19(layers=("block1_conv1", "block3_conv1"))
    >>> features = net.apply({"params": params}, jnp.zeros((1, 32, 32, 3)))
    >>> {name: f.shape for name, f in features.items()}
    {'block1_conv1': (1, 32, 32, 64), 'block3_conv1': (1, 8, 8, 256)}
    """

    layers: Sequence[str]
    pooling: str = "max"
    dtype: DTypeLike = jnp.float32
    remat: bool = False
    # Channel multiplier: 1 is VGG19; smaller is the same network with fewer channels per
    # layer, the shape of engine 3's distilled encoder (`jaxstyle.arbitrary.encoder`).
    width: float = 1.0

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
        deepest = max(LAYER_NAMES.index(name) for name in self.layers)
        wanted = set(self.layers)
        block_fn = remat_block if self.remat else _run_block
        x = preprocess(float_images(images).astype(jnp.float32)).astype(self.dtype)
        outputs: dict[str, jax.Array] = {}
        for block in range(1, 6):
            convs = [(name, cin if cin == 3 else scaled_channels(cin, self.width),
                      scaled_channels(cout, self.width))
                     for name, cin, cout in VGG19_CONV_LAYERS[: deepest + 1]
                     if name.startswith(f"block{block}_")]
            if not convs:
                break
            if block > 1:
                x = pool2x2(x, self.pooling)
            weights = [_ConvParams(cin, cout, name=name)() for name, cin, cout in convs]
            keep = tuple(name in wanted for name, _, _ in convs)
            x, kept = block_fn(x, weights, keep)
            outputs.update(zip([n for (n, _, _), k in zip(convs, keep) if k], kept))
        return {name: outputs[name] for name in self.layers}


def vgg19_features(params: ParamTree, images: AnyArray, layers: Sequence[str],
                   pooling: str = "max", dtype: DTypeLike = jnp.float32,
                   remat: bool = False) -> dict[str, jax.Array]:
    """Activations of `layers` for RGB images in [0, 1]: (N, H, W, 3) -> {name: (N, h, w, C)};
    one (H, W, 3) image runs as a batch of one (N = 1).

    uint8 images are converted (x / 255) and other integer types refused, as everywhere; the
    values' range is not checked here (`jaxstyle.objective.as_image_batch` does that).

    The params' width (`params_width`) sets the channel counts: VGG19's own, or a narrower
    network of the same shape (engine 3's distilled encoder).

    Example:

    >>> images = jnp.zeros((2, 32, 48, 3))
    >>> features = jaxstyle.vgg19_features(params, images, ["block2_conv1", "block4_conv1"])
    >>> features["block2_conv1"].shape, features["block4_conv1"].shape
    ((2, 16, 24, 128), (2, 4, 6, 512))
    """
    if np.ndim(images) == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (H, W, 3) or (N, H, W, 3), got {images.shape}")
    if under_min_side(images.shape):
        raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE}, got {images.shape}")
    model = VGG19(layers=tuple(layers), pooling=pooling, dtype=dtype, remat=remat,
                  width=params_width(params))
    return cast(dict[str, jax.Array], model.apply({"params": params}, images))
