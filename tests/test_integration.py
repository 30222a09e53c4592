"""The real VGG19 weights (fetched once through the fallback and cached) at 64 px."""

import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from jaxstyle import StyleConfig, init_state, make_step, make_targets, stylize, vgg19_features
from jaxstyle.demo import demo_content, demo_style
from jaxstyle.images import resize
from reference import np_vgg

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_pair():
    content = resize(demo_content(), (64, 96))[None]
    style = resize(demo_style(), (64, 64))[None]
    return content, style


def test_real_features_match_float64_reference(real_params, demo_pair):
    content, _ = demo_pair
    layers = ("block1_conv1", "block3_conv1", "block5_conv2")
    got = jax.jit(lambda p, x: vgg19_features(p, x, layers))(real_params, content)
    expected = np_vgg(real_params, content, layers)
    for name in layers:
        rel = np.linalg.norm(got[name] - expected[name]) / np.linalg.norm(expected[name])
        assert rel <= 1e-4, (name, rel)
        assert np.asarray(got[name]).std() > 0


def test_real_steps_lower_loss_and_move_towards_style(real_params, demo_pair):
    content, style = demo_pair
    cfg = StyleConfig(steps=20, steps_per_epoch=10, max_dim=96)
    image, history = stylize(real_params, content, style, cfg)
    assert len(history) == 20
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["style"] < history[0]["style"]
    assert np.abs(np.asarray(image) - content).mean() > 1e-3


def test_real_step_traces_once(real_params, demo_pair):
    content, style = demo_pair
    cfg = StyleConfig()
    step = make_step(cfg)
    targets = make_targets(real_params, content, style, cfg)
    state = init_state(content, cfg)
    for _ in range(3):
        state, metrics = step(real_params, targets, state)
    assert step.trace_count == 1 and np.isfinite(float(metrics["loss"]))


def test_demo_command_with_cached_real_weights(real_params, tmp_path):
    out = tmp_path / "demo.png"
    result = subprocess.run(
        [sys.executable, "-m", "jaxstyle", "demo", "-o", str(out), "--max-dim", "64",
         "--steps", "5"], capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"})
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (64, 43)
    assert "saved" in result.stderr
