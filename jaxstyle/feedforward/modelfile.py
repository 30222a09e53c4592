"""One-file feed-forward model format, read without pickle.

    magic     8 bytes   b"JXSTYLE\\x01" (the last byte is the layout generation)
    length    uint32    little-endian byte length of the header
    header    JSON      UTF-8: format, architecture, width, num_styles, styles, training,
                        data_count, jaxstyle_version, params_sha256, params_bytes
    params    msgpack   flax.serialization.msgpack_serialize of the params dict (numpy arrays)

The header's checksum and length of the params payload catch truncation and corruption; the
params' shapes are checked against the architecture the header names.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization, traverse_util

from jaxstyle.errors import JaxstyleError
from jaxstyle.feedforward.network import num_styles_of, param_shapes
from jaxstyle.files import atomic_write

MAGIC = b"JXSTYLE\x01"
FORMAT_VERSION = 1
ARCHITECTURE = "johnson2016-cin"
_LENGTH = struct.Struct("<I")
_PREFIX_BYTES = len(MAGIC) + _LENGTH.size


class ModelError(JaxstyleError):
    """A model file is missing, not a model, damaged, or does not fit its own header."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def style_record(name: str, image: np.ndarray, file: str | os.PathLike | None = None) -> dict:
    """Header entry for a style: name, sha256 of the file's bytes (else the image's), [H, W]."""
    image = np.asarray(image)
    digest = (_sha256(Path(file).read_bytes()) if file is not None
              else _sha256(np.ascontiguousarray(image, np.float32).tobytes()))
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
    """Write params and header (needs `width`; fills format, checksum, defaults) atomically."""
    from jaxstyle import __version__  # here, not at import: jaxstyle/__init__ may import us

    path = Path(path)
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float32), params)
    header = {"architecture": ARCHITECTURE, "styles": [], "training": {}, "data_count": None,
              "jaxstyle_version": __version__, **header, "format": FORMAT_VERSION}
    if "num_styles" not in header:
        try:
            header["num_styles"] = num_styles_of(params)
        except ValueError as exc:
            raise ModelError(f"cannot save model {path.name}: {exc}") from None
    _check_header(header, params, f"cannot save model {path.name}")
    payload = serialization.msgpack_serialize(params)
    header["params_sha256"] = _sha256(payload)
    header["params_bytes"] = len(payload)
    header_bytes = json.dumps(header, sort_keys=True, allow_nan=False).encode("utf-8")
    with atomic_write(path) as file:
        file.write(MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes + payload)
    return path


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


def _read_header(data: bytes, where: str) -> tuple[dict, bytes]:
    """Split a model file's bytes into (header, params payload), checking magic and length."""
    if not data.startswith(MAGIC):
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise ModelError(f"{where}: file is truncated")
        if data[:len(MAGIC) - 1] == MAGIC[:-1]:
            raise ModelError(f"{where}: unsupported model layout {data[len(MAGIC) - 1]} "
                             f"(made by a newer jaxstyle?)")
        raise ModelError(f"{where}: not a jaxstyle model file")
    if len(data) < _PREFIX_BYTES:
        raise ModelError(f"{where}: file is truncated")
    (header_length,) = _LENGTH.unpack_from(data, len(MAGIC))
    header_end = _PREFIX_BYTES + header_length
    if len(data) < header_end:
        raise ModelError(f"{where}: file is truncated")
    try:
        header = json.loads(data[_PREFIX_BYTES:header_end].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{where}: header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelError(f"{where}: header is not a JSON object")
    return header, data[header_end:]


def _check_payload(header: dict, payload: bytes, where: str) -> None:
    """ModelError unless the payload has the header's length and checksum."""
    expected_bytes, expected_sha = header.get("params_bytes"), header.get("params_sha256")
    if not isinstance(expected_bytes, int) or not isinstance(expected_sha, str):
        raise ModelError(f"{where}: header lacks params_bytes/params_sha256")
    if len(payload) < expected_bytes:
        raise ModelError(f"{where}: file is truncated ({len(payload)} of {expected_bytes} "
                         f"params bytes)")
    if len(payload) > expected_bytes:
        raise ModelError(f"{where}: {len(payload) - expected_bytes} unexpected bytes after the "
                         f"params")
    if _sha256(payload) != expected_sha:
        raise ModelError(f"{where}: params checksum mismatch, the file is corrupted")


def load_model(path: str | os.PathLike) -> tuple[dict, dict]:
    """(params as a nested dict of float32 numpy arrays, header) from a model file."""
    path = Path(path)
    where = f"model file {path}"
    if path.is_dir():
        raise ModelError(f"{where} is a folder, not a model file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{where} not found") from None
    except OSError as exc:
        raise ModelError(f"{where} cannot be read: {exc.strerror}") from None
    header, payload = _read_header(data, where)
    if header.get("format") != FORMAT_VERSION:
        raise ModelError(f"{where}: unsupported format version {header.get('format')!r} "
                         f"(this jaxstyle reads {FORMAT_VERSION})")
    _check_payload(header, payload, where)
    try:
        params = serialization.msgpack_restore(payload)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ModelError(f"{where}: params cannot be decoded ({type(exc).__name__})") from None
    _check_header(header, params, where)
    return params, header


def style_names(header: dict) -> list[str]:
    """The styles' names in index order ('' where the header has none)."""
    return [str(style.get("name", "")) for style in header.get("styles") or []]


def style_index(header: dict, name_or_index: str | int) -> int:
    """Index of a style given by name (case-insensitive, tried first) or by index."""
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
    """A few lines for people: architecture, styles, training settings, provenance."""
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
