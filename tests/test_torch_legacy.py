"""Tests for the torch-free legacy `torch.save` reader; streams are built by hand with pickle."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile
from unittest import mock

import numpy as np
import pytest

from jaxstyle.errors import WeightsError
from jaxstyle.weights.torch_legacy import LEGACY_MAGIC, LEGACY_PROTOCOL_VERSION, load_legacy_torch

STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("uint8"): "ByteStorage",
                 np.dtype("int64"): "LongStorage", np.dtype("float16"): "HalfStorage"}


def _fake_torch_modules() -> dict[str, types.ModuleType]:
    """Stand-ins for `torch` and `torch._utils` so pickle can name their globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    return {"torch": torch, "torch._utils": utils}


FAKE_TORCH = _fake_torch_modules()


class Storage:
    """A storage as the test writes it: a key and its flat little-endian elements."""

    def __init__(self, key: str, data: np.ndarray):
        self.key = key
        self.data = np.ascontiguousarray(data).ravel()


class Tensor:
    """Pickles exactly like a torch tensor in a legacy file."""

    def __init__(self, storage: Storage, offset: int, size: tuple, stride: tuple):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        rebuild = FAKE_TORCH["torch._utils"]._rebuild_tensor_v2
        return rebuild, (*self.args, False, collections.OrderedDict())


def contiguous(storage: Storage, shape: tuple) -> Tensor:
    strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
    return Tensor(storage, 0, shape, strides)


class _LegacyPickler(pickle.Pickler):
    def __init__(self, file, storages: dict):
        super().__init__(file, protocol=2)
        self.storages = storages

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            self.storages.setdefault(obj.key, obj)
            storage_type = getattr(FAKE_TORCH["torch"], STORAGE_NAMES[obj.data.dtype])
            return ("storage", storage_type, obj.key, "cpu", obj.data.size, None)
        return None


def legacy_bytes(obj, key_order=None, sys_info=None) -> bytes:
    """Serialise `obj` the way legacy `torch.save` does (magic, version, sys info, object, data)."""
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL_VERSION,
                   sys_info or {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    storages: dict[str, Storage] = {}
    with mock.patch.dict(sys.modules, FAKE_TORCH):
        _LegacyPickler(out, storages).dump(obj)
    keys = key_order or list(storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
        data = storages[key].data
        out.write(struct.pack("<q", data.size))
        out.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
    return out.getvalue()


def test_round_trip_of_contiguous_tensors_of_three_dtypes():
    rng = np.random.default_rng(0)
    floats = rng.standard_normal((2, 3, 4)).astype(np.float32)
    bytes_ = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    longs = np.array([-(2 ** 40), 0, 7, 2 ** 62], dtype=np.int64)
    stream = legacy_bytes({
        "floats": contiguous(Storage("10", floats), floats.shape),
        "bytes": contiguous(Storage("11", bytes_), bytes_.shape),
        "longs": contiguous(Storage("12", longs), longs.shape),
    })
    loaded = load_legacy_torch(io.BytesIO(stream))
    assert sorted(loaded) == ["bytes", "floats", "longs"]
    for name, expected in (("floats", floats), ("bytes", bytes_), ("longs", longs)):
        assert loaded[name].dtype == expected.dtype
        np.testing.assert_array_equal(loaded[name], expected)


def test_non_contiguous_stride_and_storage_offset_are_honoured():
    flat = np.arange(20, dtype=np.float32)
    shared = Storage("1", flat)
    stream = legacy_bytes({
        "transposed": Tensor(shared, 0, (4, 3), (1, 4)),  # a (3, 4) matrix, transposed
        "window": Tensor(shared, 5, (2, 2), (4, 1)),
        "every_third": Tensor(shared, 2, (6,), (3,)),
    })
    loaded = load_legacy_torch(io.BytesIO(stream))
    np.testing.assert_array_equal(loaded["transposed"], flat[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(loaded["window"], [[5, 6], [9, 10]])
    np.testing.assert_array_equal(loaded["every_third"], flat[2::3])
    # Copies, not views of a read-only buffer: callers may modify them.
    assert loaded["transposed"].flags.writeable and loaded["transposed"].flags.owndata


def test_storage_data_follows_the_key_list_order_not_the_pickle_order():
    first, second = np.arange(3, dtype=np.int64), np.arange(100, 104, dtype=np.int64)
    stream = legacy_bytes({"a": contiguous(Storage("a", first), (3,)),
                           "b": contiguous(Storage("b", second), (4,))}, key_order=["b", "a"])
    loaded = load_legacy_torch(io.BytesIO(stream))
    np.testing.assert_array_equal(loaded["a"], first)
    np.testing.assert_array_equal(loaded["b"], second)


def test_ordered_dict_from_a_path_loads_as_plain_dict(tmp_path):
    values = np.linspace(-1, 1, 6, dtype=np.float16)
    path = tmp_path / "state.pt"
    path.write_bytes(legacy_bytes(collections.OrderedDict(
        w=contiguous(Storage("0", values), (2, 3)))))
    loaded = load_legacy_torch(path)
    assert list(loaded) == ["w"] and loaded["w"].dtype == np.float16
    np.testing.assert_array_equal(loaded["w"], values.reshape(2, 3))


class _CallsGlobal:
    """Pickles as a call of `function(*args)`: what a malicious file would contain."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("make_attack", [
    lambda marker: _CallsGlobal(os.system, f"touch {marker}"),
    lambda marker: _CallsGlobal(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
    lambda marker: _CallsGlobal(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
], ids=["os.system", "builtins.eval", "builtins.exec"])
def test_other_globals_are_refused_and_never_called(tmp_path, make_attack):
    marker = tmp_path / "pwned"
    stream = legacy_bytes({"w": contiguous(Storage("0", np.zeros(2, np.float32)), (2,)),
                           "attack": make_attack(marker)})
    with pytest.raises(WeightsError, match="refusing to load global"):
        load_legacy_torch(io.BytesIO(stream))
    assert not marker.exists()


def test_a_global_in_the_header_is_refused_too(tmp_path):
    marker = tmp_path / "pwned"
    stream = legacy_bytes({}, sys_info={"x": _CallsGlobal(os.system, f"touch {marker}")})
    with pytest.raises(WeightsError, match=r"refusing to load global (os|posix)\.system"):
        load_legacy_torch(io.BytesIO(stream))
    assert not marker.exists()


@pytest.mark.parametrize("keep_fraction", [0.0, 0.02, 0.3, 0.6, 0.95])
def test_truncated_file_raises_weights_error_naming_it(tmp_path, keep_fraction):
    stream = legacy_bytes({"w": contiguous(Storage("0", np.ones(64, np.float32)), (8, 8))})
    assert load_legacy_torch(io.BytesIO(stream))["w"].shape == (8, 8)  # the full one is fine
    path = tmp_path / "cut.pt"
    path.write_bytes(stream[:int(len(stream) * keep_fraction)])
    with pytest.raises(WeightsError, match="cut.pt"):
        load_legacy_torch(path)


def test_stride_that_overruns_its_storage_is_rejected():
    stream = legacy_bytes({"w": Tensor(Storage("0", np.zeros(4, np.float32)), 1, (2, 2), (2, 1))})
    with pytest.raises(WeightsError, match="overruns"):
        load_legacy_torch(io.BytesIO(stream))


def test_element_count_disagreeing_with_the_pickle_is_rejected():
    stream = bytearray(legacy_bytes({"w": contiguous(Storage("0", np.zeros(4, np.float32)),
                                                     (4,))}))
    count_at = len(stream) - 4 * 4 - 8
    stream[count_at:count_at + 8] = struct.pack("<q", 3)
    with pytest.raises(WeightsError, match="holds 3 elements"):
        load_legacy_torch(io.BytesIO(bytes(stream)))


def test_not_a_legacy_file_is_rejected(tmp_path):
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"w": 1}, protocol=2))
    with pytest.raises(WeightsError, match="bad magic number"):
        load_legacy_torch(plain)
    zipped = tmp_path / "new_format.pt"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(WeightsError, match="zip-format"):
        load_legacy_torch(zipped)
    with pytest.raises(WeightsError, match="no such file"):
        load_legacy_torch(tmp_path / "missing.pt")
