"""Presets and stopping rules (issue 36): `StyleConfig.preset`, `--preset`, and runs that end
when a rule holds and say which one did."""

import argparse

import numpy as np
import pytest

from conftest import random_image
from jaxstyle import StyleConfig
from jaxstyle.cli.common import config_from_args, config_options
from jaxstyle.config import PRESETS, sized_budget
from jaxstyle.errors import ConfigError
from jaxstyle.gatys import History, stop_reason, stylize

TINY = dict(content_layers="block2_conv2", style_layers="block1_conv1,block2_conv1")


def test_presets_set_their_fields_and_changes_win():
    assert StyleConfig.preset("seed") == StyleConfig()
    fast = StyleConfig.preset("fast")
    for name, value in PRESETS["fast"].items():
        assert getattr(fast, name) == value
    assert fast != StyleConfig()
    assert StyleConfig.preset("fast", optimizer="adam").optimizer == "adam"
    with pytest.raises(ConfigError, match="preset must be one of"):
        StyleConfig.preset("quick")


def parse(*argv):
    parser = argparse.ArgumentParser()
    config_options(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_command_line_preset_yields_to_options_given_beside_it():
    assert parse() == StyleConfig()
    assert parse("--preset", "fast") == StyleConfig.preset("fast")
    # Given explicitly, even at the seed's own value, an option beats the preset.
    explicit = parse("--preset", "fast", "--optimizer", "adam", "--steps", "30")
    assert (explicit.optimizer, explicit.steps) == ("adam", 30)
    assert explicit.stop_improvement == PRESETS["fast"]["stop_improvement"]
    assert parse("--preset", "fast", "--remat").remat is True


@pytest.mark.parametrize("losses,expected", [
    ([], None),
    ([5.0, 4.0, 3.0], None),                       # falling fast
    ([5.0, 4.999, 4.998], "fell 0.0%"),           # stalled over the window of 2
    ([5.0, 4.0, 0.5], "reached stop_loss 1"),      # low enough
])
def test_stop_reason_names_the_rule_that_holds(losses, expected):
    cfg = StyleConfig(stop_improvement=0.01, stop_window=2, stop_loss=1.0)
    reason = stop_reason(losses, cfg)
    assert reason is None if expected is None else expected in reason
    assert stop_reason(losses, StyleConfig()) is None  # no rules: never


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_run_ends_when_its_rule_holds_and_says_why(tiny_params, optimizer):
    rng = np.random.default_rng(3)
    content, style = random_image(rng, 32, 32), random_image(rng, 32, 32)
    cfg = StyleConfig(steps=200, optimizer=optimizer, epsilon=1e-8, **TINY)
    full, history = stylize(tiny_params, content, style, cfg.replace(steps=12))
    assert isinstance(history, History) and history.stopped is None and len(history) == 12
    # Any loss at all is below this: the first check (every 10 steps) ends the run.
    _, stopped = stylize(tiny_params, content, style, cfg.replace(stop_loss=1e30))
    assert len(stopped) == 10 and "step 10" in stopped.stopped
    assert "stop_loss" in stopped.stopped
    # Asking for more improvement than any run makes stops it once the window is seen.
    _, stalled = stylize(tiny_params, content, style,
                         cfg.replace(stop_improvement=1.0, stop_window=15))
    assert len(stalled) == 20 and "stop_improvement" in stalled.stopped
    # Stopping changed nothing before it: the first ten steps are the unbroken run's.
    np.testing.assert_allclose([h["loss"] for h in stopped],
                               [h["loss"] for h in history[:10]], rtol=1e-6)


def test_cli_fast_preset_says_which_rule_stopped_it(tmp_path, tiny_weights_file):
    import os
    import subprocess
    import sys

    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("photo.png", "art.png"):
        Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    out = tmp_path / "out.png"
    result = subprocess.run(
        [sys.executable, "-m", "jaxstyle", "stylize", tmp_path / "photo.png",
         tmp_path / "art.png", "-o", out, "--weights", tiny_weights_file, "--preset", "fast",
         "--stop-loss", "1e30", "--content-layers", "block2_conv2", "--style-layers",
         "block1_conv1"],
        env={**os.environ, "JAX_PLATFORMS": "cpu", "JAXSTYLE_NO_DOWNLOAD": "1"},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "stopped at step 10: the loss" in result.stderr and "stop_loss" in result.stderr
    assert "final loss" in result.stderr and out.exists()


def test_demo_and_studio_run_the_fast_preset():
    from jaxstyle.cli.demo import demo_config
    from jaxstyle.serve.settings import ImageRef, OptimizeSettings

    assert demo_config(False) == StyleConfig.preset("fast", max_dim=256)
    assert demo_config(True) == StyleConfig.preset("fast", max_dim=512)
    assert demo_config(False, steps=50).steps == 50
    assert demo_config(False, steps=50).steps_growth == 0  # 50 at any size
    settings = OptimizeSettings(photo=ImageRef("demo"), styles=(ImageRef("demo"),), steps=30)
    cfg = settings.config()
    assert cfg.lbfgs_memory == PRESETS["fast"]["lbfgs_memory"] and cfg.optimizer == "lbfgs"
    # The page asks for a length, and its bar counts to it: no stop rule there.
    assert cfg.steps == 30 and cfg.stop_improvement is None and cfg.stop_loss is None


def test_the_budget_grows_with_the_image_only_where_asked():
    fast = StyleConfig.preset("fast")
    growth = PRESETS["fast"]["steps_growth"]
    assert growth > 0
    assert sized_budget(fast, 256, 256).steps == 600 == sized_budget(fast, 40, 64).steps
    big = sized_budget(fast, 512, 512)
    assert big.steps == 10 * -(-600 * 4 ** growth // 10) and big.steps_growth == 0
    assert sized_budget(big, 512, 512) == big  # resolved once: a second call changes nothing
    plain = StyleConfig(steps=7)
    assert sized_budget(plain, 4000, 3000) is plain
    # A length given beside the preset is the run's length at any size.
    for given in (dict(steps=300), dict(epochs=3), dict(steps_per_epoch=20)):
        assert StyleConfig.preset("fast", **given).steps_growth == 0
    assert parse("--preset", "fast", "--steps", "300").steps_growth == 0
    assert parse("--preset", "fast").steps_growth == growth
    assert parse("--preset", "fast", "--steps-growth", "0.5", "--steps", "300").steps_growth == 0.5
    with pytest.raises(ConfigError, match="steps_growth must be a number in"):
        StyleConfig(steps_growth=-0.1)
    with pytest.raises(ConfigError, match="not scale_steps"):
        StyleConfig(steps_growth=0.3, scales=2, scale_steps=(5, 5))


def test_stylize_runs_the_grown_budget(tiny_params, monkeypatch):
    import jaxstyle.config

    # The reference size shrunk to 32x32, so a 32x64 photo is "twice as large" as it.
    monkeypatch.setattr(jaxstyle.config, "BUDGET_REFERENCE_PIXELS", 32 * 32)
    rng = np.random.default_rng(5)
    content, style = random_image(rng, 32, 64), random_image(rng, 32, 32)
    cfg = StyleConfig(steps=12, steps_growth=1.0, optimizer="lbfgs", **TINY)
    _, history = stylize(tiny_params, content, style, cfg)
    assert len(history) == 30  # 12 x 2, rounded up to 10
    _, fixed = stylize(tiny_params, content, style, cfg.replace(steps_growth=0.0))
    assert len(fixed) == 12
