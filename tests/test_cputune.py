"""The step's XLA CPU conv path: measured once per CPU, cached, overridable, and the same
numbers whichever path runs (issue 36, item 4)."""

import json

import numpy as np
import pytest

from conftest import random_image
from jaxstyle import StyleConfig, cputune, init_state, make_step, make_targets
from jaxstyle.errors import ConfigError
from jaxstyle.vgg import prepare_params


def test_pick_leaves_xlas_default_unless_another_path_is_clearly_faster():
    assert cputune.pick({"default": 100.0, "no-ynn": 80.0}) == "no-ynn"
    assert cputune.pick({"default": 100.0, "no-ynn": 98.0}) == "default"
    assert cputune.pick({"default": 80.0, "no-ynn": 100.0}) == "default"


def test_the_environment_overrides_and_a_bad_value_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(cputune.ENV, "no-ynn")
    assert cputune.conv_path(tmp_path / "tune.json") == "no-ynn"
    assert cputune.step_compiler_options() == cputune.CONV_PATHS["no-ynn"]
    assert not cputune.needs_measuring(tmp_path / "tune.json")
    monkeypatch.setenv(cputune.ENV, "fastest")
    with pytest.raises(ConfigError, match="JAXSTYLE_XLA_CONV='fastest'"):
        cputune.conv_path()


def test_measured_once_then_read_from_the_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(cputune.ENV, raising=False)
    path = tmp_path / "cpu-tune.json"
    assert cputune.needs_measuring(path)
    measured = []

    def measure(**_):
        measured.append(1)
        return {"default": 50.0, "no-ynn": 40.0}

    monkeypatch.setattr(cputune, "measure_conv_paths", measure)
    assert cputune.conv_path(path) == "no-ynn" and measured == [1]
    assert cputune.conv_path(path) == "no-ynn" and measured == [1]  # cached: not again
    entry = json.loads(path.read_text())[cputune.cpu_signature()]
    assert entry["conv"] == "no-ynn" and entry["ms"] == {"default": 50.0, "no-ynn": 40.0}
    assert not cputune.needs_measuring(path)
    path.write_text("{not json")  # a damaged cache is measured again, and rewritten
    assert cputune.conv_path(path) == "no-ynn" and measured == [1, 1]


def test_measuring_times_every_path_for_real():
    times = cputune.measure_conv_paths(size=32, rounds=1, steps_per_round=1)
    assert sorted(times) == sorted(cputune.CONV_PATHS)
    assert all(0 < ms < 60_000 for ms in times.values())


def test_every_conv_path_gives_the_same_step(monkeypatch, tiny_params):
    rng = np.random.default_rng(2)
    photo, painting = random_image(rng, 32, 40), random_image(rng, 32, 32)
    cfg = StyleConfig(content_layers="block4_conv2", style_layers="block1_conv1,block3_conv1")
    targets = make_targets(tiny_params, photo, painting, cfg)
    images, losses, programs = {}, {}, {}
    for name in cputune.CONV_PATHS:
        monkeypatch.setenv(cputune.ENV, name)
        step, state = make_step(cfg), init_state(photo, cfg)
        programs[name] = step.lower(prepare_params(tiny_params), targets, state).compile(
            ).as_text()
        for _ in range(3):
            state, metrics = step(tiny_params, targets, state)
        images[name], losses[name] = np.asarray(state.image), float(metrics["loss"])
    # Other kernels (the option reached the compiler), the same numbers up to rounding
    # (which Adam's normalised steps carry along: 3e-5 after 3 steps).
    assert programs["no-ynn"] != programs["default"]
    np.testing.assert_allclose(images["no-ynn"], images["default"], atol=1e-4)
    assert losses["no-ynn"] == pytest.approx(losses["default"], rel=1e-4)
