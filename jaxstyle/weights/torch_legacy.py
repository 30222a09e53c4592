"""Read a legacy (pre-zip) `torch.save` stream into NumPy arrays, without torch.

The legacy format is a run of pickles followed by raw storage bytes:

1. the magic number 0x1950a86a20f9469cfc6c,
2. the protocol version 1001,
3. a sys-info dict (endianness, C type sizes),
4. the saved object; each tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size,
   stride, ...)` and each storage a persistent id `('storage', StorageType, key, location,
   numel[, view_metadata])`,
5. the list of storage keys, in the order their bytes follow,
6. per key: the element count as int64 little-endian, then the elements.

A pickle is a program, so the unpickler here only resolves the handful of globals a tensor
dict needs and refuses every other one before anything is called.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import ml_dtypes  # a jax dependency; gives NumPy a bfloat16
import numpy as np

from jaxstyle.errors import WeightsError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch always writes storage bytes little-endian (it byte-swaps on big-endian hosts), so
# the dtypes are pinned to '<' whatever the sys-info dict says.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a `torch.*Storage` class: only its element dtype matters."""

    name: str
    dtype: np.dtype


@dataclass(frozen=True)
class _StorageRef:
    """A storage named in the object pickle; its bytes only arrive after the pickle ends."""

    key: str
    dtype: np.dtype
    numel: int
    view: tuple[int, int] | None  # (element offset, element count) into the root storage


@dataclass(frozen=True)
class _TensorRef:
    """A tensor waiting for its storage bytes."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: _StorageRef, storage_offset: int, size: Sequence[int],
                       stride: Sequence[int], requires_grad: bool = False,
                       backward_hooks: Any = None, metadata: Any = None) -> _TensorRef:
    """Record the arguments of `torch._utils._rebuild_tensor_v2`; resolved after the storages."""
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor(storage: _StorageRef, storage_offset: int, size: Sequence[int],
                    stride: Sequence[int]) -> _TensorRef:
    """Record the arguments of the older `torch._utils._rebuild_tensor`."""
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


# Everything a dict of tensors needs, and nothing else; keys are (module, name) as pickled.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only tensor-rebuilding globals and turns storages into refs."""

    def __init__(self, file: IO[bytes], source: str):
        super().__init__(file)
        self.source = source
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(f"{self.source}: refusing to load global {module}.{name} "
                               "(a pickle can run code; only tensor data is allowed)") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise WeightsError(f"{self.source}: unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        view_metadata = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType):
            raise WeightsError(f"{self.source}: storage {key!r} has no storage type")
        key, numel = str(key), int(numel)
        if numel < 0:
            raise WeightsError(f"{self.source}: storage {key} has negative size {numel}")
        root = self.storages.get(key)
        if root is None:
            root = _StorageRef(key, storage_type.dtype, numel, None)
            self.storages[key] = root
        if view_metadata is None:
            return root
        # Pre-1.0 files share storages through views: (view_key, offset, size) into the root.
        _view_key, view_offset, view_size = view_metadata
        return _StorageRef(key, root.dtype, root.numel, (int(view_offset), int(view_size)))


def _read_exact(file: IO[bytes], count: int, source: str, what: str) -> bytes:
    data = file.read(count)
    if len(data) != count:
        raise WeightsError(f"{source}: truncated while reading {what} "
                           f"(wanted {count} bytes, got {len(data)})")
    return data


def _read_storage(file: IO[bytes], ref: _StorageRef, source: str) -> np.ndarray:
    """Read one storage: int64 element count, then the raw little-endian elements."""
    (numel,) = struct.unpack("<q", _read_exact(file, 8, source, f"storage {ref.key} size"))
    if numel != ref.numel:
        raise WeightsError(f"{source}: storage {ref.key} holds {numel} elements, "
                           f"the pickle says {ref.numel}")
    data = _read_exact(file, numel * ref.dtype.itemsize, source, f"storage {ref.key}")
    return np.frombuffer(data, dtype=ref.dtype)


def _to_array(tensor: _TensorRef, storages: dict[str, np.ndarray], source: str) -> np.ndarray:
    """Apply size/stride/offset to the storage, checking bounds before any strided view."""
    storage = storages[tensor.storage.key]
    if tensor.storage.view is not None:
        view_offset, view_size = tensor.storage.view
        storage = storage[view_offset:view_offset + view_size]
    size, stride, offset = tensor.size, tensor.stride, tensor.offset
    if len(size) != len(stride) or min((*size, *stride, offset), default=0) < 0:
        raise WeightsError(f"{source}: tensor has bad size {size} / stride {stride} / "
                           f"offset {offset}")
    if 0 not in size:
        # as_strided trusts its arguments; without this check a crafted file reads past
        # the end of the buffer.
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.size:
            raise WeightsError(f"{source}: tensor of size {size} and stride {stride} at "
                               f"offset {offset} overruns its storage of {storage.size}")
        start = storage[offset:]
    else:
        start = storage[:0]
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(start, shape=size,
                                           strides=[s * itemsize for s in stride],
                                           writeable=False)
    return np.array(view, dtype=storage.dtype.newbyteorder("="))


def _resolve(obj: Any, storages: dict[str, np.ndarray], source: str) -> Any:
    """Replace every tensor ref inside dicts, lists and tuples with its array."""
    if isinstance(obj, _TensorRef):
        return _to_array(obj, storages, source)
    if isinstance(obj, dict):
        return {key: _resolve(value, storages, source) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(value, storages, source) for value in obj)
    return obj


def _load_plain(file: IO[bytes], source: str) -> Any:
    """Unpickle one header record; these hold plain data, so no global is needed."""
    return _RestrictedUnpickler(file, source).load()


def _check_header(file: IO[bytes], source: str) -> None:
    if _load_plain(file, source) != LEGACY_MAGIC:
        raise WeightsError(f"{source}: not a legacy torch.save file (bad magic number)")
    version = _load_plain(file, source)
    if version != LEGACY_PROTOCOL_VERSION:
        raise WeightsError(f"{source}: legacy torch.save protocol {version!r}, expected 1001")
    if not isinstance(_load_plain(file, source), dict):
        raise WeightsError(f"{source}: sys-info record is not a dict")


def _read_stream(file: IO[bytes], source: str) -> dict[str, np.ndarray]:
    _check_header(file, source)
    object_unpickler = _RestrictedUnpickler(file, source)
    obj = object_unpickler.load()
    keys = _load_plain(file, source)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise WeightsError(f"{source}: storage key list is not a list of strings")
    referenced = object_unpickler.storages
    missing = set(referenced) - set(keys)
    if missing:
        raise WeightsError(f"{source}: storages {sorted(missing)} have no data")
    storages = {}
    for key in keys:
        if key not in referenced:
            raise WeightsError(f"{source}: storage {key} has data but no tensor uses it")
        storages[key] = _read_storage(file, referenced[key], source)
    result = _resolve(obj, storages, source)
    if not isinstance(result, dict):
        raise WeightsError(f"{source}: holds a {type(result).__name__}, expected a dict of tensors")
    for name, value in result.items():
        if not isinstance(value, np.ndarray):
            raise WeightsError(f"{source}: entry {name!r} is a {type(value).__name__}, "
                               "expected a tensor")
    return {str(name): value for name, value in result.items()}


def load_legacy_torch(path_or_fileobj: str | os.PathLike | IO[bytes]) -> dict[str, np.ndarray]:
    """Load a legacy `torch.save` file holding a dict of tensors as `{name: np.ndarray}`.

    Only tensor-rebuilding globals are resolved; any other global raises `WeightsError` without
    being called. Truncated or corrupt input raises `WeightsError` naming the file.
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        source = str(path_or_fileobj)
        if zipfile.is_zipfile(path_or_fileobj):
            raise WeightsError(f"{source}: a zip-format torch file; only the legacy (pre-zip) "
                               "torch.save format is supported")
        try:
            with open(path_or_fileobj, "rb") as file:
                return _load(file, source)
        except FileNotFoundError:
            raise WeightsError(f"{source}: no such file") from None
    source = str(getattr(path_or_fileobj, "name", "<stream>"))
    return _load(path_or_fileobj, source)


def _load(file: IO[bytes], source: str) -> dict[str, np.ndarray]:
    try:
        return _read_stream(file, source)
    except WeightsError:
        raise
    except EOFError:
        raise WeightsError(f"{source}: truncated legacy torch file") from None
    except (pickle.UnpicklingError, struct.error, ValueError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError, MemoryError) as exc:
        # Any of these from a restricted unpickler means damaged data, never a bug to hide.
        raise WeightsError(f"{source}: corrupt legacy torch file ({type(exc).__name__}: "
                           f"{exc})") from None
