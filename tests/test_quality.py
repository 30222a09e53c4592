"""The scores that say whether an output keeps the photo: layout and grid (`jaxstyle.quality`)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxstyle.demo import demo_content
from jaxstyle.quality import blockiness, box_average, grid_excess, layout_score, luminance


@pytest.fixture(scope="module")
def photo():
    return demo_content(128)  # the packaged cat photo, 128 px on the long side


def test_box_average_matches_numpy_block_means():
    grey = np.arange(64 * 96, dtype=np.float32).reshape(64, 96)
    got = box_average(grey, short_side=32)
    want = grey.reshape(32, 2, 48, 2).mean(axis=(1, 3))
    assert got.shape == (32, 48)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_layout_is_one_for_the_photo_and_near_zero_for_noise(photo, rng):
    assert layout_score(photo, photo) == pytest.approx(1.0, abs=1e-5)
    noise = rng.random(photo.shape).astype(np.float32)
    assert abs(layout_score(noise, photo)) < 0.2
    # A global colour and contrast change keeps the layout: it is a correlation.
    assert layout_score(0.5 * photo + 0.3, photo) == pytest.approx(1.0, abs=1e-4)
    # A mirrored photo puts its shapes elsewhere.
    assert layout_score(photo[:, ::-1], photo) < 0.8


def test_layout_matches_a_numpy_correlation(photo, rng):
    other = np.clip(photo + 0.3 * rng.standard_normal(photo.shape), 0, 1).astype(np.float32)
    a = box_average(luminance(other)).ravel()
    b = box_average(luminance(photo)).ravel()
    assert layout_score(other, photo) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-5)


def test_layout_refuses_images_of_different_sizes(photo):
    with pytest.raises(ValueError, match="differ in size"):
        layout_score(photo[:-1], photo)


def test_a_photo_has_little_blockiness_and_a_grid_has_much(photo):
    assert blockiness(photo) < 0.08
    y, x = np.mgrid[:photo.shape[0], :photo.shape[1]]
    checkerboard = ((y // 4 + x // 4) % 2)[..., None] * 0.1
    gridded = np.clip(photo + checkerboard, 0, 1)
    assert grid_excess(gridded, photo) > 0.1
    # 8 px blocks (what nearest-neighbour upsampling of an untrained decoder paints):
    # every edge on one position mod 8.
    blocks = np.repeat(np.repeat(photo[::8, ::8], 8, 0), 8, 1)[:photo.shape[0], :photo.shape[1]]
    assert grid_excess(blocks, photo) > 1.0
    # The same photo moved by 3 px relative to the grid scores about the same.
    assert abs(blockiness(photo[3:, 3:]) - blockiness(photo[:-3, :-3])) < 0.03


def test_blockiness_is_low_for_noise_and_refuses_tiny_images(rng):
    assert blockiness(rng.random((96, 96, 3)).astype(np.float32)) < 0.05
    with pytest.raises(ValueError, match="too small"):
        blockiness(np.zeros((16, 64, 3), np.float32))


def test_luminance_weights_and_shape_check():
    pixel = np.array([[[1.0, 0.0, 0.0]]], np.float32)
    assert luminance(pixel)[0, 0] == pytest.approx(0.299)
    with pytest.raises(ValueError, match="H, W, 3"):
        luminance(np.zeros((4, 4), np.float32))
