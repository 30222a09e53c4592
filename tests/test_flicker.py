"""Flicker measurement: warping error on clips with known motion (pans and zooms of a still)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jaxstyle.flicker import (
    FlickerReport,
    make_motion_clip,
    measure_flicker,
    per_frame_warping_errors,
    sample_bilinear,
    warp,
    warping_error,
)

OUT_SIZE = (48, 64)  # (height, width)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A smooth-ish 'photo' with a few hard edges, 240 x 320, float32 [0, 1]."""
    rng = np.random.default_rng(0)
    coarse = (rng.uniform(size=(15, 20, 3)) * 255).astype(np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((320, 240), Image.BICUBIC),
                       dtype=np.float32) / 255
    image[60:120, 80:200] = [0.9, 0.2, 0.1]
    image[150:200, 30:90] = 0.05
    return image


def test_a_whole_pixel_pan_is_an_exact_shift(photo):
    frames, motions = make_motion_clip(photo, OUT_SIZE, frames=16, motion="pan", speed=2.0)
    assert frames.shape == (16, 48, 64, 3) and frames.dtype == np.uint8
    assert motions.shape == (15, 2, 3)
    np.testing.assert_allclose(motions[3], [[1, 0, -2], [0, 1, 0]], atol=1e-9)
    np.testing.assert_array_equal(frames[5][:, 2:], frames[6][:, :-2])
    assert np.abs(np.diff(frames.astype(int), axis=0)).mean() > 1  # the camera did move


def test_zoom_motion_keeps_the_centre_and_scales_about_it(photo):
    _, motions = make_motion_clip(photo, OUT_SIZE, motion="zoom", speed=1.0)
    centre = np.array([(64 - 1) / 2, (48 - 1) / 2, 1.0])
    np.testing.assert_allclose(motions[0] @ centre, centre[:2], atol=1e-9)
    edge = np.array([63.0, centre[1], 1.0])
    assert motions[0] @ edge == pytest.approx([64.0, centre[1]])  # the edge moves 1 px


@pytest.mark.parametrize("motion, speed, bound", [
    ("pan", 2.0, 1e-4),  # whole pixels: warping is exact
    ("pan", 1.0, 1e-4),
    ("pan", 0.5, 0.02),  # sub-pixel: bilinear interpolation blurs a little
    ("zoom", 1.0, 0.02),
])
def test_the_unstylized_clip_hardly_flickers(photo, motion, speed, bound):
    frames, motions = make_motion_clip(photo, OUT_SIZE, motion=motion, speed=speed)
    assert warping_error(frames, motions) < bound


def test_independent_noise_frames_flicker_a_lot(photo):
    _, motions = make_motion_clip(photo, OUT_SIZE, motion="pan", speed=0.5)
    noise = np.random.default_rng(1).integers(0, 256, (16, 48, 64, 3), dtype=np.uint8)
    assert warping_error(noise, motions) > 0.2


def test_a_constant_clip_gives_zero(photo):
    _, motions = make_motion_clip(photo, OUT_SIZE, motion="zoom", speed=2.0)
    constant = np.full((16, 48, 64, 3), 0.4, np.float32)
    assert warping_error(constant, motions) == pytest.approx(0.0, abs=1e-7)


def test_warp_marks_pixels_that_came_from_outside_as_invalid():
    frame = np.zeros((10, 12, 3), np.uint8)
    frame[:, 6] = 255
    warped, valid = warp(frame, np.array([[1.0, 0, -2], [0, 1, 0]]))  # content moves 2 px left
    assert warped[:, 4].min() == pytest.approx(1.0)  # the bright column arrived at x = 4
    # Sources x + 2 must lie in [1, 10]: targets x in [-1, 8]; y margin drops rows 0 and 9.
    assert valid[1:9, :9].all() and not valid[:, 9:].any()
    assert not valid[0].any() and not valid[9].any()


def test_per_frame_errors_show_where_a_clip_flickers(photo):
    frames, motions = make_motion_clip(photo, OUT_SIZE, motion="pan", speed=1.0)
    broken = frames.copy()
    broken[8] = 255 - broken[8]
    errors = per_frame_warping_errors(broken, motions)
    assert len(errors) == 15
    assert int(np.argmax(errors)) in (7, 8) and errors[7] > 0.1 and errors[8] > 0.1
    assert max(errors[:7] + errors[9:]) < 1e-4
    with pytest.raises(ValueError, match="motions"):
        per_frame_warping_errors(frames, motions[:-1])


def test_measure_flicker_separates_a_stable_stylizer_from_a_jittery_one(photo):
    frames, motions = make_motion_clip(photo, OUT_SIZE, motion="pan", speed=0.5)
    rng = np.random.default_rng(2)

    def invert(batch):  # pixelwise: perfectly stable under motion
        return 255 - batch

    def jitter(batch):  # a different random tint on every frame
        tint = rng.uniform(-0.2, 0.2, (len(batch), 1, 1, 3))
        return np.clip(batch / 255.0 + tint, 0, 1)

    stable = measure_flicker(invert, frames, motions, batch_size=5)
    assert isinstance(stable, FlickerReport) and len(stable.per_frame) == 15
    assert stable.stylized == pytest.approx(stable.source, abs=0.002)
    jittery = measure_flicker(jitter, frames, motions, batch_size=5)
    assert jittery.stylized > 0.05 > stable.stylized
    rng = np.random.default_rng(2)  # same tints again, now smoothed as video does
    smoothed = measure_flicker(jitter, frames, motions, batch_size=5, smooth=0.8)
    assert smoothed.stylized < 0.6 * jittery.stylized


def test_sample_bilinear_interpolates_between_pixels():
    image = np.array([[[0.0], [1.0]], [[2.0], [3.0]]], np.float32)
    values = sample_bilinear(image, np.array([0.5, 0.0, 1.0]), np.array([0.5, 1.0, 0.0]))
    np.testing.assert_allclose(values[:, 0], [1.5, 2.0, 1.0])


def test_bad_motion_settings_are_refused(photo):
    with pytest.raises(ValueError, match="motion"):
        make_motion_clip(photo, OUT_SIZE, motion="spin")
    with pytest.raises(ValueError, match="speed"):
        make_motion_clip(photo, OUT_SIZE, speed=0)
