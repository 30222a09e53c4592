"""What the video modules share: errors, the probe's and the run's results, frame sizes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from jaxstyle.errors import JaxstyleError
from jaxstyle.interrupts import by_signal

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
CRF_CODECS = ("libx264", "libx265")  # encoders with a constant-quality `crf` option
QUEUE_BATCHES = 2  # each queue holds this many batches: hides jitter, memory stays flat
POLL_SECONDS = 0.05  # how often a blocked thread looks whether it should give up
SMPTE170M, LIMITED_RANGE = 6, 1  # FFmpeg's enums for the BT.601 matrix swscale converts with

StylizeBatch = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


class VideoError(JaxstyleError):
    """A video is missing, unreadable or cannot be written as asked.

    Example:

    >>> import jaxstyle.video
    >>> try:
    ...     jaxstyle.video.probe_video("missing.mp4")
    ... except jaxstyle.video.VideoError as error:
    ...     print(error)
    video missing.mp4: no such file
    """


class VideoInterrupted(JaxstyleError):
    """Ctrl-C or SIGTERM (`signum`) during stylize_video; the frames done so far are in
    `partial_path` (or nowhere).

    Example:

    >>> import jaxstyle.video
    >>> from pathlib import Path
    >>> print(jaxstyle.video.VideoInterrupted(Path("out.partial.mp4"), 40, 100, signum=2))
    interrupted by SIGINT after 40 of 100 frames; the frames done are in out.partial.mp4
    """

    def __init__(self, partial_path: Path | None, frames_done: int, total_frames: int,
                 signum: int | None = None) -> None:
        self.partial_path = partial_path
        self.frames_done = frames_done
        self.total_frames = total_frames
        self.signum = signum
        where = (f"the frames done are in {partial_path}" if partial_path is not None
                 else "nothing was written")
        super().__init__(f"interrupted{by_signal(signum)} after {frames_done} of "
                         f"{total_frames} frames; {where}")


@dataclass(frozen=True)
class VideoInfo:
    """What probe_video learns about a file; width and height are as stored, before rotation.

    Example:

    >>> import jaxstyle.video
    >>> jaxstyle.video.write_video("clip.mp4", np.zeros((4, 32, 48, 3), np.uint8), fps=25)
    PosixPath('clip.mp4')
    >>> info = jaxstyle.video.probe_video("clip.mp4")
    >>> info.width, info.height, info.fps, info.frames, info.has_audio
    (48, 32, Fraction(25, 1), 4, False)
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    frames_exact: bool  # False where the container does not say and frames = duration * fps
    duration: float
    rotation: int  # degrees counter-clockwise a player turns the frames (PyAV's convention)
    codec: str
    has_audio: bool
    audio_codec: str | None
    time_base: Fraction  # of the video stream's timestamps
    start_seconds: Fraction  # the video stream's first timestamp, in seconds

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as a player shows the video, after the rotation."""
        turned = self.rotation % 180 == 90
        return (self.height, self.width) if turned else (self.width, self.height)


@dataclass(frozen=True)
class VideoResult:
    """What stylize_video wrote, and where the time went (the three stages overlap).

    Example:

    >>> import jaxstyle.video
    >>> jaxstyle.video.write_video("clip.mp4", np.zeros((4, 32, 48, 3), np.uint8), fps=25)
    PosixPath('clip.mp4')
    >>> result = jaxstyle.video.stylize_video("clip.mp4", "negative.mp4", lambda batch: 255 - batch)
    >>> result.frames, result.width, result.height, result.frame_rate, result.has_audio
    (4, 48, 32, Fraction(25, 1), False)
    """

    path: Path
    frames: int
    width: int
    height: int
    frame_rate: Fraction
    duration: float
    has_audio: bool
    decode_seconds: float  # demux, decode, RGB conversion and resize (decode thread)
    stylize_seconds: float  # inside stylize_batch (calling thread)
    encode_seconds: float  # RGB->YUV, encode, mux, audio copy (encode thread)
    wait_seconds: float  # the calling thread waiting for FFmpeg: the network sat idle
    wall_seconds: float

    @property
    def throughput_fps(self) -> float:
        """Frames stylized per second of wall time."""
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def timing_summary(self) -> str:
        """One line: throughput and time per stage."""
        return (f"{self.frames} frames in {self.wall_seconds:.2f} s "
                f"({self.throughput_fps:.1f} frames/s): network {self.stylize_seconds:.2f} s, "
                f"decode {self.decode_seconds:.2f} s, encode {self.encode_seconds:.2f} s "
                f"(overlapping), network idle {self.wait_seconds:.2f} s")


# ----------------------------------------------------------------------------- sizes and pixels

def output_size(width: int, height: int, max_dim: int | None = None) -> tuple[int, int]:
    """(width, height) with the longer side at most max_dim (never enlarged), both even.

    Example:

    >>> import jaxstyle.video
    >>> jaxstyle.video.output_size(1920, 1080, max_dim=640), jaxstyle.video.output_size(33, 21)
    ((640, 360), (32, 20))
    """
    if max_dim is not None and max(width, height) > max_dim:
        scale = max_dim / max(width, height)
        width, height = round(width * scale), round(height * scale)
    # yuv420p stores one colour sample per 2x2 block, so encoders refuse odd sizes.
    return max(2, width - width % 2), max(2, height - height % 2)


def fit_frame(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize (antialiased) an (H, W, 3) uint8 frame to (height, width); crop a lone odd pixel.

    Example:

    >>> import jaxstyle.video
    >>> frame = np.zeros((33, 65, 3), np.uint8)
    >>> jaxstyle.video.fit_frame(frame, 64, 32).shape  # a lone odd pixel: cropped
    (32, 64, 3)
    >>> jaxstyle.video.fit_frame(frame, 32, 16).shape  # resized
    (16, 32, 3)
    """
    rows, cols = rgb.shape[:2]
    if (cols, rows) == (width, height):
        return rgb
    if cols - width in (0, 1) and rows - height in (0, 1):
        return rgb[:height, :width]  # only evenness changed: cropping keeps every pixel sharp
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """uint8 frames as they are; float frames in [0, 1] clipped and rounded to uint8.

    Example:

    >>> import jaxstyle.video
    >>> jaxstyle.video.to_uint8(np.array([0.0, 0.5, 1.2]))
    array([  0, 128, 255], dtype=uint8)
    """
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return np.rint(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
