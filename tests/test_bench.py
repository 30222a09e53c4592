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


def test_parity_check_passes_its_own_trajectory_and_fails_a_drifted_one(
        tmp_path, tiny_params, tiny_weights_file, capsys):
    """`bench parity --against`: the same step's trajectory passes; one whose losses drift
    by 2% fails with exit 1; other weights are refused."""
    from jaxstyle.bench import parity
    from jaxstyle.cli import main

    losses, image = parity.run_jaxstyle(tiny_params, 32, 3, "highest")
    assert losses.shape == (3,) and image.shape == (1, 32, 32, 3) and losses[-1] < losses[0]
    meta = {"size": 32, "steps": 3, "tensorflow": "none (this test)",
            "weights": parity.weights_digest(tiny_params)}
    same, drifted = tmp_path / "same.npz", tmp_path / "drifted.npz"
    parity.save_trajectory(str(same), {"losses": losses, "image": image, "meta": meta})
    parity.save_trajectory(str(drifted), {"losses": losses * [1, 1, 1.02], "image": image,
                                          "meta": meta})
    argv = ["bench", "parity", "--weights", str(tiny_weights_file), "--matmul-precision",
            "highest", "default", "--against"]
    assert main([*argv, str(same)]) == 0
    out = capsys.readouterr().out
    assert "| highest | 0.00e+00 | 0.00e+00 (step 1) | 0.00e+00 | 0.00 | 0.000 | pass |" in out
    assert "| default |" in out and "reported" in out
    assert main([*argv, str(drifted)]) == 1
    assert "1.96e-02 (step 3) | 1.96e-02 | 0.00 | 0.000 | FAIL |" in capsys.readouterr().out
    # Step 1 scores the same image in both: 1e-4 there is other maths, whatever follows.
    parity.save_trajectory(str(drifted), {"losses": losses * [1.0001, 1, 1], "image": image,
                                          "meta": meta})
    assert main([*argv, str(drifted)]) == 1
    assert "| highest | 1.00e-04 |" in capsys.readouterr().out
    parity.save_trajectory(str(same), {"losses": losses, "image": image,
                                       "meta": {**meta, "weights": "0123456789abcdef"}})
    assert main([*argv, str(same)]) != 0
    assert "other VGG19 weights" in capsys.readouterr().err
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    for bad in ("missing.npz", "junk.npz"):
        assert main([*argv, str(tmp_path / bad)]) != 0
        assert "trajectory" in capsys.readouterr().err


def test_seed_time_scores_a_whole_process_against_the_seeds_run(tmp_path, tiny_params,
                                                                 tiny_weights_file,
                                                                 monkeypatch):
    """`bench seed-time` at 32 px with tiny weights: the seed's run is cached and reused, the
    preset's process is timed and its saved file scored; the JSON's ratio is its loss over
    the seed's."""
    import json

    import numpy as np
    from PIL import Image

    from jaxstyle.bench import seed_time
    from jaxstyle.cli import main

    monkeypatch.setattr(seed_time, "SHEET_STEPS", (4,))  # the sheet's early image, short
    rng = np.random.default_rng(5)
    for name in ("photo.png", "art.png"):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / name)
    report = tmp_path / "rows.json"
    argv = ["bench", "seed-time", "--pairs", f"{tmp_path / 'photo.png'}:{tmp_path / 'art.png'}",
            "--sizes", "32", "--tf-steps", "0", "--seed-steps", "12", "--cache",
            str(tmp_path / "cache"), "--weights", str(tiny_weights_file), "--json", str(report),
            "--options", "--steps 6", "--sheet", str(tmp_path / "sheet.png")]
    code = main(argv)
    # photo | painting | the seed at 4 and 12 steps | the preset: five 32 px images
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 5 * sheet.height
    rows = json.loads(report.read_text())
    assert len(rows) == 1 and code in (0, 1)
    assert list((tmp_path / "cache").glob("gatys-*.npy"))  # the early image, cached
    row = rows[0]
    assert row["loss_ratio"] == pytest.approx(row["loss"] / row["seed_loss"])
    assert row["seconds"] > 0 and row["tf_1000_s"] is None and row["time_ratio"] is None
    assert code == (1 if row["loss_ratio"] > 1 or row["layout"] < row["seed_layout"] - 0.05
                    else 0)
    cached = list((tmp_path / "cache").glob("seed-*.npz"))
    assert len(cached) == 1
    # The seed's run comes back from the cache, as it was (not run again).
    from jaxstyle.bench.scoring import load_pair
    from jaxstyle.bench.seed_time import seed_reference

    content, style = load_pair(tmp_path / "photo.png", tmp_path / "art.png",
                               StyleConfig(steps=12, max_dim=32))
    again = seed_reference(tiny_params, content, style, 32, tmp_path / "cache", 12)
    assert float(again["loss"]) == row["seed_loss"] and again["losses"].shape == (12,)
    assert main([*argv[:3], "photo-without-colon"]) == 2  # bad --pairs: a usage error
