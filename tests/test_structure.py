"""The structure path (`jaxstyle.arbitrary.structure`): the photo's blurred luminance put back
under a one-pass picture, and its plumbing through apply_any, the CLI and export."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import random_image
from jaxstyle.arbitrary.apply import apply_any, default_structure
from jaxstyle.arbitrary.structure import (
    GRID_SIDE,
    SIGMA,
    check_structure,
    gaussian_matrix,
    restore_layout,
)
from jaxstyle.errors import ConfigError
from jaxstyle.quality import layout_score


def _numpy_blur(row: np.ndarray, sigma: float) -> np.ndarray:
    """A 1-D Gaussian with np.pad's reflected edges, to 6 sigma (float64)."""
    radius = int(6 * sigma) + 1
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(row.astype(np.float64), radius, mode="reflect")
    return np.convolve(padded, taps[::-1] / taps.sum(), mode="valid")


def test_the_gaussian_matrix_is_a_reflected_blur_whose_rows_sum_to_one(rng):
    row = rng.uniform(size=40)
    matrix = np.asarray(gaussian_matrix(40, 3.0))
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(matrix @ row, _numpy_blur(row, 3.0), atol=1e-5)


def _scene(height: int, width: int, flip: bool = False) -> np.ndarray:
    """A photo-like layout: a bright disc on a dark ground, left-to-right light falloff."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    disc = ((x - 0.35) ** 2 + (y - 0.5) ** 2 < 0.06).astype(np.float32)
    grey = 0.15 + 0.6 * disc + 0.2 * (1 - x)
    grey = grey[:, ::-1] if flip else grey
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)


def test_it_gives_the_photos_layout_back_and_keeps_the_pictures_strokes(rng):
    photo = _scene(64, 96)
    strokes = 0.08 * np.sign(np.sin(np.arange(96) * 1.7))[None, :, None]  # fine texture
    tint = np.array([0.9, 0.6, 0.3], np.float32)
    picture = np.clip(_scene(64, 96, flip=True) * tint + strokes, 0, 1).astype(np.float32)
    out = np.asarray(restore_layout(picture[None], photo[None])[0])
    assert layout_score(picture, photo) < 0.2 < 0.9 < layout_score(out, photo)
    # The strokes (what a small blur leaves out) are the picture's.
    high_in = picture.mean(-1) - np.apply_along_axis(_numpy_blur, 1, picture.mean(-1), 2.0)
    high_out = out.mean(-1) - np.apply_along_axis(_numpy_blur, 1, out.mean(-1), 2.0)
    assert np.corrcoef(high_in.ravel(), high_out.ravel())[0, 1] > 0.9
    # Colours stay the picture's: one luminance shift on all channels, so chroma differences
    # (R - B) are unchanged wherever nothing clipped.
    unclipped = (out > 0.01).all(-1) & (out < 0.99).all(-1)
    np.testing.assert_allclose((out[..., 0] - out[..., 2])[unclipped],
                               (picture[..., 0] - picture[..., 2])[unclipped], atol=1e-5)


def test_strength_interpolates_and_zero_is_the_picture(rng):
    photo, picture = random_image(rng, 32, 40), random_image(rng, 32, 40)
    none = np.asarray(restore_layout(picture, photo, 0.0))
    full = np.asarray(restore_layout(picture, photo, 1.0))
    half = np.asarray(restore_layout(picture, photo, 0.5))
    np.testing.assert_allclose(none, picture, atol=1e-6)
    assert np.abs(full - picture).max() > 1e-2
    unclipped = (full > 0) & (full < 1) & (picture > 0) & (picture < 1)
    np.testing.assert_allclose(half[unclipped], ((picture + full) / 2)[unclipped], atol=1e-5)


def test_the_blur_scales_with_the_photo_so_sizes_agree():
    small_photo, small_picture = _scene(48, 64), _scene(48, 64, flip=True) * 0.8
    big_photo, big_picture = _scene(192, 256), _scene(192, 256, flip=True) * 0.8
    small = np.asarray(restore_layout(small_picture[None], small_photo[None])[0])
    big = np.asarray(restore_layout(big_picture[None], big_photo[None])[0])
    down = np.asarray(Image.fromarray(big[..., 0]).resize((64, 48), Image.Resampling.BOX))
    assert np.abs(down - small[..., 0]).mean() < 0.02
    assert SIGMA / GRID_SIDE == pytest.approx(1 / 64)


def test_it_exports_for_any_photo_size():
    shapes = jax.export.symbolic_shape("n, h, w, 3", constraints=["h >= 32", "w >= 32"])
    spec = jax.ShapeDtypeStruct(shapes, jnp.float32)
    exported = jax.export.export(jax.jit(restore_layout))(spec, spec)
    rng = np.random.default_rng(3)
    for shape in ((1, 40, 56, 3), (2, 64, 33, 3)):
        picture, photo = rng.uniform(size=(2, *shape)).astype(np.float32)
        np.testing.assert_allclose(np.asarray(exported.call(picture, photo)),
                                   np.asarray(restore_layout(picture, photo)), atol=1e-5)


def test_bad_structure_and_shapes_name_the_argument(rng):
    for bad in (-0.1, 1.5, float("nan"), "1", True):
        with pytest.raises(ConfigError, match="structure must be"):
            check_structure(bad)
    with pytest.raises(ConfigError, match="one shape"):
        restore_layout(random_image(rng, 32, 32), random_image(rng, 32, 40))


def test_apply_any_defaults_to_the_models_own_structure(tiny_params, rng):
    from jaxstyle.arbitrary.apply import load_builtin_decoder

    decoder, header = load_builtin_decoder()  # AdaIN: off unless asked
    photo, painting = random_image(rng, 40, 48)[0], random_image(rng, 32, 32)[0]
    assert default_structure(header) == 0.0
    assert default_structure({"architecture": "wct-vgg19", "levels": [2, 1]}) == 1.0
    plain = apply_any(None, decoder, header, photo, [painting])
    np.testing.assert_array_equal(plain, apply_any(None, decoder, header, photo, [painting],
                                                   structure=0.0))
    kept = apply_any(None, decoder, header, photo, [painting], structure=1.0)
    assert np.abs(kept - plain).max() > 1e-3
    # apply_any adds the shift in place on the host; the pure function (what export runs)
    # gives the same picture.
    np.testing.assert_allclose(kept, np.asarray(restore_layout(plain[None], photo[None])[0]),
                               atol=1e-5)
    both = apply_any(None, decoder, header, photo, [painting], structure=0.5, strength=0.6,
                     preserve_color="luminance")
    assert both.shape == photo.shape and 0 <= both.min() and both.max() <= 1
    assert layout_score(kept, photo) > layout_score(plain, photo)
    with pytest.raises(ConfigError, match="structure must be"):
        apply_any(None, decoder, header, photo, [painting], structure=2.0)


def test_cli_structure_is_checked_and_only_for_any_style_models(tmp_path, rng):
    from test_arbitrary import _cli as run

    def _cli(*args):
        done = run(*args)
        return done.returncode, done.stderr

    photo, painting = tmp_path / "photo.png", tmp_path / "painting.png"
    for path in (photo, painting):
        Image.fromarray((random_image(rng, 40, 40)[0] * 255).astype(np.uint8)).save(path)
    out = tmp_path / "out.png"
    code, err = _cli("apply", "any", photo, "--style-image", painting, "-o", out,
                     "--structure", 2)
    assert code == 2 and "--structure must be in [0, 1]" in err and not out.exists()
    code, err = _cli("apply", "paintings", photo, "-o", out, "--structure", 1)
    assert code == 2 and "--structure works with an arbitrary-style decoder" in err
    code, err = _cli("apply", "any", photo, "--style-image", painting, "-o", out,
                     "--structure", 1, "-q")
    assert code == 0, err
    plain = tmp_path / "plain.png"
    assert _cli("apply", "any", photo, "--style-image", painting, "-o", plain, "-q")[0] == 0
    assert np.abs(np.asarray(Image.open(out), np.float32)
                  - np.asarray(Image.open(plain), np.float32)).max() > 1


def test_onnx_file_restores_the_layout_as_the_library_does():
    pytest.importorskip("jax2onnx")
    ort = pytest.importorskip("onnxruntime")
    from jaxstyle.export import PHOTO_DIMS, ExportSpec, onnx_model

    spec = ExportSpec(lambda photos: restore_layout(1 - photos, photos, 1.0),
                      (("photos", PHOTO_DIMS),), {"test": "structure"})
    session = ort.InferenceSession(onnx_model(spec).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for size in ((40, 56), (72, 40)):
        photo = np.random.default_rng(5).uniform(size=(1, *size, 3)).astype(np.float32)
        got = session.run(None, {"photos": photo})[0]
        np.testing.assert_allclose(got, np.asarray(restore_layout(1 - photo, photo)),
                                   atol=1e-5)


def test_studio_structure_control_maps_to_the_flag_and_refuses_hostile_values():
    from jaxstyle.serve.settings import parse_job

    job = {"engine": "any", "photo": {"demo": True}, "styles": [{"painting": 0}]}
    assert parse_job(job, 1, {}).structure is None  # the model's own
    assert "--structure" not in parse_job({**job, "structure": "default"}, 1, {}).command()
    chosen = parse_job({**job, "structure": 0.5}, 1, {})
    assert chosen.structure == 0.5 and chosen.command().endswith("--structure 0.5")
    for hostile in (2, -1, "all", [1], float("nan")):
        with pytest.raises(ConfigError, match="structure"):
            parse_job({**job, "structure": hostile}, 1, {})
