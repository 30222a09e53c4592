"""Many devices and hosts: sharded runs equal single-device runs; the many-image command."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import device_script

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "JAXSTYLE_NO_DOWNLOAD": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def four_device_results():
    # tests/scripts/sharded_equals_single.py, started when collection ended (conftest.py).
    result = device_script("sharded_equals_single")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_four_devices_equal_one(four_device_results):
    assert four_device_results["data_max_abs"] <= 1e-5


def test_arbitrary_style_shards_over_four_devices(four_device_results):
    r = four_device_results
    assert r["arbitrary_devices"] == 4 and r["arbitrary_shape"] == [3, 40, 48, 3]
    assert r["arbitrary_spread"] > 1e-3
    assert r["arbitrary_max_abs"] <= 1e-5
    assert r["arbitrary_tiled_ran_tiles"] and r["arbitrary_tiled_max_abs"] <= 2e-5


def test_encoder_distillation_step_over_four_devices_equals_one(four_device_results):
    r = four_device_results
    assert r["encoder_step_moved"] > 1e-6  # the step changed the params (lr 1e-5)...
    assert r["encoder_step_mean_abs"] <= 0.01 * r["encoder_step_moved"]  # ...the same way
    assert r["encoder_loss_rel"] <= 1e-5 and r["encoder_grad_norm_rel"] <= 1e-4


@pytest.mark.parametrize("mesh", ["4x1", "2x2"])
def test_spatial_sharding_matches_unsharded_without_gathering(four_device_results, mesh):
    r = four_device_results
    assert r[f"spatial_{mesh}_loss_rel"] <= 1e-4
    assert r[f"spatial_{mesh}_max_abs"] <= 1e-4
    assert r[f"spatial_{mesh}_all_gathers"] == []  # activations are never gathered
    assert r[f"spatial_{mesh}_halo_exchanges"] > 0  # convs exchange halos instead


@pytest.mark.parametrize("mesh", ["4x1", "2x2"])
@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_spatially_sharded_step_lowers_for_cuda_and_tpu_without_cpu_only_calls(
        four_device_results, mesh, platform):
    # tests/test_lowering.py covers the unsharded programs and the scanner's own checks.
    lowered = four_device_results[f"spatial_{mesh}_{platform}"]
    assert lowered["partitions"] == ["4"] and lowered["image_split"], lowered
    assert lowered["cpu_only"] == [], lowered


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_weights_file):
    root = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    (root / "photos" / "sub").mkdir(parents=True)
    for name, (h, w) in {"a": (32, 40), "b": (32, 40), "sub/c": (40, 32)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(root / f"photos/{name}.png")
    Image.fromarray(rng.integers(0, 255, (36, 36, 3), np.uint8)).save(root / "style.png")
    return root


def jaxstyle(*args, env=ENV, timeout=600):
    return subprocess.run([sys.executable, "-m", "jaxstyle", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_two_processes_equal_one(folder, tiny_weights_file, tmp_path):
    common = [folder / "photos" / "a.png", folder / "photos" / "b.png", "--style",
              folder / "style.png", "--steps", 3, "--weights", tiny_weights_file, "-q"]
    single = jaxstyle("stylize", *common, "-o", tmp_path / "single")
    assert single.returncode == 0, single.stderr
    port = free_port()
    # The two processes start together: no shared compilation cache for them to race on.
    env = {key: value for key, value in ENV.items() if key != "JAX_COMPILATION_CACHE_DIR"}
    env["JAX_NUM_CPU_DEVICES"] = "2"
    processes = [subprocess.Popen(
        [sys.executable, "-m", "jaxstyle", "stylize", *map(str, common), "-o",
         str(tmp_path / "multi"), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
         "--process-id", str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    for name in ("a_style.png", "b_style.png"):
        one = np.asarray(Image.open(tmp_path / "single" / name), np.int16)
        two = np.asarray(Image.open(tmp_path / "multi" / name), np.int16)
        assert np.abs(one - two).max() <= 1


def test_folder_with_a_bad_file_runs_the_rest(folder, tiny_weights_file, tmp_path):
    bad = folder / "photos" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(32))
    try:
        result = jaxstyle("stylize", folder / "photos", "--style", folder / "style.png", "-o",
                          tmp_path, "--steps", 2, "--batch", 2, "--weights", tiny_weights_file)
    finally:
        bad.unlink()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_style.png", "b_style.png",
                                                          "c_style.png"]
    assert "broken.png" in result.stderr.splitlines()[-1]  # the summary names it
    again = jaxstyle("stylize", folder / "photos" / "a.png", "--style", folder / "style.png",
                     "-o", tmp_path, "--steps", 2, "--skip-existing", "--weights",
                     tiny_weights_file)
    assert again.returncode == 0 and "1 already there" in again.stderr


def test_sweep_writes_one_image_per_value(folder, tiny_weights_file, tmp_path):
    result = jaxstyle("stylize", folder / "photos" / "a.png", folder / "style.png", "-o",
                      tmp_path, "--steps", 2, "--sweep", "style_weight", "1e-3", "1",
                      "--weights", tiny_weights_file, "-q")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a_style_style_weight-0.001.png", "a_style_style_weight-1.png"]
    bad = jaxstyle("stylize", folder / "photos" / "a.png", folder / "style.png", "-o", tmp_path,
                   "--sweep", "max_dim", "64", "--weights", tiny_weights_file)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error:")
