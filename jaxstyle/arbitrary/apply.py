"""Engine 3 for callers: arrays in, arrays out, with every control the CLI has.

    params, header = load_builtin_decoder()               # or load_decoder("my.jxs")
    out = apply_any(None, params, header, photos, [painting], alpha=0.8)

The built-in `any` carries its own small encoder, so VGG19's params may be None; a decoder
for VGG19 (`any-vgg`, a WCT model; `needs_vgg(header)`) takes them as the first argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxstyle._types import ArrayLike, ParamTree
from jaxstyle.arbitrary.adain import StyleStats
from jaxstyle.arbitrary.decoderfile import is_wct_header, load_decoder
from jaxstyle.arbitrary.efdm import EFDMStats
from jaxstyle.arbitrary.multilevel import TRANSFORMS
from jaxstyle.arbitrary.structure import LUMA, check_structure, layout_shift
from jaxstyle.arbitrary.transfer import DEFAULT_TILE, ArbitraryStylizer, BatchedPass
from jaxstyle.arbitrary.wct import WHITENINGS, WCTStats
from jaxstyle.color import recombine_luminance
from jaxstyle.config import normalised_blend
from jaxstyle.errors import ConfigError
from jaxstyle.paramfile import MODELS_DIR

BUILTIN_DECODER = "any"  # jaxstyle/models/any.jxs: `jaxstyle apply any ...`
PRESERVE_COLOR = ("luminance",)


def _wct_choice(name: str, value: Optional[str], allowed: Sequence[str], header: dict,
                what: str) -> str:
    """A WCT model's option `name`: allowed[0] for None; ConfigError naming `name` for a
    value outside `allowed`, or for any other than allowed[0] with an AdaIN model."""
    if value is None:
        return allowed[0]
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    if value != allowed[0] and not is_wct_header(header):
        raise ConfigError(f"{name} chooses a WCT model's {what}; this model is an AdaIN "
                          f"decoder ({header.get('architecture')})")
    return value


def check_whitening(whitening: Optional[str], header: dict) -> str:
    """The whitening a model runs: "eigh" for None; ConfigError naming `whitening` for a
    value outside `WHITENINGS`, or for "newton-schulz" with an AdaIN model (it whitens
    nothing)."""
    return _wct_choice("whitening", whitening, WHITENINGS, header, "whitening")


def check_transform(transform: Optional[str], header: dict) -> str:
    """The feature transform a model runs: "wct" for None; ConfigError naming `transform` for
    a value outside `TRANSFORMS`, or for "efdm" with an AdaIN model (only a WCT model's chain
    has a transform to choose).

    Example:

    >>> _, header = jaxstyle.load_builtin_decoder()  # an AdaIN model
    >>> jaxstyle.arbitrary.apply.check_transform(None, header)
    'wct'
    >>> jaxstyle.arbitrary.apply.check_transform("efdm", header)
    Traceback (most recent call last):
    ...
    jaxstyle.errors.ConfigError: transform chooses a WCT model's feature transform; ...
    """
    return _wct_choice("transform", transform, TRANSFORMS, header, "feature transform")


def load_builtin_decoder() -> tuple[dict, dict]:
    """The decoder shipped with the package (see docs/models.md).

    Example:

    >>> decoder, header = jaxstyle.load_builtin_decoder()
    >>> header["architecture"], sorted(decoder)  # it carries its own small encoder
    ('adain-distilled-relu4_1', ['decoder', 'encoder'])
    """
    return load_decoder(MODELS_DIR / f"{BUILTIN_DECODER}.jxs")


def make_any_stylizer(vgg_params: Optional[ParamTree], params: dict, header: dict, *,
                      levels: Optional[int | Sequence[int]] = None, mesh: Optional[Mesh] = None,
                      tile: Optional[int] | str = "default",
                      whitening: Optional[str] = None,
                      transform: Optional[str] = None) -> BatchedPass:
    """The compiled one-pass stylizer a model file asks for: the WCT chain
    (`multilevel.WCTStylizer`, at `levels` or the header's `default_levels`, else every level
    it holds, whitening by `whitening`: "eigh", the default, or "newton-schulz"; each level's
    transform by `transform`: "wct", the default, or "efdm", which whitens nothing) or the
    AdaIN decoder (`ArbitraryStylizer`). Both take the same calls. tile: px, None (never
    tile) or "default": 1024 for AdaIN, `WCT_TILE` for WCT."""
    whitening = check_whitening(whitening, header)
    transform = check_transform(transform, header)  # with whitening: WCTStylizer's check
    if is_wct_header(header):
        from jaxstyle.arbitrary.multilevel import WCT_TILE, WCTStylizer

        if tile == "default":
            tile = WCT_TILE
        elif isinstance(tile, str):
            raise ConfigError(f"tile must be px, None or 'default', got {tile!r}")
        if levels is None:
            levels = header.get("default_levels")
        try:
            return WCTStylizer(vgg_params, params, header["width"], levels=levels, mesh=mesh,
                               tile=tile, whitening=whitening, transform=transform)
        except ValueError as exc:  # a tile the levels cannot split, efdm with a whitening
            raise ConfigError(str(exc)) from None
    if levels is not None:
        raise ConfigError("levels choose WCT's levels; this model is an AdaIN decoder "
                          f"({header.get('architecture')})")
    if tile == "default":
        tile = DEFAULT_TILE
    elif isinstance(tile, str):
        raise ConfigError(f"tile must be px, None or 'default', got {tile!r}")
    return ArbitraryStylizer(vgg_params, params, header["width"], mesh=mesh, tile=tile)


def region_masks(masks: np.ndarray, count: int) -> np.ndarray:
    """Masks (M, H, W) in [0, 1] -> per-style weights (H, W, count) summing to 1.

    One mask per style (white = that style here), or one mask for two styles (black = the
    first, white = the second), as the optimiser's --mask. Where no mask is white, the styles
    share equally.
    """
    masks = np.asarray(masks, np.float32)
    if masks.ndim != 3:
        raise ConfigError(f"masks must be (M, H, W), got {masks.shape}")
    if masks.shape[0] == 1 and count == 2:
        masks = np.concatenate([1.0 - masks, masks])
    if masks.shape[0] != count:
        raise ConfigError(f"{masks.shape[0]} masks for {count} style images: give one mask "
                          "per style image, or one mask for exactly two")
    weights = np.moveaxis(np.clip(masks, 0.0, 1.0), 0, -1) + 1e-6  # no 0/0 where none is set
    return weights / weights.sum(axis=-1, keepdims=True)


def default_structure(header: dict) -> float:
    """The `structure` a model runs at unless told: 1.0 for a WCT chain, 0.0 for AdaIN.

    Measured on 12 held-out pairs at 256 px (BENCHMARKS.md, "Issue 37: the photo's layout
    under WCT"): the `wct` chain's layout went from 0.34-0.86 (1 pair at the floor) to
    0.92 and over (12 of 12) and its seed loss fell 5%; AdaIN's outputs already keep the
    layout (0.89 at worst), so their default stays the picture they always gave."""
    return 1.0 if is_wct_header(header) else 0.0


_layout_shift = jax.jit(layout_shift)


def _restore_in_place(result: np.ndarray, photos: np.ndarray, structure: float
                      ) -> np.ndarray:
    """`structure.restore_layout` on the host, adding the shift into `result` (writable,
    (N,H,W,3) float32) so no further full-size RGB copy is held; returns it, clipped to
    [0, 1] as `restore_layout` clips (what the exported file computes)."""
    shift = np.asarray(_layout_shift(result @ LUMA, photos @ LUMA))
    result += structure * shift[..., None]
    return np.clip(result, 0.0, 1.0, out=result)


def apply_any(vgg_params: Optional[ParamTree], decoder_params: dict, header: dict,
              images: ArrayLike, style_images: Sequence[ArrayLike], *, alpha: float = 1.0,
              blend: Optional[Sequence[float]] = None, masks: Optional[np.ndarray] = None,
              preserve_color: Optional[str] = None, strength: float = 1.0,
              stylizer: Optional[BatchedPass] = None,
              stats: Optional[StyleStats | dict[str, WCTStats] | dict[str, EFDMStats]] = None,
              whitening: Optional[str] = None,
              transform: Optional[str] = None,
              structure: Optional[float] = None) -> np.ndarray:
    """Stylise (H,W,3) or (N,H,W,3) photos in [0, 1] with any style image(s); same shape out.

    style_images: K images (H_k, W_k, 3) in [0, 1], each at the size that sets its strokes.
    alpha in [0, 1]: style strength in feature space (0: the decoder's reconstruction).
    blend: K weights (normalised) to mix the styles; masks (M, H, W) at photo size: style k
    where mask k is white (see `region_masks`); neither with K > 1: equal blend.
    preserve_color 'luminance': the photo's colours. strength: blend with the photo in pixels.
    whitening (WCT models): "eigh" (an eigendecomposition; the default, or the given
    stylizer's own) or "newton-schulz" (matrix products only, as the ONNX export whitens;
    nearly the same picture). transform (WCT models): each level's feature transform, "wct"
    (whitening and colouring; the default, or the given stylizer's own) or "efdm" (exact
    feature distribution matching: more of the photo's layout kept). structure in [0, 1]:
    how much of the photo's blurred luminance is put back under the picture
    (`structure.restore_layout`); default the model's own (`default_structure`: 1 for WCT
    models, whose deep level moves the photo's light and dark areas, 0 for AdaIN ones, which
    keep them). Pass a `stylizer` to
    reuse its compiled programs across calls,
    and the paintings' `stats` (`stylizer.style_stats(style_images)`) to skip their encoder
    pass on every call (a video's batches, a folder of photos).

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> decoder, header = jaxstyle.load_builtin_decoder()
    >>> out = jaxstyle.apply_any(params, decoder, header, photo, [painting], alpha=0.8)
    >>> out.shape, out.dtype
    ((32, 32, 3), dtype('float32'))
    """
    for name, value in (("alpha", alpha), ("strength", strength)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
            raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
    if preserve_color not in (None, *PRESERVE_COLOR):
        raise ConfigError(f"preserve_color must be one of {PRESERVE_COLOR}, got "
                          f"{preserve_color!r}")
    structure = default_structure(header) if structure is None else check_structure(structure)
    if whitening is not None or stylizer is None:
        whitening = check_whitening(whitening, header)
        own = getattr(stylizer, "whitening", "eigh")  # an AdaIN stylizer whitens nothing
        if stylizer is not None and own != whitening:
            raise ConfigError(f"whitening {whitening!r}, but the stylizer given whitens by "
                              f"{own!r}: make it with the same whitening")
    if transform is not None or stylizer is None:
        transform = check_transform(transform, header)
        own = getattr(stylizer, "transform", "wct")  # an AdaIN stylizer has no transform
        if stylizer is not None and own != transform:
            raise ConfigError(f"transform {transform!r}, but the stylizer given transforms by "
                              f"{own!r}: make it with the same transform")
    count = len(style_images)
    if count == 0:
        raise ConfigError("give at least one style image")
    if blend is not None and masks is not None:
        raise ConfigError("give blend weights or masks, not both: masks say where each style "
                          "goes")
    photos = np.asarray(images, np.float32)
    single = photos.ndim == 3
    batch = photos[None] if single else photos
    n = batch.shape[0]
    stylizer = stylizer or make_any_stylizer(vgg_params, decoder_params, header,
                                             whitening=whitening, transform=transform)
    if stats is None:
        stats = stylizer.style_stats(style_images)
    weights = region = None
    if masks is not None:
        region = np.broadcast_to(region_masks(masks, count), (n, *batch.shape[1:3], count))
    else:
        row = normalised_blend(np.ones(count) if blend is None else blend, count,
                               "style images")
        weights = np.broadcast_to(row, (n, count))
    out = stylizer(batch, stats, weights=weights, masks=region, alpha=alpha)
    result = np.asarray(out, np.float32)
    if structure > 0:  # before the colours: the photo's layout, then the photo's chroma
        result = _restore_in_place(np.array(result), batch, structure)
    if preserve_color == "luminance":
        result = np.asarray(recombine_luminance(result, jnp.asarray(batch)), np.float32)
    if strength != 1:
        result = strength * result + (1 - strength) * batch
    result = np.clip(result, 0.0, 1.0)
    return result[0] if single else result


__all__ = ["BUILTIN_DECODER", "PRESERVE_COLOR", "apply_any", "check_transform",
           "check_whitening", "default_structure",
           "load_builtin_decoder", "make_any_stylizer", "region_masks"]
