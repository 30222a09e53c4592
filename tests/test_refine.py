"""`stylize --init MODEL`: the optimiser starts from an engine-2 or engine-3 one-pass result.

A learning rate of 1e-9 moves no pixel visibly in a few Adam steps, so a run's output equals
its start to PNG rounding: that is how the tests see which start a run took.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image
from test_cli import assert_one_line_error, run
from test_feedforward import randomize_style_params

from conftest import random_image
from jaxstyle.arbitrary.decoder import ENCODER_LAYER, FEATURE_MEANS, init_decoder
from jaxstyle.arbitrary.decoderfile import save_decoder
from jaxstyle.cli.common import UsageError
from jaxstyle.cli.onepass import make_one_pass, names_a_model, one_pass_start
from jaxstyle.config import StyleConfig
from jaxstyle.feedforward import init_params, save_model, style_record
from jaxstyle.images import load_image

WIDTH = 0.125
FROZEN = ("--learning-rate", "1e-9", "--steps", "2", "--steps-per-epoch", "2")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Photos, two paintings, a 2-style network trained on painting a and b (by their
    files' sha256), a third painting it never saw, and an any-style decoder."""
    folder = tmp_path_factory.mktemp("refine")
    rng = np.random.default_rng(3)
    for name, (h, w) in {"photo.png": (40, 48), "photo2.png": (40, 48), "a.png": (36, 36),
                         "b.png": (40, 36), "other.png": (36, 40)}.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / name)
    params = randomize_style_params(init_params(0, 2, WIDTH, size=32))
    styles = [style_record(n, load_image(folder / f"{n}.png"), folder / f"{n}.png")
              for n in ("a", "b")]
    network = save_model(folder / "two.jxs", params,
                         {"width": WIDTH, "num_styles": 2, "styles": styles})
    decoder = jax.tree.map(np.asarray, init_decoder(0, WIDTH))
    decoder["conv0"]["kernel"] = decoder["conv0"]["kernel"] * FEATURE_MEANS[ENCODER_LAYER]
    any_style = save_decoder(folder / "anystyle.jxs", decoder, {"width": WIDTH})
    return {"dir": folder, "network": network, "decoder": any_style}


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path), np.float32) / 255


def test_names_a_model(files):
    assert not names_a_model("content") and not names_a_model("noise")
    assert not names_a_model(str(files["dir"] / "photo.png"))  # an image file: the old --init
    assert names_a_model(str(files["network"])) and names_a_model("any")
    assert names_a_model("paintings:starry_night")
    assert not names_a_model(str(files["dir"] / "absent.png"))  # a missing picture, not a model
    assert names_a_model(str(files["dir"] / "absent.jxs"))


def test_network_finds_its_style_by_file_and_refuses_others(files, tiny_params):
    folder = files["dir"]
    photo = load_image(folder / "photo.png")
    painter = make_one_pass(str(files["network"]), [folder / "b.png"], None, lambda: None)
    by_file = painter(photo, [load_image(folder / "b.png")], [folder / "b.png"])
    named = make_one_pass(f"{files['network']}:b", [folder / "other.png"], None, None)
    by_name = named(photo, [None], [folder / "other.png"])
    other = make_one_pass(str(files["network"]), [], "a", None)(photo, [None], [None])
    np.testing.assert_allclose(by_file, by_name, atol=1e-6)
    assert np.abs(by_file - other).mean() > 1e-3  # style a is another picture
    assert by_file.shape == photo.shape
    with pytest.raises(UsageError, match="not trained on other.png.*its styles: a, b"):
        make_one_pass(str(files["network"]), [folder / "other.png"], None, None)
    with pytest.raises(UsageError, match="--init-style picks a style"):
        make_one_pass(str(files["decoder"]), [], "a", lambda: tiny_params)


def test_multiscale_start_is_painted_at_the_first_scale(files, tiny_params):
    photo = random_image(np.random.default_rng(0), 80, 64)[0]
    painter = make_one_pass(str(files["decoder"]), [], None, lambda: tiny_params)
    style = random_image(np.random.default_rng(1), 40, 40)[0]
    start, seconds = one_pass_start(painter, photo, [style], [], None,
                                    StyleConfig(scales=2, max_dim=80))
    assert start.shape == (40, 32, 3) and seconds >= 0
    # Luminance mode optimises a grey image: the start is grey too.
    grey, _ = one_pass_start(painter, photo, [style], [], None,
                             StyleConfig(preserve_color="luminance"))
    np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-5)


@pytest.mark.parametrize("engine", ["network", "decoder"])
def test_cli_run_starts_from_the_one_pass_result(files, tmp_path, tiny_weights_file,
                                                 tiny_params, engine):
    folder = files["dir"]
    out = tmp_path / "out.png"
    result = run("stylize", folder / "photo.png", folder / "a.png", "-o", out, "--weights",
                 tiny_weights_file, "--init", files[engine], *FROZEN)
    assert result.returncode == 0, result.stderr
    assert "one-pass result" in result.stderr
    painter = make_one_pass(str(files[engine]), [folder / "a.png"], None, lambda: tiny_params)
    want = painter(load_image(folder / "photo.png"), [load_image(folder / "a.png", 512)],
                   [folder / "a.png"])
    assert np.abs(png(out) - want).max() < 3 / 255
    if engine == "decoder":
        return  # one plain run is enough to show the photo start differs
    plain = tmp_path / "plain.png"
    assert run("stylize", folder / "photo.png", folder / "a.png", "-o", plain, "--weights",
               tiny_weights_file, *FROZEN).returncode == 0
    assert np.abs(png(plain) - want).mean() > 0.02  # the photo start is another picture


def test_cli_refuses_a_network_without_the_style(files, tmp_path, tiny_weights_file):
    folder = files["dir"]
    result = run("stylize", folder / "photo.png", folder / "other.png", "-o",
                 tmp_path / "x.png", "--weights", tiny_weights_file, "--init",
                 files["network"], *FROZEN)
    assert_one_line_error(result, "not trained on other.png")
    assert not (tmp_path / "x.png").exists()
    loose = run("stylize", folder / "photo.png", folder / "a.png", "-o", tmp_path / "x.png",
                "--init-style", "a", *FROZEN)
    assert_one_line_error(loose, "--init-style goes with --init MODEL")
    unknown = run("stylize", folder / "photo.png", folder / "a.png", "-o", tmp_path / "x.png",
                  "--init", "no_such_model", *FROZEN)
    assert_one_line_error(unknown, "not a built-in model")


def test_cli_resumed_run_that_began_from_a_model_equals_an_unbroken_one(files, tmp_path,
                                                                       tiny_weights_file):
    folder = files["dir"]
    common = ("stylize", folder / "photo.png", folder / "b.png", "--weights", tiny_weights_file,
              "--init", files["network"], "--steps-per-epoch", "2", "-q")
    unbroken = run(*common, "-o", tmp_path / "whole.png", "--steps", "4")
    first = run(*common, "-o", tmp_path / "half.png", "--steps", "2", "--checkpoint",
                tmp_path / "run.ckpt")
    resumed = run(*common, "-o", tmp_path / "resumed.png", "--steps", "4", "--resume",
                  tmp_path / "run.ckpt")
    for result in (unbroken, first, resumed):
        assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(png(tmp_path / "resumed.png"), png(tmp_path / "whole.png"))
    assert np.abs(png(tmp_path / "half.png") - png(tmp_path / "whole.png")).max() > 0


def test_cli_batch_starts_each_photo_from_its_own_one_pass(files, tmp_path, tiny_weights_file,
                                                           tiny_params):
    folder = files["dir"]
    result = run("stylize", folder / "photo.png", folder / "photo2.png", "--style",
                 folder / "a.png", folder / "b.png", "-o", tmp_path / "out", "--weights",
                 tiny_weights_file, "--init", files["network"], *FROZEN, "-q")
    assert result.returncode == 0, result.stderr
    painter = make_one_pass(str(files["network"]), [], None, None)
    for photo in ("photo", "photo2"):
        for style in ("a", "b"):
            want = painter(load_image(folder / f"{photo}.png"), [None],
                           [folder / f"{style}.png"])
            got = png(tmp_path / "out" / f"{photo}_{style}.png")
            assert np.abs(got - want).max() < 3 / 255, (photo, style)
