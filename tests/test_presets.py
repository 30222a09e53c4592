"""Presets and stopping rules (issue 36): `StyleConfig.preset`, `--preset`, and runs that end
when a rule holds and say which one did."""

import argparse

import numpy as np
import pytest

from conftest import random_image
from jaxstyle import StyleConfig
from jaxstyle.cli.common import config_from_args, config_options
from jaxstyle.config import PRESETS
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
    settings = OptimizeSettings(photo=ImageRef("demo"), styles=(ImageRef("demo"),), steps=30)
    cfg = settings.config()
    assert cfg.lbfgs_memory == PRESETS["fast"]["lbfgs_memory"] and cfg.optimizer == "lbfgs"
    # The page asks for a length, and its bar counts to it: no stop rule there.
    assert cfg.steps == 30 and cfg.stop_improvement is None and cfg.stop_loss is None
