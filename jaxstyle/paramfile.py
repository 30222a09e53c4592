"""The one-file params container of every trained jaxstyle model, read without pickle.

    magic     8 bytes   b"JXSTYLE\\x01" (the last byte is the layout generation)
    length    uint32    little-endian byte length of the header
    header    JSON      UTF-8: format, architecture, the architecture's own fields, provenance,
                        jaxstyle_version, params_sha256, params_bytes
    params    msgpack   flax.serialization.msgpack_serialize of the params dict (numpy arrays)

The header's checksum and length of the params payload catch truncation and corruption. What
the params must look like depends on the header's `architecture`; the engine that reads it
checks (`jaxstyle.feedforward.modelfile`, `jaxstyle.arbitrary.decoderfile`).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from jaxstyle._types import ParamTree
from jaxstyle.errors import JaxstyleError
from jaxstyle.files import atomic_write

MODELS_DIR = Path(__file__).resolve().parent / "models"  # the model files shipped in the package
MAGIC = b"JXSTYLE\x01"
FORMAT_VERSION = 1
_LENGTH = struct.Struct("<I")
_PREFIX_BYTES = len(MAGIC) + _LENGTH.size


class ModelError(JaxstyleError):
    """A model file is missing, not a model, damaged, or does not fit its own header.

    Example:

    >>> try:
    ...     jaxstyle.load_model("missing.jxs")
    ... except jaxstyle.ModelError as error:
    ...     print(error)
    model file missing.jxs not found
    """


def check_shapes(params: ParamTree, expected: dict[tuple[str, ...], tuple[int, ...]], context: str,
                 what: str) -> None:
    """ModelError starting with `context` unless the nested params have exactly the expected
    leaves (flattened path -> shape); `what` ends the message, e.g. 'for width 0.5'."""
    from flax import traverse_util

    try:
        found = traverse_util.flatten_dict(params)
    except (AttributeError, TypeError):
        raise ModelError(f"{context}: params are not a nested dict") from None
    for path, shape in expected.items():
        leaf = found.get(path)
        got = tuple(getattr(leaf, "shape", ())) if leaf is not None else None
        if got != tuple(shape):
            raise ModelError(f"{context}: {'/'.join(path)} has shape {got}, expected "
                             f"{tuple(shape)} {what}")
    extra = sorted("/".join(map(str, p)) for p in found.keys() - expected.keys())
    if extra:
        raise ModelError(f"{context}: unexpected {extra[0]}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_param_file(path: str | os.PathLike, params: dict, header: dict) -> Path:
    """Write float32 params and a JSON header (format and checksum added) atomically."""
    from jaxstyle import __version__  # here, not at import: jaxstyle/__init__ may import us

    path = Path(path)
    params = jax.tree.map(lambda leaf: np.asarray(leaf, np.float32), params)
    payload = serialization.msgpack_serialize(params)
    header = {"jaxstyle_version": __version__, **header, "format": FORMAT_VERSION,
              "params_sha256": sha256_hex(payload), "params_bytes": len(payload)}
    header_bytes = json.dumps(header, sort_keys=True, allow_nan=False).encode("utf-8")
    with atomic_write(path) as file:
        file.write(MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes + payload)
    return path


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
    if sha256_hex(payload) != expected_sha:
        raise ModelError(f"{where}: params checksum mismatch, the file is corrupted")


def read_param_file(path: str | os.PathLike) -> tuple[dict, dict, str]:
    """(params as a nested dict of numpy arrays, header, "model file PATH" for messages).

    ModelError names what is wrong: missing, a folder, unreadable, not a model, truncated,
    corrupted, or from a newer format. The caller checks the params against the architecture.
    """
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
    return params, header, where


def read_header(path: str | os.PathLike) -> dict:
    """Only the JSON header (no checksum check): cheap enough to list many files."""
    path = Path(path)
    where = f"model file {path}"
    try:
        with open(path, "rb") as file:
            prefix = file.read(_PREFIX_BYTES)
            if len(prefix) == _PREFIX_BYTES and prefix.startswith(MAGIC):
                (length,) = _LENGTH.unpack_from(prefix, len(MAGIC))
                prefix += file.read(length)
    except OSError as exc:
        raise ModelError(f"{where} cannot be read: {exc.strerror or exc}") from None
    header, _ = _read_header(prefix, where)
    return header
