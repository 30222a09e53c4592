"""A measured flicker number: the warping error of clips whose motion is known exactly.

A camera pans or zooms across a still photo, so every frame is an exact affine crop of it and
the motion between frames is known without estimating optical flow. A temporally stable
stylizer turns frame t+1 into frame t's output moved by that motion; the warping error says
how far it is from that: mean |warp(out_t) - out_{t+1}| (0..1 scale) over the pixels that
stay in view. Also here: the exponential blend with the previous output that video smoothing
uses. Numpy and Pillow only (no jax, no PyAV).

Coordinates: x to the right, y down, pixel centres at integers. An affine is a 2x3 matrix
[A | b] taking (x, y) to A @ (x, y) + b.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

MARGIN = 2  # still pixels kept around every crop, so bilinear samples never leave the still
MOTIONS = ("pan", "zoom")


def as_float(frames: np.ndarray) -> np.ndarray:
    """Frames as float32 in [0, 1], from uint8 or float."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255.0
    return np.clip(frames, 0.0, 1.0).astype(np.float32)


def temporal_smooth(frames: np.ndarray, smooth: float,
                    previous: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Blend each frame with the previous output: out_t = (1-s)*frame_t + s*out_{t-1}.

    Takes and returns float32 frames in [0, 1]; returns (outputs, last output) so the blend can
    carry on across batches. The first frame of a clip (previous None) passes unchanged.

    Example:

    >>> import jaxstyle.video
    >>> frames = np.stack([np.zeros((2, 2, 3)), np.ones((2, 2, 3))]).astype(np.float32)
    >>> out, last = jaxstyle.video.temporal_smooth(frames, smooth=0.25)
    >>> out[:, 0, 0, 0]  # the second frame: 0.75 * 1 + 0.25 * 0
    array([0.  , 0.75], dtype=float32)
    """
    outputs = np.empty_like(frames)
    for index, frame in enumerate(frames):
        previous = frame if previous is None else (1.0 - smooth) * frame + smooth * previous
        outputs[index] = previous
    return outputs, previous


def sample_bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear samples of an (H, W, C) image at float coordinates (clamped to the image)."""
    height, width = image.shape[:2]
    xs = np.clip(xs, 0.0, width - 1.0)
    ys = np.clip(ys, 0.0, height - 1.0)
    left = np.minimum(np.floor(xs).astype(np.int64), width - 2)
    top = np.minimum(np.floor(ys).astype(np.int64), height - 2)
    fx = (xs - left)[..., None]
    fy = (ys - top)[..., None]
    upper = image[top, left] * (1 - fx) + image[top, left + 1] * fx
    lower = image[top + 1, left] * (1 - fx) + image[top + 1, left + 1] * fx
    return (upper * (1 - fy) + lower * fy).astype(np.float32)


def _homogeneous(affine: npt.ArrayLike) -> np.ndarray:
    """2x3 affine -> 3x3 matrix, so maps compose by matrix product."""
    return np.vstack([np.asarray(affine, np.float64), [0.0, 0.0, 1.0]])


def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y coordinates of every pixel centre, each (height, width)."""
    return np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))


def _apply(affine: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The affine applied to coordinate arrays."""
    (a, b, c), (d, e, f) = np.asarray(affine, np.float64)[:2]
    return a * xs + b * ys + c, d * xs + e * ys + f


def _fit_still(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The photo resized (antialiased) to cover height x width, centre-cropped, float32 [0, 1].

    Resizing first means frames sample the still at about one still pixel per frame pixel,
    so a sub-pixel pan is not hiding aliasing from a much larger photo.
    """
    rgb = np.asarray(Image.fromarray(np.rint(as_float(image) * 255).astype(np.uint8)))
    scale = max(height / rgb.shape[0], width / rgb.shape[1])
    size = (max(width, round(rgb.shape[1] * scale)), max(height, round(rgb.shape[0] * scale)))
    resized = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    return as_float(resized[top:top + height, left:left + width])


def _camera(motion: str, speed: float, frames: int, height: int,
            width: int) -> tuple[tuple[int, int], list[np.ndarray]]:
    """(still size, per-frame 3x3 maps from frame pixel coordinates to still coordinates)."""
    if motion == "pan":  # the camera moves right: content moves `speed` px left per frame
        still = (height + 2 * MARGIN, int(np.ceil(width + speed * (frames - 1))) + 2 * MARGIN)
        maps = [_homogeneous([[1.0, 0.0, MARGIN + t * speed], [0.0, 1.0, MARGIN]])
                for t in range(frames)]
        return still, maps
    # Zoom in about the centre; the frame's left/right edges move `speed` px per frame.
    factor = 1.0 + 2.0 * speed / (width - 1)
    still = (height + 2 * MARGIN, width + 2 * MARGIN)
    centre_frame = np.array([(width - 1) / 2, (height - 1) / 2])
    centre_still = centre_frame + MARGIN
    maps = []
    for t in range(frames):
        scale = factor ** -t
        offset = centre_still - scale * centre_frame
        maps.append(_homogeneous([[scale, 0, offset[0]], [0, scale, offset[1]]]))
    return still, maps


def make_motion_clip(image: np.ndarray, out_size: tuple[int, int], frames: int = 16,
                     motion: str = "pan", speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A camera panning or zooming over a still: (uint8 frames (T, h, w, 3), motions (T-1, 2, 3)).

    Each frame is an exact bilinear affine crop of the still; motions[t] takes frame t's pixel
    coordinates to frame t+1's. speed is in pixels per frame (0.5 sub-pixel, 2.0 whole-pixel).
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, not {motion!r}")
    if speed <= 0 or frames < 2:
        raise ValueError(f"need speed > 0 and at least 2 frames, not {speed} and {frames}")
    height, width = out_size
    (still_height, still_width), maps = _camera(motion, speed, frames, height, width)
    still = _fit_still(image, still_height, still_width)
    xs, ys = _pixel_grid(height, width)
    clip = np.stack([sample_bilinear(still, *_apply(frame_map, xs, ys)) for frame_map in maps])
    motions = np.stack([(np.linalg.inv(maps[t + 1]) @ maps[t])[:2] for t in range(frames - 1)])
    return np.rint(clip * 255).astype(np.uint8), motions


def warp(frame: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move a frame by a known motion onto the next frame's coordinates (bilinear).

    Returns (warped float32 [0, 1], valid), valid marking pixels whose source lies inside the
    frame with a 1-pixel margin (where bilinear sampling has real neighbours).
    """
    height, width = frame.shape[:2]
    xs, ys = _pixel_grid(height, width)
    source_x, source_y = _apply(np.linalg.inv(_homogeneous(affine)), xs, ys)
    valid = (source_x >= 1) & (source_x <= width - 2) & (source_y >= 1) & (source_y <= height - 2)
    return sample_bilinear(as_float(frame), source_x, source_y), valid


def per_frame_warping_errors(frames: np.ndarray, motions: np.ndarray) -> list[float]:
    """mean |warp(out_t) - out_{t+1}| over pixels in view, for each consecutive pair (0..1)."""
    if len(motions) != len(frames) - 1:
        raise ValueError(f"{len(frames)} frames need {len(frames) - 1} motions, "
                         f"not {len(motions)}")
    errors = []
    for t, affine in enumerate(motions):
        warped, valid = warp(frames[t], affine)
        if not valid.any():
            raise ValueError(f"motion {t} moves frame {t} entirely out of view")
        errors.append(float(np.abs(warped - as_float(frames[t + 1]))[valid].mean()))
    return errors


def warping_error(frames: np.ndarray, motions: np.ndarray) -> float:
    """The flicker number: mean warping error over consecutive frames (0 = perfectly stable)."""
    return float(np.mean(per_frame_warping_errors(frames, motions)))


@dataclass(frozen=True)
class FlickerReport:
    """Warping error of a stylized clip, and of the clip itself (the interpolation floor)."""

    stylized: float
    source: float
    per_frame: list[float]


def measure_flicker(stylize_batch: Callable[[np.ndarray], np.ndarray], frames: np.ndarray,
                    motions: np.ndarray, *, batch_size: int = 8,
                    smooth: float = 0.0) -> FlickerReport:
    """Stylize a motion clip in batches (optionally smoothed as video does) and measure it."""
    outputs, previous = [], None
    for begin in range(0, len(frames), batch_size):
        styled = as_float(stylize_batch(frames[begin:begin + batch_size]))
        if smooth > 0:
            styled, previous = temporal_smooth(styled, smooth, previous)
        outputs.append(styled)
    per_frame = per_frame_warping_errors(np.concatenate(outputs), motions)
    return FlickerReport(stylized=float(np.mean(per_frame)),
                         source=warping_error(frames, motions), per_frame=per_frame)
