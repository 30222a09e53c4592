"""The benchmark harness: it runs, reports the fields it promises, and its FLOP model is right."""

import json
import os
import subprocess
import sys

import pytest

from jaxstyle import StyleConfig
from jaxstyle.bench.harness import flops_per_step, format_table, run_bench
from jaxstyle.vgg import LAYER_NAMES, VGG19_CONV_LAYERS


def model_flops(height, width, cfg=None):
    """The FLOP model derived from the layer table: convs forward and backward to the image
    (2 FLOPs per multiply-add, 3x3 kernels, resolution halved per block), Grams and their
    backward (one matmul each)."""
    cfg = cfg or StyleConfig()
    deepest = max(LAYER_NAMES.index(n) for n in cfg.content_layers + cfg.style_layers)
    forward = grams = 0
    for name, cin, cout in VGG19_CONV_LAYERS[: deepest + 1]:
        pixels = height * width / 4 ** (int(name[5]) - 1)
        forward += 2 * 9 * cin * cout * pixels
        if name in cfg.style_layers:
            grams += 2 * (2 * cout * cout * pixels)
    return 2 * forward + grams


def test_flop_model_matches_the_layer_table():
    assert model_flops(1, 1) == 1_551_104
    assert flops_per_step(256, 256) == model_flops(256, 256)
    assert flops_per_step(512, 512) == pytest.approx(407e9, rel=0.01)


def test_run_bench_reports_every_field(tiny_params):
    report = run_bench(tiny_params, [32, 48], StyleConfig(), steps=2, warmup=1, block=1)
    assert report["machine"]["backend"] == "cpu" and report["machine"]["cpus"] >= 1
    rows = report["results"]
    assert [row["size"] for row in rows] == [32, 48]
    for row in rows:
        assert row["impl"] == "jaxstyle" and row["steps"] == 2
        assert 0 < row["min_ms"] <= row["ms_per_step"]
        assert row["gflops"] == pytest.approx(
            flops_per_step(row["size"], row["size"]) / row["ms_per_step"] / 1e6)
        assert row["compile_s"] > 0 and row["peak_memory_bytes"] > 0 and row["temp_bytes"] >= 0
    table = format_table(rows)
    assert "ms/step" in table and len(table.splitlines()) == 4


def test_bench_command_writes_json_and_reports_missing_peers(tmp_path, tiny_weights_file):
    out = tmp_path / "bench.json"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "jaxstyle", "bench", "--sizes", "32", "--steps", "2", "--warmup",
         "0", "--weights", str(tiny_weights_file), "--json", str(out), "--peer", "tf",
         "--precision", "bf16"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    impls = [row["impl"] for row in report["results"]]
    assert impls == ["jaxstyle", "tf"]
    assert "skipped" in report["results"][1]  # TF has no bf16 step, or is not installed
    assert "peer tf skipped" in result.stderr
    assert "write `jaxstyle bench step ...`" in result.stderr  # the form before names, kept
    assert "jaxstyle" in result.stdout and "GFLOP/s" in result.stdout


def test_bench_rejects_tiny_sizes(tiny_params):
    from jaxstyle.errors import ConfigError

    with pytest.raises(ConfigError, match="32 px minimum"):
        run_bench(tiny_params, [16], StyleConfig(), steps=1)


def test_batched_bench_reports_images_per_second_and_efficiency(tiny_params):
    report = run_bench(tiny_params, [32], StyleConfig(), steps=2, warmup=1, block=1,
                       batches=[1, 2])
    rows = report["results"]
    assert [row["batch"] for row in rows] == [1, 2]
    for row in rows:
        assert row["images_per_s"] == pytest.approx(row["batch"] * 1e3 / row["ms_per_step"])
        assert row["temp_bytes"] > 0  # XLA's compiled memory analysis, per device
    assert rows[0]["efficiency"] == pytest.approx(1.0)
    assert rows[1]["efficiency"] == pytest.approx(rows[1]["images_per_s"] / rows[0]["images_per_s"])
    from jaxstyle.bench.harness import format_batch_table
    assert "vs batch 1" in format_batch_table(rows)
