"""Engine 3's model file: the shared params container (`jaxstyle.paramfile`) with an AdaIN
decoder inside. Header fields: architecture "adain-vgg19-relu4_1", width, training,
data_count (photos), style_count (style images)."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
from flax import traverse_util

from jaxstyle.arbitrary.decoder import decoder_param_shapes
from jaxstyle.paramfile import ModelError, read_param_file, write_param_file

ARCHITECTURE = "adain-vgg19-relu4_1"


def _width_of(header: dict, context: str) -> float:
    width = header.get("width")
    if not (isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0):
        raise ModelError(f"{context}: width must be a positive number, got {width!r}")
    return float(width)


def _check(header: dict, params, context: str) -> None:
    """ModelError starting with `context` unless the params are a Decoder(width)'s."""
    if header.get("architecture") != ARCHITECTURE:
        raise ModelError(f"{context}: not an arbitrary-style decoder (architecture "
                         f"{header.get('architecture')!r}, expected {ARCHITECTURE!r})")
    width = _width_of(header, context)
    expected = traverse_util.flatten_dict(decoder_param_shapes(width))
    try:
        found = traverse_util.flatten_dict(params)
    except (AttributeError, TypeError):
        raise ModelError(f"{context}: params are not a nested dict") from None
    for path, spec in expected.items():
        leaf = found.get(path)
        shape = tuple(getattr(leaf, "shape", ())) if leaf is not None else None
        if shape != spec.shape:
            raise ModelError(f"{context}: {'/'.join(path)} has shape {shape}, expected "
                             f"{spec.shape} for width {width:g}")
    extra = sorted("/".join(map(str, p)) for p in found.keys() - expected.keys())
    if extra:
        raise ModelError(f"{context}: unexpected {extra[0]}")


def save_decoder(path: str | os.PathLike, params: dict, header: dict) -> Path:
    """Write a decoder (header needs `width`) atomically."""
    path = Path(path)
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float32), params)
    header = {"architecture": ARCHITECTURE, "training": {}, "data_count": None,
              "style_count": None, **header}
    _check(header, params, f"cannot save decoder {path.name}")
    return write_param_file(path, params, header)


def load_decoder(path: str | os.PathLike) -> tuple[dict, dict]:
    """(params, header) of a decoder file; ModelError names any problem in one line."""
    params, header, where = read_param_file(path)
    _check(header, params, where)
    return params, header


def describe_decoder(header: dict) -> str:
    """A few lines for people: architecture, width, size, training and data."""
    from jaxstyle.arbitrary.decoder import decoder_channels

    width = float(header.get("width", 0) or 0)
    channels = "/".join(map(str, decoder_channels(width))) if width > 0 else "?"
    lines = [f"{header.get('architecture')} decoder, width {width:g} ({channels} channels), "
             f"{header.get('params_bytes', 0) / 1e6:.1f} MB of params, format "
             f"{header.get('format')}, jaxstyle {header.get('jaxstyle_version')}",
             "  any style image works: jaxstyle apply any PHOTO --style-image PAINTING"]
    training = header.get("training") or {}
    if training:
        lines.append("  training: " + ", ".join(f"{key}={value}" for key, value in
                                               sorted(training.items())))
    lines.append(f"  trained on {header.get('data_count')} photos and "
                 f"{header.get('style_count')} style images")
    return "\n".join(lines)


def is_decoder_header(header: dict) -> bool:
    return header.get("architecture") == ARCHITECTURE


__all__ = ["ARCHITECTURE", "describe_decoder", "is_decoder_header", "load_decoder", "save_decoder"]
