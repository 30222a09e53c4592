"""Engine 3's forward pass: any painting as the style, one pass, no training per style.

    encoder (VGG19 to relu4_1, shared) -> AdaIN to the style's statistics -> decoder

    stats = style_statistics(vgg_params, painting)              # once per painting
    out = stylize_arrays(vgg_params, decoder_params, width, photos, stats, alpha=0.8)

Photos of any size >= 32 px run at full resolution: each is reflection-padded to a multiple of
8 (three poolings to relu4_1, three doublings back) and the output cropped to its size. All
functions take and return arrays and are pure, so they jit, vmap and shard like the other
engines; `ArbitraryStylizer` caches one compiled program per shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.typing import DTypeLike

from jaxstyle._types import AnyArray, ArrayLike, ParamTree
from jaxstyle.arbitrary.adain import StyleStats, adain_target, channel_stats, stack_stats
from jaxstyle.arbitrary.decoder import ENCODER_DOWNSAMPLING, ENCODER_LAYER, Decoder
from jaxstyle.fastconv import cpu_conv_compiler_options
from jaxstyle.layers import crop_padding, padding_to_multiple, reflect_pad, transpose_kernels
from jaxstyle.vgg import LAYER_NAMES, MIN_SIDE, under_min_side, vgg19_features

# Huang & Belongie's style layers: relu1_1 .. relu4_1, whose statistics the decoder's training
# matches; relu4_1 is also the content layer and where AdaIN happens.
STATS_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")


# A distilled encoder's convs (`jaxstyle.arbitrary.encoder`): VGG19's names up to relu4_1.
ENCODER_CONVS = LAYER_NAMES[:LAYER_NAMES.index(ENCODER_LAYER) + 1]


def conv_params(encoder: ParamTree) -> dict:
    """A distilled encoder's conv params alone (what `encode` runs), without its embeddings."""
    return {name: encoder[name] for name in ENCODER_CONVS}


def split_params(params: dict) -> tuple[dict, Optional[dict]]:
    """(decoder params, own encoder params or None) of a model file's params
    (`jaxstyle.arbitrary.decoderfile.load_decoder`): a model with its own distilled encoder
    holds {"decoder": ..., "encoder": ...}; one for VGG19 holds the decoder's alone."""
    if set(params) == {"decoder", "encoder"}:
        return params["decoder"], params["encoder"]
    return params, None


def pad_for_encoder(images: jax.Array) -> tuple[jax.Array, tuple[int, int], tuple[int, int]]:
    """Reflection-pad (N,H,W,C) so H and W are multiples of 8; returns (padded, rows, cols)."""
    rows = padding_to_multiple(images.shape[1], ENCODER_DOWNSAMPLING)
    cols = padding_to_multiple(images.shape[2], ENCODER_DOWNSAMPLING)
    return reflect_pad(images, rows, cols), rows, cols


def encode(vgg_params: ParamTree, images: AnyArray, layers: Sequence[str] = (ENCODER_LAYER,),
           dtype: DTypeLike = jnp.float32) -> dict[str, jax.Array]:
    """VGG19 features (post-ReLU) of images (N,H,W,3) in [0,1], H and W multiples of 8."""
    return vgg19_features(vgg_params, images, tuple(layers), dtype=dtype)


def runs_transposed(height: int, width: int) -> bool:
    """Whether engine 3 runs an image transposed (with transposed kernels): landscape ones do.

    Every op of the pass treats H and W alike, so the result is the same (to float rounding).
    Why: XLA CPU ran VGG19's 256- and 512-channel convs about 3x slower at some landscape
    shapes than on the same pixels in portrait, with identical HLO (to relu4_1: H x W 768x1024
    11.0 s, 1024x768 4.0 s; 512x1024 6.8 s, 1024x512 2.5 s; 768x1032 ran at the normal rate),
    while no portrait shape measured was slow and other landscape shapes (384x512, 720x1280)
    ran at the portrait rate. BENCHMARKS.md, "Arbitrary style (engine 3): speed".
    """
    return width > height


def encode_any_orientation(vgg_params: ParamTree, images: AnyArray,
                           layers: Sequence[str] = (ENCODER_LAYER,),
                           dtype: DTypeLike = jnp.float32) -> dict[str, jax.Array]:
    """`encode`, run in portrait orientation (`runs_transposed`); features come back in the
    images' own orientation."""
    if not runs_transposed(*images.shape[1:3]):
        return encode(vgg_params, images, layers, dtype)
    features = encode(transpose_kernels(vgg_params), images.swapaxes(1, 2), layers, dtype)
    return {name: value.swapaxes(1, 2) for name, value in features.items()}


def style_statistics(vgg_params: ParamTree, style_image: ArrayLike) -> StyleStats:
    """The relu4_1 channel statistics of one style image (H,W,3) or (1,H,W,3): (1, 512) rows.

    The style image keeps its own size; that size, relative to the photo's, sets the size of
    the brush strokes (`--style-size`).

    Example:

    >>> painting = np.random.default_rng(0).random((48, 32, 3), np.float32)
    >>> stats = jaxstyle.style_statistics(params, painting)
    >>> stats.mean.shape, stats.std.shape
    ((1, 512), (1, 512))
    """
    image = jnp.asarray(style_image, jnp.float32)
    image = image[None] if image.ndim == 3 else image
    padded, _, _ = pad_for_encoder(image)
    mean, std = channel_stats(_encode_once(vgg_params, padded)[ENCODER_LAYER])
    return StyleStats(mean, std)


_encode_once = jax.jit(encode_any_orientation, static_argnames=("layers", "dtype"))


def mask_features(masks: jax.Array, rows: tuple[int, int], cols: tuple[int, int]) -> jax.Array:
    """Masks (N,H,W,K) at photo size -> (N,H/8,W/8,K) at relu4_1 size (8x8 area means, after
    the same reflection padding as the photo), renormalised to sum 1 at each position."""
    padded = reflect_pad(masks.astype(jnp.float32), rows, cols)
    n, h, w, k = padded.shape
    f = ENCODER_DOWNSAMPLING
    small = padded.reshape(n, h // f, f, w // f, f, k).mean(axis=(2, 4))
    return small / jnp.maximum(small.sum(axis=-1, keepdims=True), 1e-6)


def check_photos(images: AnyArray) -> None:
    """ValueError unless images are (N, H, W, 3) with both sides at least VGG's minimum."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got {images.shape}")
    if under_min_side(images.shape):
        raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE}, got {images.shape}")


def stylize_arrays(vgg_params: ParamTree, decoder_params: ParamTree, width: float,
                   images: AnyArray, stats: StyleStats, *, weights: Optional[jax.Array] = None,
                   masks: Optional[AnyArray] = None, alpha: float | jax.Array = 1.0,
                   dtype: DTypeLike = jnp.float32, transpose_landscape: bool = True) -> jax.Array:
    """Photos (N,H,W,3) in [0,1] painted with K styles' statistics: (N,H,W,3) in (0,1).

    weights (N,K): blend the styles; masks (N,H,W,K) at photo size: style k where mask k is;
    neither: one style. alpha in [0, 1] (scalar or (N,)): style strength in feature space (0
    gives the decoder's reconstruction of the photo). Landscape photos run transposed unless
    `transpose_landscape=False` (`runs_transposed`: the same result, faster on XLA CPU). Pure;
    jit it (see ArbitraryStylizer).

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> decoder = jaxstyle.arbitrary.init_decoder(0, width=0.25)  # or a trained one's params
    >>> stats = jaxstyle.style_statistics(params, painting)
    >>> run = jax.jit(jaxstyle.stylize_arrays, static_argnums=2)  # pure: jit it
    >>> run(params, decoder, 0.25, photo[None], stats, alpha=0.5).shape
    (1, 32, 32, 3)
    """
    check_photos(images)
    height, width_px = images.shape[1:3]
    if transpose_landscape and runs_transposed(height, width_px):
        out = stylize_arrays(transpose_kernels(vgg_params), transpose_kernels(decoder_params),
                             width, images.swapaxes(1, 2), stats, weights=weights,
                             masks=None if masks is None else masks.swapaxes(1, 2),
                             alpha=alpha, dtype=dtype)
        return out.swapaxes(1, 2)
    padded, rows, cols = pad_for_encoder(jnp.asarray(images, jnp.float32))
    content = encode(vgg_params, padded, dtype=dtype)[ENCODER_LAYER]
    small_masks = None if masks is None else mask_features(jnp.asarray(masks), rows, cols)
    target = adain_target(content, stats, weights=weights, masks=small_masks, alpha=alpha)
    decoded = cast(jax.Array, Decoder(width=width, dtype=dtype).apply({"params": decoder_params},
                                                                      target))
    return crop_padding(decoded, rows, cols)


# --- Tiles: full resolution in bounded memory ---------------------------------------------

# A tile's margin on each side of its core, in relu4_1 positions (8 px each). The encoder sees
# about 37 px around a pixel (its receptive radius to relu4_1, poolings included) and the
# decoder about 4 positions (30 px): with 6 positions (48 px) of real neighbours around every
# core, each tile's core is computed exactly as in the whole image, to float rounding
# (tests/test_arbitrary.py; that test fails with 3 positions and passes from 4).
TILE_HALO = 6
DEFAULT_TILE = 1024  # px of a tile's core; photos over (2 x this)^2 px are run in tiles


def tile_windows(size: int, core: int,
                 halo: int = TILE_HALO) -> tuple[int, list[tuple[int, int, int]]]:
    """Cover positions [0, size) with cores of `core`, each inside a window of one length.

    Returns (window_length, [(window_start, core_start, core_length), ...]). The last core is
    shifted back to end at `size` (it overlaps the one before), and windows are clamped inside
    [0, size), so every window has the same shape (one compiled program) and every core has
    `halo` real neighbours on each side that is not the image's own edge.
    """
    if size <= core:
        return size, [(0, 0, size)]
    length = min(size, core + 2 * halo)
    starts = list(range(0, size - core, core)) + [size - core]
    return length, [(min(max(start - halo, 0), size - length), start, core) for start in starts]


def stylize_tiled(encode_tile: Callable, target_of: Callable, decode_tile: Callable,
                  images: np.ndarray, masks: Optional[np.ndarray], tile: int) -> np.ndarray:
    """`stylize_arrays` in tiles of `tile` px (a multiple of 8), on the host: same result.

    encode_tile(padded window (N,h,w,3)) -> relu4_1 features; target_of(features of the whole
    photo, relu4_1-sized masks or None) -> the AdaIN target; decode_tile(target window) ->
    pixels. Only the relu4_1 maps of the whole photo (1/64 of its pixels, 512 channels) and
    one tile's activations are held at a time, so memory stays bounded at any photo size;
    AdaIN still uses the whole photo's statistics, as untiled.
    """
    f = ENCODER_DOWNSAMPLING
    height, width_px = images.shape[1:3]
    padded_device, rows, cols = pad_for_encoder(jnp.asarray(images, jnp.float32))
    padded = np.asarray(padded_device)
    n, rows_px, cols_px = padded.shape[:3]
    (row_length, row_tiles), (col_length, col_tiles) = (
        tile_windows(rows_px // f, tile // f), tile_windows(cols_px // f, tile // f))
    content: Optional[np.ndarray] = None
    for row_window, row_core, row_count in row_tiles:
        for col_window, col_core, col_count in col_tiles:
            window = padded[:, row_window * f:(row_window + row_length) * f,
                            col_window * f:(col_window + col_length) * f]
            features = np.asarray(encode_tile(window))
            if content is None:
                content = np.empty((n, rows_px // f, cols_px // f, features.shape[-1]),
                                   np.float32)
            top, left = row_core - row_window, col_core - col_window
            content[:, row_core:row_core + row_count, col_core:col_core + col_count] = \
                features[:, top:top + row_count, left:left + col_count]
    small_masks = None if masks is None else mask_features(jnp.asarray(masks), rows, cols)
    target = np.asarray(target_of(content, small_masks))
    out = np.empty((n, rows_px, cols_px, 3), np.float32)
    for row_window, row_core, row_count in row_tiles:
        for col_window, col_core, col_count in col_tiles:
            pixels = np.asarray(decode_tile(target[:, row_window:row_window + row_length,
                                                   col_window:col_window + col_length]))
            top, left = (row_core - row_window) * f, (col_core - col_window) * f
            out[:, row_core * f:(row_core + row_count) * f,
                col_core * f:(col_core + col_count) * f] = \
                pixels[:, top:top + row_count * f, left:left + col_count * f]
    return out[:, rows[0]:rows[0] + height, cols[0]:cols[0] + width_px]


class BatchedPass:
    """The call that engine 3's compiled passes share (`ArbitraryStylizer`, the WCT chain's
    `multilevel.WCTStylizer`): `(images, stats, weights=None, masks=None, alpha)`, the batch
    filled up to a multiple of the mesh's devices (copies of the last image, dropped again),
    big photos sent to `_tiled`. A subclass sets mesh, whole, split, vgg_params,
    model_params, `_jitted(vgg, model, images, stats, weights, masks, alpha)`, `runs_tiled`
    and `_tiled(per_image, stats)`."""

    mesh: Optional[Mesh]
    whole: Optional[NamedSharding]  # replicated over the mesh
    split: Optional[NamedSharding]  # the batch split over the mesh
    vgg_params: Any
    model_params: Any
    _jitted: Callable[..., jax.Array]

    def runs_tiled(self, height: int, width: int) -> bool:
        """Whether a photo of this size runs in tiles (a subclass says)."""
        raise NotImplementedError

    def _tiled(self, per_image: dict, stats: Any) -> np.ndarray:
        raise NotImplementedError

    def style_stats(self, style_images: Sequence[ArrayLike]) -> Any:
        """The statistics of K paintings (a list of (H,W,3), each at its own size) that a
        call takes (a subclass says)."""
        raise NotImplementedError

    def __call__(self, images: ArrayLike, stats: Any, weights: Optional[ArrayLike] = None,
                 masks: Optional[ArrayLike] = None, alpha: ArrayLike = 1.0) -> jax.Array:
        n = np.shape(images)[0]
        given = {"images": images, "weights": weights, "masks": masks,
                 "alpha": np.broadcast_to(np.asarray(alpha, np.float32), (n,))}
        per_image: dict[str, Any] = {k: None if v is None else np.asarray(v, np.float32)
                                     for k, v in given.items()}
        if self.mesh is not None:  # fill the batch up to a multiple of the devices
            from jaxstyle.mesh import padded_size

            total = padded_size(n, self.mesh.devices.size)
            per_image = {k: None if v is None else
                         np.concatenate([v, np.repeat(v[-1:], total - n, axis=0)])
                         for k, v in per_image.items()}
            stats = jax.device_put(stats, self.whole)
        if self.runs_tiled(*per_image["images"].shape[1:3]):
            return jnp.asarray(self._tiled(per_image, stats)[:n])
        put = self._put
        out = self._jitted(self.vgg_params, self.model_params, put(per_image["images"]), stats,
                           put(per_image["weights"]), put(per_image["masks"]),
                           put(per_image["alpha"]))
        return out[:n]

    def _put(self, x: Any) -> Any:
        """An array with its batch split over the mesh's devices (as it is without a mesh)."""
        return x if x is None or self.mesh is None else jax.device_put(x, self.split)


class ArbitraryStylizer(BatchedPass):
    """A decoder's compiled forward pass: `(images, stats, weights=None, masks=None, alpha)`.

    The VGG and decoder params are arguments of the compiled program (not baked-in
    constants); it compiles once per input shape (`trace_count` counts). `style_stats` gives
    the statistics of several style images at once. With a mesh (`jaxstyle.mesh.data_mesh`)
    the batch is split over its devices (filled up to a multiple of their count with copies of
    the last image, which are dropped again) and the params replicated. Photos over
    (2 x `tile`)^2 px run in `tile`-px tiles (`stylize_tiled`: the same result in bounded
    memory; about 0.8 kB per pixel untiled on a CPU, so a 24 MP photo would need ~19 GB);
    `tile=None` never tiles.

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> decoder, header = jaxstyle.load_builtin_decoder()
    >>> stylizer = jaxstyle.ArbitraryStylizer(None, decoder, header["width"])  # own encoder
    >>> stats = stylizer.style_stats([painting])
    >>> stylizer(photo[None], stats, alpha=0.8).shape, stylizer.trace_count
    ((1, 32, 32, 3), 1)
    """

    def __init__(self, vgg_params: Optional[ParamTree], decoder_params: dict, width: float,
                 dtype: DTypeLike = jnp.float32, mesh: Optional[Mesh] = None,
                 tile: Optional[int] = DEFAULT_TILE) -> None:
        from jaxstyle.mesh import batch_sharding, replicated

        # A model with its own (distilled) encoder runs that, and needs no VGG19 (None).
        decoder_params, own_encoder = split_params(decoder_params)
        if own_encoder is not None:
            vgg_params = conv_params(own_encoder)
        elif vgg_params is None:
            raise ValueError("this decoder decodes VGG19's features: give VGG19's params")

        self.mesh = mesh
        self.whole = whole = None if mesh is None else replicated(mesh)
        self.split = None if mesh is None else batch_sharding(mesh)
        self.vgg_params = jax.device_put(vgg_params, whole)
        self.decoder_params = self.model_params = jax.device_put(decoder_params, whole)
        self.width, self.dtype = float(width), dtype
        self.trace_count = 0
        if tile is not None and (tile < 8 * (TILE_HALO + 1) or tile % ENCODER_DOWNSAMPLING):
            raise ValueError(f"tile must be a multiple of {ENCODER_DOWNSAMPLING} and at least "
                             f"{8 * (TILE_HALO + 1)} px, got {tile}")
        self.tile = tile

        def run(vgg_params, decoder_params, images, stats, weights, masks, alpha):
            self.trace_count += 1  # runs only while tracing
            return stylize_arrays(vgg_params, decoder_params, self.width, images, stats,
                                  weights=weights, masks=masks, alpha=alpha, dtype=dtype)

        # On a CPU, XLA's default conv library (YNNPACK) ran this network about 2x slower
        # than its Eigen path (`jaxstyle bench arbitrary`); no effect on GPU/TPU.
        fast = cpu_conv_compiler_options()
        self._jitted = jax.jit(run, compiler_options=fast)
        # The tiled path's three programs (each compiles once per window shape).
        self._encode_tile = jax.jit(
            lambda vgg, x: encode_any_orientation(vgg, x, dtype=dtype)[ENCODER_LAYER],
            compiler_options=fast)
        self._target = jax.jit(lambda content, stats, weights, masks, alpha: adain_target(
            content, stats, weights=weights, masks=masks, alpha=alpha))
        self._decode_tile = jax.jit(
            lambda params, x: Decoder(width=self.width, dtype=dtype).apply({"params": params}, x),
            compiler_options=fast)

    def runs_tiled(self, height: int, width: int) -> bool:
        """Whether a photo of this size runs in tiles (see the class docstring)."""
        return self.tile is not None and height * width > (2 * self.tile) ** 2

    def style_stats(self, style_images: Sequence[ArrayLike]) -> StyleStats:
        """StyleStats of K style images (a list of (H,W,3), each at its own size): (K, 512)."""
        return stack_stats([style_statistics(self.vgg_params, image) for image in style_images])

    def _tiled(self, per_image: dict, stats: StyleStats) -> np.ndarray:
        """The tiled pass; with a mesh each tile's batch is split over its devices."""
        assert self.tile is not None  # runs_tiled: no tiles without a tile size
        put = self._put
        weights, alpha = put(per_image["weights"]), put(per_image["alpha"])
        return stylize_tiled(
            lambda window: self._encode_tile(self.vgg_params, put(window)),
            lambda content, masks: self._target(put(content), stats, weights, put(masks), alpha),
            lambda window: self._decode_tile(self.decoder_params, put(window)),
            per_image["images"], per_image["masks"], self.tile)


def all_devices_mesh() -> Optional[Mesh]:
    """A data mesh over every device when there are several, else None (no sharding)."""
    from jaxstyle.mesh import data_mesh

    return data_mesh() if jax.device_count() > 1 else None


__all__ = ["DEFAULT_TILE", "ENCODER_CONVS", "STATS_LAYERS", "TILE_HALO", "ArbitraryStylizer",
           "BatchedPass", "check_photos",
           "all_devices_mesh", "conv_params", "encode", "encode_any_orientation",
           "mask_features", "pad_for_encoder",
           "runs_transposed", "split_params", "style_statistics", "stylize_arrays",
           "stylize_tiled", "tile_windows"]
