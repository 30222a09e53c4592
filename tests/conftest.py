"""Shared fixtures: tiny random VGG19 weights for unit tests, the real ones for integration."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest

# Unit tests run on the CPU even where an accelerator is present, so numbers are comparable.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent XLA compilation cache for this test session, fresh each session and removed
# after it: many tests (and the CLI subprocesses they start, which inherit it through the
# environment) compile the same tiny programs again, and compiling is most of their time on
# a 2-core CI machine. It changes no result: a cached executable is the same program.
# JAXSTYLE_TEST_NO_XLA_CACHE=1 turns it off.
_wanted = not os.environ.get("JAXSTYLE_TEST_NO_XLA_CACHE")
if _wanted and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxstyle-test-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ.update({"JAX_COMPILATION_CACHE_DIR": _cache,
                       "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"})

from jaxstyle.vgg import VGG19_CONV_LAYERS  # noqa: E402  (after the environment is set)


def random_params(seed: int = 0, scale: float = 1.0) -> dict:
    """VGG19-shaped params with He-scaled random values (activations stay O(1) through depth)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, cin, cout in VGG19_CONV_LAYERS:
        std = scale * np.sqrt(2.0 / (9 * cin))
        params[name] = {
            "kernel": (rng.standard_normal((3, 3, cin, cout)) * std).astype(np.float32),
            "bias": (rng.standard_normal(cout) * 0.01).astype(np.float32),
        }
    return params


@pytest.fixture(scope="session")
def tiny_params():
    """Random params; pixel values are scaled by 1/255 so a [0,1] image gives O(1) features."""
    params = random_params(0)
    params["block1_conv1"]["kernel"] = params["block1_conv1"]["kernel"] / 64.0
    return params


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(1234)


def random_image(rng, height: int, width: int) -> np.ndarray:
    """A smooth-ish random RGB image in [0, 1] of shape (1, H, W, 3)."""
    coarse = rng.uniform(size=(height // 4 + 1, width // 4 + 1, 3))
    image = np.kron(coarse, np.ones((4, 4, 1)))[:height, :width]
    image = 0.7 * image + 0.3 * rng.uniform(size=(height, width, 3))
    return image[None].astype(np.float32)


@pytest.fixture(scope="session")
def real_params():
    """The real VGG19 weights, fetched once (through the fallback where needed) and cached."""
    from jaxstyle.weights import load_vgg19
    from jaxstyle.weights.fetch import fetch_weights

    return load_vgg19(fetch_weights(progress=False, log=lambda message: None))


@pytest.fixture(scope="session")
def tiny_weights_file(tmp_path_factory, tiny_params):
    """tiny_params saved as a converted .npz, for CLI tests that need --weights."""
    from jaxstyle.weights import save_params

    return save_params(tiny_params, tmp_path_factory.mktemp("weights") / "tiny.npz")
