"""Shared fixtures: tiny random VGG19 weights for unit tests, the real ones for integration."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Unit tests run on the CPU even where an accelerator is present, so numbers are comparable.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The step's conv path is fixed, not measured per machine (jaxstyle.cputune), so tests compile
# nothing extra and every machine runs the same programs; tests/test_cputune.py measures.
os.environ.setdefault("JAXSTYLE_XLA_CONV", "default")

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

TESTS = Path(__file__).resolve().parent

# Checks that need a process of their own (JAX_NUM_CPU_DEVICES must be set before jax starts)
# or are slow conversions, by the fixture or test that reads them. Each starts as soon as
# collection ends, if a selected test needs it, so its compiles (mostly on one thread) run on
# the second core beside the rest of the suite instead of adding a minute to its wall time
# on a 2-core CI machine.
EXPORTS = tempfile.mkdtemp(prefix="jaxstyle-test-exports-")  # export_models.py writes here
atexit.register(shutil.rmtree, EXPORTS, ignore_errors=True)
DEVICE_SCRIPTS = {
    "sharded_equals_single": ("four_device_results", {"JAX_NUM_CPU_DEVICES": "4"}),
    # `jaxstyle export` of the shipped models: jax2onnx converts for seconds per file.
    "export_models": ("exported_files", {"JAXSTYLE_TEST_EXPORTS": EXPORTS}),
    # The lower LLVM optimisation level nearly halves its two compiles on a small CPU.
    "train_four_devices": ("test_four_devices_train_like_one", {
        "JAX_NUM_CPU_DEVICES": "4", "XLA_FLAGS": "--xla_backend_optimization_level=0"}),
}
_running: dict[str, tuple] = {}
_finished: dict[str, subprocess.CompletedProcess] = {}


def _start(name: str) -> None:
    if name in _running or name in _finished:
        return
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAXSTYLE_NO_DOWNLOAD": "1",
           "PYTHONPATH": str(TESTS.parent), **DEVICE_SCRIPTS[name][1]}
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # never a full pipe
    process = subprocess.Popen([sys.executable, str(TESTS / "scripts" / f"{name}.py")],
                               cwd=TESTS.parent, env=env, stdout=out, stderr=err, text=True)
    _running[name] = (process, out, err)


def device_script(name: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """The finished run of tests/scripts/NAME.py (started now if it was not yet)."""
    if name not in _finished:
        _start(name)
        process, out, err = _running.pop(name)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.seek(0), err.seek(0)
        _finished[name] = subprocess.CompletedProcess(process.args, process.returncode,
                                                      out.read(), err.read())
    return _finished[name]


def pytest_collection_finish(session):
    # Under pytest-xdist every worker collects every test but runs only some: a script
    # starts when a test of this worker first needs it (`device_script`), not for all.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for name, (user, _) in DEVICE_SCRIPTS.items():
        if any(user == item.originalname or user in item.fixturenames
               for item in session.items):
            _start(name)


def pytest_sessionfinish(session, exitstatus):
    for process, _, _ in _running.values():  # -x, -k or Ctrl-C left it unread
        process.kill()


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


@pytest.fixture(scope="module")
def rng():
    """A fresh generator per test file: its draws must not depend on which files ran before
    in this process (under pytest-xdist, on which worker runs the file; `--dist loadfile`
    keeps a file's tests in one worker, in order)."""
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
