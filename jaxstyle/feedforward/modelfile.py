"""Engine 2's model file: the shared params container (`jaxstyle.paramfile`, read without
pickle) with a Johnson/Dumoulin network inside.

Header fields of this architecture: architecture "johnson2016-cin", width, num_styles, styles
(name, sha256, size), training, data_count; the params' shapes are checked against them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from jaxstyle.feedforward.network import num_styles_of, param_shapes
from jaxstyle.paramfile import (  # noqa: F401  (MAGIC, ModelError: this module's API before)
    MAGIC,
    ModelError,
    read_param_file,
    sha256_hex,
    write_param_file,
)

ARCHITECTURE = "johnson2016-cin"


def style_record(name: str, image: np.ndarray, file: str | os.PathLike | None = None) -> dict:
    """Header entry for a style: name, sha256 of the file's bytes (else the image's), [H, W].

    Example:

    >>> record = jaxstyle.feedforward.style_record("grey", np.full((32, 48, 3), 0.5, np.float32))
    >>> record["name"], record["size"], len(record["sha256"])
    ('grey', [32, 48], 64)
    """
    image = np.asarray(image)
    digest = (sha256_hex(Path(file).read_bytes()) if file is not None
              else sha256_hex(np.ascontiguousarray(image, np.float32).tobytes()))
    height, width = image.shape[-3:-1]
    return {"name": name, "sha256": digest, "size": [int(height), int(width)]}


def _shape_mismatch(params: Any, num_styles: int, width: float) -> str | None:
    """The first difference between params and TransformerNet(num_styles, width)'s, or None."""
    expected = traverse_util.flatten_dict(param_shapes(num_styles, width))
    try:
        found = traverse_util.flatten_dict(params)
    except (AttributeError, TypeError):
        return "params are not a nested dict"
    for path, spec in expected.items():
        name = "/".join(path)
        if path not in found:
            return f"{name} is missing"
        leaf = found[path]
        shape = tuple(getattr(leaf, "shape", ()))
        if shape != spec.shape:
            return f"{name} has shape {shape}, expected {spec.shape}"
        dtype = getattr(leaf, "dtype", None)
        if dtype != spec.dtype:
            return f"{name} has dtype {dtype}, expected {spec.dtype}"
    extra = sorted("/".join(map(str, path)) for path in found.keys() - expected.keys())
    return f"unexpected {extra[0]}" if extra else None


def _architecture_of(header: dict) -> tuple[int, float]:
    """(num_styles, width) from the header; ValueError if absent or not positive numbers."""
    num_styles, width = header.get("num_styles"), header.get("width")
    if not (isinstance(num_styles, int) and not isinstance(num_styles, bool) and num_styles > 0):
        raise ValueError(f"num_styles must be a positive integer, got {num_styles!r}")
    if not (isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0):
        raise ValueError(f"width must be a positive number, got {width!r}")
    return num_styles, float(width)


def save_model(path: str | os.PathLike, params: dict, header: dict) -> Path:
    """Write params and header (needs `width`; fills format, checksum, defaults) atomically.

    Example:

    >>> model, header = jaxstyle.load_model(jaxstyle.resolve_model("paintings")[0])
    >>> two = jaxstyle.feedforward.select_styles(model, [0, 1])  # starry_night, shipwreck
    >>> path = jaxstyle.save_model("two.jxs", two, {**header, "num_styles": 2,
    ...                                              "styles": header["styles"][:2]})
    >>> jaxstyle.load_model(path)[1]["num_styles"]
    2
    """
    path = Path(path)
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float32), params)
    header = {"architecture": ARCHITECTURE, "styles": [], "training": {}, "data_count": None,
              **header}
    if "num_styles" not in header:
        try:
            header["num_styles"] = num_styles_of(params)
        except ValueError as exc:
            raise ModelError(f"cannot save model {path.name}: {exc}") from None
    _check_header(header, params, f"cannot save model {path.name}")
    return write_param_file(path, params, header)


def _check_header(header: dict, params: Any, context: str) -> None:
    """ModelError starting with `context` unless the header's architecture fits the params."""
    if header.get("architecture") != ARCHITECTURE:
        raise ModelError(f"{context}: unsupported architecture {header.get('architecture')!r} "
                         f"(this jaxstyle reads {ARCHITECTURE!r})")
    try:
        num_styles, width = _architecture_of(header)
    except ValueError as exc:
        raise ModelError(f"{context}: {exc}") from None
    styles = header.get("styles") or []
    if styles and len(styles) != num_styles:
        raise ModelError(f"{context}: header lists {len(styles)} styles but num_styles is "
                         f"{num_styles}")
    mismatch = _shape_mismatch(params, num_styles, width)
    if mismatch:
        raise ModelError(f"{context}: params do not fit width {width:g} with {num_styles} "
                         f"style(s): {mismatch}")


def load_model(path: str | os.PathLike) -> tuple[dict, dict]:
    """(params as a nested dict of float32 numpy arrays, header) from a model file.

    Example:

    >>> path, style = jaxstyle.resolve_model("starry_night")  # a built-in style: its file
    >>> model, header = jaxstyle.load_model(path)
    >>> header["num_styles"], [style["name"] for style in header["styles"]]
    (3, ['starry_night', 'shipwreck', 'woman_with_hat'])
    """
    params, header, where = read_param_file(path)
    _check_header(header, params, where)
    return params, header


def style_names(header: dict) -> list[str]:
    """The styles' names in index order ('' where the header has none)."""
    return [str(style.get("name", "")) for style in header.get("styles") or []]


def style_index(header: dict, name_or_index: str | int) -> int:
    """Index of a style given by name (case-insensitive, tried first) or by index.

    Example:

    >>> model, header = jaxstyle.load_model(jaxstyle.resolve_model("paintings")[0])
    >>> jaxstyle.feedforward.style_index(header, "Shipwreck")  # by name, in any case
    1
    >>> jaxstyle.feedforward.style_index(header, 2)
    2
    """
    num_styles = int(header.get("num_styles", 0))
    names = style_names(header)
    wanted = str(name_or_index).strip()
    matches = [i for i, name in enumerate(names) if name.casefold() == wanted.casefold()]
    if matches:
        return matches[0]
    try:
        index = int(wanted)
    except ValueError:
        index = None
    if index is not None and 0 <= index < num_styles:
        return index
    available = ", ".join(f"{i} {name!r}" if name else str(i)
                          for i, name in enumerate(names or [""] * num_styles))
    raise ModelError(f"no style {wanted!r} in the model; available: {available}")


def describe(header: dict) -> str:
    """A few lines for people: architecture, styles, training settings, provenance.

    Example:

    >>> model, header = jaxstyle.load_model(jaxstyle.resolve_model("paintings")[0])
    >>> print(jaxstyle.feedforward.describe(header))
    johnson2016-cin width 0.25, 3 style(s), 0.4 MB of params, format 1, jaxstyle ...
      style 0: 'starry_night' 160x256 sha256 0592ab0f7b51
    ...
    """
    lines = [f"{header.get('architecture')} width {header.get('width')}, "
             f"{header.get('num_styles')} style(s), "
             f"{header.get('params_bytes', 0) / 1e6:.1f} MB of params, "
             f"format {header.get('format')}, jaxstyle {header.get('jaxstyle_version')}"]
    for i, style in enumerate(header.get("styles") or []):
        size = "x".join(str(side) for side in style.get("size", [])) or "?"
        lines.append(f"  style {i}: {style.get('name', '')!r} {size} "
                     f"sha256 {str(style.get('sha256', ''))[:12]}")
    training = header.get("training") or {}
    if training:
        lines.append("  training: " + ", ".join(f"{key}={value}" for key, value in
                                               sorted(training.items())))
    if header.get("data_count") is not None:
        lines.append(f"  trained on {header['data_count']} images")
    return "\n".join(lines)
