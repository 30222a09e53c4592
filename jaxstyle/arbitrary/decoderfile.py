"""Engine 3's model file: the shared params container (`jaxstyle.paramfile`) with an AdaIN
decoder inside, and the encoder it was trained for when that is not VGG19 itself, or WCT's
decoders, one per VGG level.

Three architectures, named in the header, so `jaxstyle apply` needs no flag to tell them apart:
- "adain-vgg19-relu4_1": params are the decoder's; the encoder is the shared VGG19 (fetched
  weights);
- "adain-distilled-relu4_1": params are {"decoder": ..., "encoder": ...}, the encoder a
  distilled small one (`jaxstyle.arbitrary.encoder`) of header field `encoder_width`; no
  VGG19 weights are needed to apply it;
- "wct-vgg19": params are {"relu5_1": ..., "relu4_1": ..., ...}, one reconstruction decoder
  per level that the file holds (`jaxstyle.arbitrary.decoder.Decoder(level=k)`), header
  field `levels` lists them deepest first; the encoder is the shared VGG19. Whitening and
  colouring (`jaxstyle.arbitrary.wct`) run at each level, coarse to fine.
Other header fields: width (the decoder's), training, data_count (photos), style_count."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Optional

import jax
import numpy as np
from flax import traverse_util

from jaxstyle._types import ParamTree
from jaxstyle.arbitrary.decoder import decoder_param_shapes, level_name, level_number
from jaxstyle.arbitrary.encoder import check_encoder, encoder_width_of
from jaxstyle.arbitrary.transfer import split_params
from jaxstyle.paramfile import ModelError, check_shapes, read_param_file, write_param_file

ARCHITECTURE = "adain-vgg19-relu4_1"
OWN_ENCODER_ARCHITECTURE = "adain-distilled-relu4_1"
WCT_ARCHITECTURE = "wct-vgg19"
ARCHITECTURES = (ARCHITECTURE, OWN_ENCODER_ARCHITECTURE, WCT_ARCHITECTURE)


def _width_of(header: dict, context: str) -> float:
    width = header.get("width")
    if not (isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0):
        raise ModelError(f"{context}: width must be a positive number, got {width!r}")
    return float(width)


def _check(header: dict, params: ParamTree, context: str) -> None:
    """ModelError starting with `context` unless the params fit the header (see above)."""
    architecture = header.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ModelError(f"{context}: not an arbitrary-style decoder (architecture "
                         f"{architecture!r}, expected one of {', '.join(ARCHITECTURES)})")
    width = _width_of(header, context)
    if architecture == WCT_ARCHITECTURE:
        _check_wct(header, params, width, context)
        return
    in_channels = 512
    if architecture == OWN_ENCODER_ARCHITECTURE:
        if not isinstance(params, dict) or set(params) != {"decoder", "encoder"}:
            raise ModelError(f"{context}: params must hold a decoder and an encoder")
        encoder_width = encoder_width_of(header, context, "encoder_width")
        check_encoder(params["encoder"], encoder_width, context)
        in_channels = params["encoder"]["block4_conv1"]["bias"].shape[0]
        params = params["decoder"]
    expected = traverse_util.flatten_dict(decoder_param_shapes(width, in_channels))
    check_shapes(params, {path: spec.shape for path, spec in expected.items()}, context,
                 f"for width {width:g}")


def wct_levels_of(header: dict, context: str) -> tuple[int, ...]:
    """The levels a WCT file's header lists, deepest first; ModelError if they are not 1..5."""
    levels = header.get("levels")
    if (not isinstance(levels, list) or not levels
            or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 5
                       for k in levels) or len(set(levels)) != len(levels)):
        raise ModelError(f"{context}: levels must be a list of distinct levels 1-5, got "
                         f"{levels!r}")
    return tuple(sorted(levels, reverse=True))


def _check_wct(header: dict, params: ParamTree, width: float, context: str) -> None:
    levels = wct_levels_of(header, context)
    names = {level_name(k) for k in levels}
    if not isinstance(params, dict) or set(params) != names:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ModelError(f"{context}: the header lists levels {sorted(names)}, the params "
                         f"hold {got}")
    for k in levels:
        expected = traverse_util.flatten_dict(decoder_param_shapes(width, level=k))
        check_shapes(params[level_name(k)], {path: spec.shape for path, spec in
                                            expected.items()},
                     f"{context} ({level_name(k)})", f"for width {width:g}")


def save_wct_level(path: str | os.PathLike, level: int, params: dict, header: dict) -> Path:
    """Write one level's decoder into the WCT file at `path` atomically, keeping the levels it
    already holds (their header fields `level_training` too); a new file holds this level
    alone. header needs `width`, which an existing file must share."""
    path = Path(path)
    levels, training = {}, {}
    if path.exists():
        old_params, old_header, where = read_param_file(path)
        if old_header.get("architecture") != WCT_ARCHITECTURE:
            raise ModelError(f"cannot add a level to {path.name}: it is not a WCT model "
                             f"(architecture {old_header.get('architecture')!r})")
        _check(old_header, old_params, where)
        if float(old_header["width"]) != float(header["width"]):
            raise ModelError(f"cannot add a width {header['width']:g} level to {path.name}: "
                             f"its decoders have width {old_header['width']:g}")
        levels, training = dict(old_params), dict(old_header.get("level_training") or {})
    levels[level_name(level)] = params
    training[level_name(level)] = header.get("training", {})
    header = {**header, "architecture": WCT_ARCHITECTURE, "level_training": training,
              "levels": sorted((level_number(name) for name in levels), reverse=True)}
    header.setdefault("data_count", None)
    header.setdefault("style_count", None)
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float32), levels)
    _check(header, params, f"cannot save {path.name}")
    return write_param_file(path, params, header)


def save_decoder(path: str | os.PathLike, params: dict, header: dict,
                 encoder: Optional[dict] = None) -> Path:
    """Write a decoder (header needs `width`) atomically; with `encoder` (distilled encoder
    params; header needs `encoder_width`) the file carries it and names it.

    Example:

    >>> decoder = jaxstyle.arbitrary.init_decoder(0, width=0.25)  # untrained, for VGG19 features
    >>> path = jaxstyle.arbitrary.save_decoder("untrained.jxs", decoder, {"width": 0.25})
    >>> jaxstyle.load_decoder(path)[1]["architecture"]
    'adain-vgg19-relu4_1'
    """
    path = Path(path)
    if encoder is not None:
        params = {"decoder": params, "encoder": encoder}
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float32), params)
    header = {"architecture": ARCHITECTURE if encoder is None else OWN_ENCODER_ARCHITECTURE,
              "training": {}, "data_count": None, "style_count": None, **header}
    _check(header, params, f"cannot save decoder {path.name}")
    return write_param_file(path, params, header)


class AnyModel(NamedTuple):
    """An engine-3 model file's contents: the decoder's params, its own encoder's (None: the
    shared VGG19) and that encoder's width (1.0 for VGG19), and the header."""

    decoder: dict
    encoder: Optional[dict]
    encoder_width: float
    header: dict


def load_any_model(path: str | os.PathLike) -> AnyModel:
    """The decoder, and its own encoder if it has one; ModelError names any problem."""
    params, header = load_decoder(path)
    decoder, encoder = split_params(params)
    width = 1.0 if encoder is None else float(header["encoder_width"])
    return AnyModel(decoder, encoder, width, header)


def load_decoder(path: str | os.PathLike) -> tuple[dict, dict]:
    """(params, header) of a decoder file; ModelError names any problem in one line.

    params are the file's as they are: the decoder's, or {"decoder": ..., "encoder": ...}
    for a model with its own encoder. Everything that runs a model (`ArbitraryStylizer`,
    `apply_any`) takes either (`split_params`); `load_any_model` names the parts.

    Example:

    >>> untrained = jaxstyle.arbitrary.init_decoder(0, width=0.25)
    >>> path = jaxstyle.arbitrary.save_decoder("untrained.jxs", untrained, {"width": 0.25})
    >>> decoder, header = jaxstyle.load_decoder(path)
    >>> header["architecture"], header["width"], decoder["conv0"]["kernel"].shape
    ('adain-vgg19-relu4_1', 0.25, (3, 3, 512, 64))
    """
    params, header, where = read_param_file(path)
    _check(header, params, where)
    return params, header


def is_wct_header(header: dict) -> bool:
    return header.get("architecture") == WCT_ARCHITECTURE


def needs_vgg(header: dict) -> bool:
    """Whether applying this model needs VGG19's weights (it has no encoder of its own)."""
    return header.get("architecture") != OWN_ENCODER_ARCHITECTURE


def describe_decoder(header: dict) -> str:
    """A few lines for people: architecture, width, size, training and data."""
    from jaxstyle.arbitrary.decoder import decoder_channels

    width = float(header.get("width", 0) or 0)
    if is_wct_header(header):
        return _describe_wct(header, width)
    channels = "/".join(map(str, decoder_channels(width))) if width > 0 else "?"
    encoder = ("VGG19 encoder (fetched weights)" if header.get("architecture") == ARCHITECTURE
               else f"its own distilled encoder, width {header.get('encoder_width')}")
    lines = [f"{header.get('architecture')} decoder, width {width:g} ({channels} channels), "
             f"{encoder}, {header.get('params_bytes', 0) / 1e6:.1f} MB of params, format "
             f"{header.get('format')}, jaxstyle {header.get('jaxstyle_version')}",
             "  any style image works: jaxstyle apply any PHOTO --style-image PAINTING"]
    training = header.get("training") or {}
    if training:
        lines.append("  training: " + ", ".join(f"{key}={value}" for key, value in
                                               sorted(training.items())))
    lines.append(f"  trained on {header.get('data_count')} photos and "
                 f"{header.get('style_count')} style images")
    if header.get("summary"):  # what the side-by-side scoring found (BENCHMARKS.md)
        lines.append(f"  measured: {header['summary']}")
    return "\n".join(lines)


def _describe_wct(header: dict, width: float) -> str:
    levels = header.get("levels") or []
    lines = [f"{WCT_ARCHITECTURE}: whitening and colouring (Li et al. 2017) at "
             f"{', '.join(level_name(k) for k in sorted(levels, reverse=True))}, coarse to "
             f"fine; width {width:g} reconstruction decoders, VGG19 encoder (fetched weights), "
             f"{header.get('params_bytes', 0) / 1e6:.1f} MB of params, format "
             f"{header.get('format')}, jaxstyle {header.get('jaxstyle_version')}",
             "  any style image works: jaxstyle apply MODEL PHOTO --style-image PAINTING "
             "[--levels N]"]
    if header.get("default_levels"):
        lines.append("  default levels: " + ", ".join(level_name(k) for k in
                                                    header["default_levels"]))
    for name, training in sorted((header.get("level_training") or {}).items(), reverse=True):
        keys = ("steps", "seconds", "size", "batch", "learning_rate", "initialised_from")
        lines.append(f"  {name}: " + ", ".join(f"{key}={training[key]}" for key in keys
                                              if key in training))
    lines.append(f"  trained to reconstruct {header.get('data_count')} photos and paintings; "
                 "no style training")
    if header.get("summary"):
        lines.append(f"  measured: {header['summary']}")
    return "\n".join(lines)


def is_decoder_header(header: dict) -> bool:
    return header.get("architecture") in ARCHITECTURES


__all__ = ["ARCHITECTURE", "ARCHITECTURES", "OWN_ENCODER_ARCHITECTURE", "WCT_ARCHITECTURE",
           "AnyModel", "describe_decoder", "is_decoder_header", "is_wct_header",
           "load_any_model", "load_decoder", "needs_vgg", "save_decoder", "save_wct_level",
           "wct_levels_of"]
