"""Probe and read a video with PyAV: its size, rate, rotation and audio, and its frames as RGB."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame

from jaxstyle.video.common import VideoError, VideoInfo


def _check_input_file(path: Path) -> None:
    """Fail with one line if there is no file to read."""
    if not path.exists():
        raise VideoError(f"video {path}: no such file")
    if path.is_dir():
        raise VideoError(f"video {path}: is a folder, not a video")


def _open_input(path: Path) -> av.container.InputContainer:
    """av.open for reading, with FFmpeg's refusal turned into one line."""
    try:
        container = av.open(str(path), "r")
    except av.FFmpegError as exc:
        raise VideoError(f"video {path}: not a video PyAV can read ({exc.strerror})") from None
    # Image files open as one-frame "videos" (image2, png_pipe...); they belong elsewhere.
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        container.close()
        raise VideoError(f"video {path}: a still image, not a video")
    return container


# Streams are typed Any here: PyAV's stubs make every stream's time_base Optional, which a
# stream FFmpeg decodes always has.
def _video_stream(container: InputContainer, path: Path) -> Any:
    """The first real video stream (cover art in music files does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            if stream.codec_context is None:
                raise VideoError(f"video {path}: FFmpeg has no decoder for its video codec")
            return stream
    raise VideoError(f"video {path}: no video stream")


def _audio_stream(container: InputContainer) -> Any:
    """The first audio stream, or None."""
    return container.streams.audio[0] if container.streams.audio else None


def _frame_rate(stream: Any, path: Path) -> Fraction:
    """The stream's frame rate as an exact fraction (e.g. 30000/1001)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    raise VideoError(f"video {path}: frame rate unknown")


def _duration_seconds(container: InputContainer, stream: Any) -> float | None:
    """The video stream's duration, else the container's, else None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _first_frame(container: InputContainer, stream: Any, path: Path) -> VideoFrame:
    """The first decoded frame; a video without one is refused."""
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise VideoError(f"video {path}: cannot decode its video ({exc.strerror})") from None
    raise VideoError(f"video {path}: no frames (zero-length video)")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, frame count, duration, rotation and codecs of a video file.

    Example:

    >>> import jaxstyle.video
    >>> jaxstyle.video.write_video("clip.mp4", np.zeros((4, 32, 48, 3), np.uint8), fps=25)
    PosixPath('clip.mp4')
    >>> info = jaxstyle.video.probe_video("clip.mp4")
    >>> info.codec, info.frames, info.duration, info.rotation
    ('h264', 4, 0.16, 0)
    """
    path = Path(path)
    _check_input_file(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        fps = _frame_rate(stream, path)
        rotation = _first_frame(container, stream, path).rotation
        duration = _duration_seconds(container, stream)
        frames_exact = stream.frames > 0
        if frames_exact:
            frames = stream.frames
        else:
            frames = max(1, round(duration * fps)) if duration else 1
        if not duration:
            duration = float(frames / fps)
        audio = _audio_stream(container)
        return VideoInfo(path=path, width=stream.codec_context.width,
                         height=stream.codec_context.height, fps=fps, frames=frames,
                         frames_exact=frames_exact, duration=duration, rotation=rotation,
                         codec=stream.codec_context.name, has_audio=audio is not None,
                         audio_codec=audio.codec_context.name if audio is not None else None,
                         time_base=Fraction(stream.time_base),
                         start_seconds=(stream.start_time or 0) * Fraction(stream.time_base))


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame of a video as (H, W, 3) uint8 RGB, as stored (rotation not applied).

    Example:

    >>> import jaxstyle.video
    >>> jaxstyle.video.write_video("clip.mp4", np.zeros((4, 32, 48, 3), np.uint8), fps=25)
    PosixPath('clip.mp4')
    >>> frames = list(jaxstyle.video.read_frames("clip.mp4"))
    >>> len(frames), frames[0].shape, frames[0].dtype
    (4, (32, 48, 3), dtype('uint8'))
    """
    path = Path(path)
    _check_input_file(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")
