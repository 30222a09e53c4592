"""Engine 3 by WCT (Li et al. 2017): the coarse-to-fine chain over VGG19's levels.

    for level in (4, 3, 2, 1):              # deepest first; `levels` chooses them
        features = VGG19 to relu{level}_1 (image)
        image = decoder[level](wct_target(features, painting's statistics at that level))

Each level's decoder only learned to reconstruct (`train-decoder --reconstruct --level`): the
style is whitening and colouring, closed-form maths, at every level. The deep levels set the
painting's large-scale statistics, the shallow ones restore fine texture and sharpness that
the deep decoders blur. The photo is reflection-padded once to a multiple of the deepest
level's downsampling and cropped at the end; landscape photos run transposed, as AdaIN's
pass does (`transfer.runs_transposed`).

`WCTStylizer` has `ArbitraryStylizer`'s interface (`style_stats`, the shared `BatchedPass`
call with weights, masks and alpha, `trace_count`, meshes, tiles), so the CLI, video and the
studio take either.
Photos over (2 x tile)^2 px run level by level in tiles: each level's statistics are
gathered over the whole photo first (`wct.combine_moments`), then every tile is transformed
with them and decoded, so the result equals the untiled one to float rounding.

`transform` chooses each level's feature transform (`TRANSFORMS`): "wct", whitening and
colouring (the default), or "efdm", exact feature distribution matching (`efdm.py`: each
channel's values replaced, rank for rank, by the painting's), which keeps more of the photo's
layout at about WCT's style loss with the same decoders. In tiles, efdm takes its ranks from
the whole photo's quantiles merged from the tiles' (`efdm.merge_quantiles`): close to, not
equal to, the untiled result (tests/test_efdm.py states the tolerance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike, DTypeLike

from jaxstyle._types import ParamTree
from jaxstyle.arbitrary.decoder import LEVEL_LAYERS, Decoder, level_name, level_number
from jaxstyle.arbitrary.efdm import (
    EFDMStats,
    content_quantiles,
    efdm_target,
    merge_quantiles,
    quantile_stats,
    stack_efdm_stats,
)
from jaxstyle.arbitrary.transfer import (
    BatchedPass,
    check_photos,
    encode,
    encode_any_orientation,
    runs_transposed,
    tile_windows,
)
from jaxstyle.arbitrary.wct import (
    RIDGE,
    WHITENINGS,
    ContentStats,
    WCTStats,
    combine_moments,
    content_stats_from_moments,
    region_moments,
    stack_wct_stats,
    wct_stats,
    wct_target,
)
from jaxstyle.errors import ConfigError
from jaxstyle.fastconv import cpu_conv_compiler_options
from jaxstyle.layers import crop_padding, padding_to_multiple, reflect_pad, transpose_kernels

# Each level's tile margin in px, beyond which a pixel no longer changes a tile's core: the
# encoder's receptive radius to relu{k}_1 plus the decoder's, rounded up to whole positions
# (tests/test_wct.py checks tiled == untiled).
TILE_HALO_PX = {1: 8, 2: 16, 3: 32, 4: 48, 5: 160}
# WCT's default tile: the relu1_1 level holds 64 full-resolution channels per tile, so 1024 px
# tiles peaked at 3.7 GB on a 4000x3000 photo and 512 px tiles at 1.8 GB, also faster
# (BENCHMARKS.md, "Any painting, painted for real").
WCT_TILE = 512
# Each level's feature transform: whitening and colouring, or exact distribution matching.
TRANSFORMS = ("wct", "efdm")
LevelStats = WCTStats | EFDMStats


def chain_levels(available: Sequence[int], levels: Optional[int | Sequence[int]] = None
                 ) -> tuple[int, ...]:
    """The levels to run, deepest first: all the model has (None), N (relu{N}_1 down to
    relu1_1) or a list; ConfigError names a level the model lacks."""
    available = tuple(sorted(set(available), reverse=True))
    if levels is None:
        return available
    wanted = tuple(range(int(levels), 0, -1)) if isinstance(levels, (int, np.integer)) else \
        tuple(sorted({int(k) for k in levels}, reverse=True))
    if not wanted or any(k not in LEVEL_LAYERS for k in wanted):
        raise ConfigError(f"levels must be 1-5, got {levels!r}")
    missing = [level_name(k) for k in wanted if k not in available]
    if missing:
        raise ConfigError(f"the model has no decoder for {', '.join(missing)} (it holds "
                          f"{', '.join(level_name(k) for k in available)})")
    return wanted


def downsampling(level: int) -> int:
    """relu{k}_1's map is 1/2^(k-1) of the image's size."""
    return 2 ** (level - 1)


def check_transform_name(transform: str, whitening: str = "eigh") -> str:
    """`transform` itself if it is one of `TRANSFORMS`; ValueError naming the choices, or
    for "efdm" with a whitening other than the default (efdm whitens nothing). The one rule
    the stylizer, the export and the studio all apply."""
    if not isinstance(transform, str) or transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got "
                         f"{transform!r}")
    if transform == "efdm" and whitening != "eigh":
        raise ValueError(f"whitening {whitening!r} chooses WCT's whitening; transform "
                         "'efdm' whitens nothing")
    return transform


def painting_statistics(vgg_params: ParamTree, style_image: ArrayLike,
                        levels: Sequence[int], transform: str = "wct"
                        ) -> dict[str, LevelStats]:
    """One painting's (H,W,3) statistics at each level, from one encoder pass: {name: (1, ...)};
    `WCTStats` for transform "wct", `EFDMStats` for "efdm"."""
    statistics = _STATISTICS[check_transform_name(transform)]
    image = jnp.asarray(style_image, jnp.float32)
    image = image[None] if image.ndim == 3 else image
    layers = tuple(LEVEL_LAYERS[k] for k in levels)
    features = _encode_once(vgg_params, image, layers)
    return {level_name(k): statistics(features[LEVEL_LAYERS[k]]) for k in levels}


_encode_once = jax.jit(encode_any_orientation, static_argnames=("layers", "dtype"))
_STATISTICS: dict[str, Callable] = {"wct": jax.jit(wct_stats),
                                    "efdm": jax.jit(lambda f: quantile_stats(f))}


def stack_level_stats(stats: Sequence[LevelStats]) -> LevelStats:
    """Several paintings' statistics at one level (all WCTStats or all EFDMStats) as one."""
    if all(isinstance(s, EFDMStats) for s in stats):
        return stack_efdm_stats(cast(Sequence[EFDMStats], stats))
    return stack_wct_stats(cast(list[WCTStats], list(stats)))


def level_target(content: jax.Array, stats: LevelStats, transform: str, *,
                 weights: Optional[jax.Array] = None, masks: Optional[jax.Array] = None,
                 alpha: float | jax.Array = 1.0, ridge: float = RIDGE,
                 whitening: str = "eigh", own: Optional[object] = None) -> jax.Array:
    """One level's target features by `transform`: `wct.wct_target` or `efdm.efdm_target`
    (own: a `ContentStats` for wct, whole-photo quantiles (N, Q, C) for efdm)."""
    if transform == "efdm":
        if not isinstance(stats, EFDMStats):
            raise ValueError("transform 'efdm' needs EFDMStats (style_stats of an efdm "
                             "stylizer)")
        return efdm_target(content, stats, weights=weights, masks=masks, alpha=alpha,
                           own=cast(Optional[jax.Array], own))
    if not isinstance(stats, WCTStats):
        raise ValueError("transform 'wct' needs WCTStats (style_stats of a wct stylizer)")
    return wct_target(content, stats, weights=weights, masks=masks, alpha=alpha, ridge=ridge,
                      own=cast(Optional[ContentStats], own), whitening=whitening)


def masks_at(masks: jax.Array, factor: int) -> jax.Array:
    """Masks (N,H,W,K), H and W multiples of `factor` -> (N,H/f,W/f,K) area means,
    renormalised to sum 1 at each position."""
    n, h, w, k = masks.shape
    small = masks.reshape(n, h // factor, factor, w // factor, factor, k).mean(axis=(2, 4))
    return small / jnp.maximum(small.sum(axis=-1, keepdims=True), 1e-6)


def _decode(width: float, level: int, params: ParamTree, target: jax.Array,
            dtype: DTypeLike) -> jax.Array:
    return cast(jax.Array, Decoder(width=width, level=level, dtype=dtype).apply(
        {"params": params}, target))


def stylize_wct(vgg_params: ParamTree, decoders: dict, width: float, images: jax.Array,
                stats: dict[str, LevelStats], levels: Sequence[int], *,
                weights: Optional[jax.Array] = None, masks: Optional[jax.Array] = None,
                alpha: float | jax.Array = 1.0, ridge: float = RIDGE,
                dtype: DTypeLike = jnp.float32, transpose_landscape: bool = True,
                whitening: str = "eigh", transform: str = "wct") -> jax.Array:
    """Photos (N,H,W,3) in [0,1] through the WCT chain: (N,H,W,3) in (0,1). Pure; jit it.

    decoders: {"relu4_1": params, ...}; stats: the paintings' `WCTStats` per level name (K
    rows); levels deepest first. weights (N,K) blend the paintings; masks (N,H,W,K) at
    photo size place them; alpha (scalar or (N,)) is applied at every level, as Li et al. do.
    whitening: "eigh" or "newton-schulz" (matrix products only: what ONNX export uses).
    transform: "wct" (whitening and colouring) or "efdm" (exact distribution matching, stats
    `EFDMStats`; whitening and ridge are then unused).
    """
    check_photos(images)
    check_transform_name(transform)
    height, width_px = images.shape[1:3]
    if transpose_landscape and runs_transposed(height, width_px):
        out = stylize_wct(transpose_kernels(vgg_params), transpose_kernels(decoders), width,
                          images.swapaxes(1, 2), stats, levels, weights=weights,
                          masks=None if masks is None else masks.swapaxes(1, 2), alpha=alpha,
                          ridge=ridge, dtype=dtype, whitening=whitening, transform=transform)
        return out.swapaxes(1, 2)
    multiple = downsampling(max(levels))
    rows, cols = padding_to_multiple(height, multiple), padding_to_multiple(width_px, multiple)
    x = reflect_pad(images.astype(jnp.float32), rows, cols)
    padded_masks = None if masks is None else reflect_pad(masks.astype(jnp.float32), rows, cols)
    for level in levels:
        layer = LEVEL_LAYERS[level]
        content = encode(vgg_params, x, (layer,), dtype=dtype)[layer]
        small = None if padded_masks is None else masks_at(padded_masks, downsampling(level))
        target = level_target(content, stats[level_name(level)], transform, weights=weights,
                              masks=small, alpha=alpha, ridge=ridge, whitening=whitening)
        x = _decode(width, level, decoders[level_name(level)], target, dtype)
    return crop_padding(x, rows, cols)


def _windows(padded_size: int, factor: int, tile: int,
             halo_px: int) -> tuple[int, list[tuple[int, int, int]]]:
    """tile_windows in a level's positions, returned in px: (length, [(start, core, count)])."""
    length, tiles = tile_windows(padded_size // factor, tile // factor, -(-halo_px // factor))
    return length * factor, [(a * factor, b * factor, c * factor) for a, b, c in tiles]


def wct_level_tiled(encode_tile: Callable, moments_of: Callable, transform_decode: Callable,
                    image: np.ndarray,
                    masks: Optional[np.ndarray], level: int, tile: int,
                    whitening: str = "eigh",
                    combine: Optional[Callable[[list], object]] = None) -> np.ndarray:
    """One level of the chain in tiles, on the host (H and W multiples of the level's
    downsampling): pass 1 gathers the whole photo's moments from each tile's core, pass 2
    transforms every tile with the resulting whitening and decodes it.

    encode_tile(window) -> features; moments_of(features, masks or None) ->
    `region_moments`; transform_decode(features, masks or None, ContentStats) -> pixels.
    Only one tile's activations are held at a time; the encoder runs twice per tile.
    whitening: how the whole photo's whitening is taken ("eigh" or "newton-schulz").
    combine: the tiles' parts (moments_of's answers, in tile order) -> the `own` that
    transform_decode takes; default the whitening of `wct.combine_moments`. For efdm,
    moments_of gives (`efdm.content_quantiles`, positions) and combine `efdm.merge_quantiles`.
    """
    f = downsampling(level)
    n, height, width_px = image.shape[:3]
    (row_len, row_tiles), (col_len, col_tiles) = (
        _windows(height, f, tile, TILE_HALO_PX[level]),
        _windows(width_px, f, tile, TILE_HALO_PX[level]))
    tiles = [(r, c) for r in row_tiles for c in col_tiles]

    def window_of(array, r, c):
        return None if array is None else array[:, r[0]:r[0] + row_len, c[0]:c[0] + col_len]

    def core_of(array, r, c, scale):  # a window's core, in the array's own positions
        top, left = (r[1] - r[0]) // scale, (c[1] - c[0]) // scale
        return array[:, top:top + r[2] // scale, left:left + c[2] // scale]

    def fresh(spans):  # each core less what the cores before it cover (the last overlaps)
        covered, out = 0, []
        for start, core, count in spans:
            begin = max(core, covered)
            out.append((start, begin, core + count - begin))
            covered = core + count
        return out

    parts = []
    for (r, c), (r_new, c_new) in zip(tiles, [(r, c) for r in fresh(row_tiles)
                                              for c in fresh(col_tiles)]):
        features = encode_tile(window_of(image, r, c))
        small = window_of(masks, r, c)
        small = None if small is None else masks_at(jnp.asarray(small), f)
        # Each position counts once in the whole photo's statistics.
        parts.append(moments_of(core_of(features, r_new, c_new, f),
                                None if small is None else core_of(small, r_new, c_new, f)))
    own = content_stats_from_moments(*combine_moments(parts), whitening=whitening) \
        if combine is None else combine(parts)
    out = np.empty((n, height, width_px, 3), np.float32)
    for r, c in tiles:
        small = window_of(masks, r, c)
        small = None if small is None else masks_at(jnp.asarray(small), f)
        pixels = np.asarray(transform_decode(encode_tile(window_of(image, r, c)), small, own))
        out[:, r[1]:r[1] + r[2], c[1]:c[1] + c[2]] = core_of(pixels, r, c, 1)
    return out


class WCTStylizer(BatchedPass):
    """The WCT chain's compiled pass: `(images, stats, weights=None, masks=None, alpha)`.

    model_params: a WCT file's params ({"relu4_1": ..., ...}); levels: `chain_levels`' choice
    (None: every level the file holds). One compiled program per input shape (`trace_count`
    counts), params as arguments, not constants. With a mesh the batch is split over its
    devices (filled up to a multiple of their count) and the params replicated. Photos over
    (2 x tile)^2 px run in tiles (`wct_level_tiled`); tile=None never tiles. whitening: the
    photo's whitening at every level, "eigh" (an eigendecomposition) or "newton-schulz"
    (matrix products only, as the ONNX export runs it; `wct.WHITENINGS`). transform: each
    level's feature transform, "wct" or "efdm" (`TRANSFORMS`); efdm whitens nothing, so it
    takes only the default whitening, and in tiles it takes no masks (ValueError: regions
    would need each region's quantiles gathered over the tiles).
    """

    def __init__(self, vgg_params: Optional[ParamTree], model_params: dict, width: float,
                 levels: Optional[int | Sequence[int]] = None, dtype: DTypeLike = jnp.float32,
                 mesh: Optional[Mesh] = None, tile: Optional[int] = WCT_TILE,
                 ridge: float = RIDGE, whitening: str = "eigh",
                 transform: str = "wct") -> None:
        from jaxstyle.mesh import batch_sharding, replicated

        if vgg_params is None:
            raise ValueError("WCT decodes VGG19's features: give VGG19's params")
        if whitening not in WHITENINGS:
            raise ValueError(f"whitening must be one of {', '.join(WHITENINGS)}, got "
                             f"{whitening!r}")
        self.transform = check_transform_name(transform, whitening)
        self.whitening = whitening
        available = [level_number(name) for name in model_params]
        self.levels = chain_levels(available, levels)
        self.mesh = mesh
        self.whole = whole = None if mesh is None else replicated(mesh)
        self.split = None if mesh is None else batch_sharding(mesh)
        self.vgg_params = jax.device_put(vgg_params, whole)
        self.decoders = self.model_params = jax.device_put(
            {level_name(k): model_params[level_name(k)] for k in self.levels}, whole)
        self.width, self.dtype, self.ridge = float(width), dtype, ridge
        if tile is not None and (tile % downsampling(self.levels[0]) or tile < 56):
            raise ValueError(f"tile must be a multiple of {downsampling(self.levels[0])} and "
                             f"at least 56 px for these levels, got {tile}")
        self.tile = tile
        self.trace_count = 0
        fast = cpu_conv_compiler_options()  # XLA CPU's Eigen convs (see transfer.py)

        def run(vgg_params, decoders, images, stats, weights, masks, alpha):
            self.trace_count += 1  # runs only while tracing
            return stylize_wct(vgg_params, decoders, self.width, images, stats, self.levels,
                               weights=weights, masks=masks, alpha=alpha, ridge=ridge,
                               dtype=dtype, whitening=whitening, transform=transform)

        self._jitted = jax.jit(run, compiler_options=fast)
        self._encode = jax.jit(lambda vgg, x, layer: encode_any_orientation(
            vgg, x, (layer,), dtype=dtype)[layer], static_argnums=2, compiler_options=fast)
        # Pass 1 of the tiles: what each tile's core gives towards the whole photo's statistics.
        self._moments = jax.jit(region_moments) if transform == "wct" else jax.jit(
            lambda features, masks: content_quantiles(features))
        self._transform_decode = jax.jit(
            lambda params, content, stats, weights, masks, own, alpha, level: _decode(
                self.width, level, params, level_target(content, stats, transform,
                                                        weights=weights, masks=masks,
                                                        alpha=alpha, own=own),
                dtype), static_argnums=7, compiler_options=fast)

    def _part(self, features: jax.Array, masks: Optional[jax.Array]) -> object:
        """A tile core's share of the whole photo's statistics: `region_moments` for wct, its
        quantiles and position count for efdm."""
        if self.transform == "efdm":
            return self._moments(features, masks), features.shape[1] * features.shape[2]
        return self._moments(features, masks)

    def runs_tiled(self, height: int, width: int) -> bool:
        return self.tile is not None and height * width > (2 * self.tile) ** 2

    def style_stats(self, style_images: Sequence[ArrayLike]) -> dict[str, LevelStats]:
        """The paintings' (a list of (H,W,3), each at its own size) statistics per level:
        `WCTStats`, or `EFDMStats` for transform "efdm"."""
        each = [painting_statistics(self.vgg_params, image, self.levels, self.transform)
                for image in style_images]
        return {name: stack_level_stats([stats[name] for stats in each]) for name in each[0]}

    def level_milliseconds(self, images: ArrayLike,
                           stats: dict[str, LevelStats]) -> dict[str, float]:
        """Warm ms of each level on these photos (N,H,W,3), one painting, alpha 1: each level
        compiled and run on its own (the chain runs as one program, so its levels cannot be
        timed inside it). For `jaxstyle apply --timings`."""
        import time

        photos = np.asarray(images, np.float32)
        if runs_transposed(*photos.shape[1:3]):
            photos = photos.swapaxes(1, 2)
        multiple = downsampling(self.levels[0])
        rows = padding_to_multiple(photos.shape[1], multiple)
        cols = padding_to_multiple(photos.shape[2], multiple)
        x = reflect_pad(jnp.asarray(photos), rows, cols)
        # The first painting only: every field's first row (WCTStats or EFDMStats alike).
        stats = {name: type(value)(*(field[:1] for field in value))
                 for name, value in stats.items()}
        timings = {}
        for level in self.levels:
            name = level_name(level)
            one = jax.jit(lambda vgg, decoder, x, stats, level=level: stylize_wct(
                vgg, {level_name(level): decoder}, self.width, x, stats, (level,),
                ridge=self.ridge, dtype=self.dtype, transpose_landscape=False,
                whitening=self.whitening, transform=self.transform),
                compiler_options=cpu_conv_compiler_options())
            args = (self.vgg_params, self.decoders[name], x, {name: stats[name]})
            one(*args).block_until_ready()  # compile
            started = time.perf_counter()
            x = one(*args).block_until_ready()
            timings[name] = 1e3 * (time.perf_counter() - started)
        return timings

    def _tiled(self, per_image: dict, stats: dict[str, LevelStats]) -> np.ndarray:
        """The chain level by level in tiles; padding and cropping as `stylize_wct`."""
        assert self.tile is not None  # runs_tiled: no tiles without a tile size
        put = self._put
        images, masks = per_image["images"], per_image["masks"]
        if self.transform == "efdm" and masks is not None:
            raise ValueError(f"transform 'efdm' takes no masks on photos over "
                             f"(2 x {self.tile})^2 px (they run in tiles): give no masks, "
                             "or tile=None")
        height, width_px = images.shape[1:3]
        multiple = downsampling(self.levels[0])
        rows, cols = (padding_to_multiple(height, multiple),
                      padding_to_multiple(width_px, multiple))
        x = np.asarray(reflect_pad(jnp.asarray(images), rows, cols))
        padded_masks = None if masks is None else np.asarray(
            reflect_pad(jnp.asarray(masks), rows, cols))
        weights, alpha = put(per_image["weights"]), put(per_image["alpha"])
        combine = None
        if self.transform == "efdm":  # the whole photo's quantiles, each tile by its positions
            def combine(parts):
                return put(jnp.asarray(merge_quantiles(parts), jnp.float32))
        for level in self.levels:
            name, layer = level_name(level), LEVEL_LAYERS[level]
            x = wct_level_tiled(
                lambda window, layer=layer: self._encode(self.vgg_params, put(window), layer),
                lambda features, small: self._part(features, small),
                lambda features, small, own, name=name, level=level: self._transform_decode(
                    self.decoders[name], features, stats[name], weights, put(small), own,
                    alpha, level),
                x, padded_masks, level, self.tile, self.whitening, combine)
        return x[:, rows[0]:rows[0] + height, cols[0]:cols[0] + width_px]


__all__ = ["TILE_HALO_PX", "TRANSFORMS", "WCT_TILE", "LevelStats", "WCTStylizer",
           "chain_levels", "check_transform_name", "downsampling", "level_target", "masks_at",
           "painting_statistics", "stack_level_stats", "stylize_wct", "wct_level_tiled"]
