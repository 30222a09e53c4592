"""Write frames as a video with PyAV: the codec, the audio copied unchanged, rotation kept,
timestamps carried over, into a temporary file renamed when complete."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import OutputContainer

from jaxstyle.video.common import (
    CONTAINERS,
    CRF_CODECS,
    LIMITED_RANGE,
    SMPTE170M,
    VideoError,
    fit_frame,
    output_size,
    to_uint8,
)
from jaxstyle.video.read import _audio_stream
from jaxstyle.video.threads import _chain


def _container_format(output: Path) -> str:
    """FFmpeg's muxer name for an output file name, or a one-line refusal."""
    suffix = output.suffix.lower()
    if suffix not in CONTAINERS:
        known = ", ".join(CONTAINERS)
        raise VideoError(f"output {output}: {suffix or 'no extension'} is not a video container "
                         f"(use one of {known})")
    return CONTAINERS[suffix]


def _check_codec(codec: str) -> None:
    """Refuse an encoder name FFmpeg does not know, or one that does not encode video."""
    try:
        found = av.codec.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:
        raise VideoError(f"unknown video codec {codec!r}: this FFmpeg has no such encoder") \
            from None
    if found.type != "video":
        raise VideoError(f"codec {codec!r} encodes {found.type}, not video")


def _check_output_path(output: Path, source: Path | None = None) -> None:
    """Refuse an output that is the input, a folder, or lies in something not a folder."""
    if source is not None and (output.resolve() == source.resolve() or (
            output.exists() and os.path.samefile(output, source))):
        raise VideoError(f"output {output}: is the input video; choose another name")
    if output.is_dir():
        raise VideoError(f"output {output}: is a folder")
    existing = next(parent for parent in output.parents if parent.exists())
    if not existing.is_dir():
        raise VideoError(f"output {output}: {existing} is not a folder")


def _pixel_format(codec: str) -> str:
    """yuv420p where the encoder takes it (what players expect), else its first format."""
    formats = [f.name for f in av.codec.Codec(codec, "w").video_formats or ()]
    return "yuv420p" if "yuv420p" in formats or not formats else formats[0]


@dataclass(frozen=True)
class _OutputSpec:
    """Everything needed to open an output: container, encoder, size, timing and audio."""

    format: str
    codec: str
    crf: int
    width: int
    height: int
    frame_rate: Fraction
    time_base: Fraction
    rotation: int = 0
    audio_source: Path | None = None  # the file whose first audio stream is copied
    audio_first: Fraction | None = None  # source seconds: audio before/after is left out
    audio_last: Fraction | None = None


class _AudioCopy:
    """Copies one audio stream's packets into the output, shifted onto the video's timeline."""

    def __init__(self, output: OutputContainer, spec: _OutputSpec) -> None:
        self.input = av.open(str(spec.audio_source), "r")
        self.source = _audio_stream(self.input)
        self.first, self.last = spec.audio_first, spec.audio_last
        try:
            self.stream = output.add_stream_from_template(self.source)
        except BaseException:
            self.input.close()
            raise
        self.packets: Iterator | None = None
        self.waiting = None  # the next packet, read but not yet due
        self.shift = 0

    def start(self, origin_seconds: Fraction) -> None:
        """Begin copying; source time origin_seconds becomes output time 0."""
        time_base = self.source.time_base
        self.shift = round(origin_seconds / time_base)
        if self.first is not None and self.first > 0:
            self.input.seek(int(Fraction(self.first) / time_base), stream=self.source)
        self.packets = self._packets_in_window()

    def _packets_in_window(self) -> Iterator:
        """Source packets inside [first, last) seconds; the flush packets demux adds are skipped."""
        time_base = self.source.time_base
        for packet in self.input.demux(self.source):
            if packet.size == 0:
                continue
            if packet.pts is not None:
                seconds = packet.pts * time_base
                if self.first is not None and seconds < self.first:
                    continue  # a cut loses at most one packet (~20 ms), as ffmpeg -c copy does
                if self.last is not None and seconds >= self.last:
                    return
            yield packet

    def mux_until(self, output: OutputContainer, seconds: Fraction | None) -> None:
        """Write the packets that start before output time `seconds` (None: all that are left)."""
        if self.packets is None:
            return
        while True:
            packet = self.waiting if self.waiting is not None else next(self.packets, None)
            self.waiting = None
            if packet is None:
                return
            start = packet.pts if packet.pts is not None else packet.dts
            if seconds is not None and start is not None and \
                    (start - self.shift) * self.source.time_base >= seconds:
                self.waiting = packet
                return
            for field in ("pts", "dts"):
                value = getattr(packet, field)
                if value is not None:
                    setattr(packet, field, value - self.shift)
            packet.stream = self.stream
            output.mux(packet)

    def close(self) -> None:
        """Close the second reader of the input."""
        self.input.close()


class _Writer:
    """Encodes RGB frames into an output (file name or file object) and copies the audio."""

    def __init__(self, target: str | io.IOBase, spec: _OutputSpec) -> None:
        self.spec = spec
        self.container = av.open(target, "w", format=spec.format)
        self.audio = None
        try:
            self.video = self._add_video_stream()
            if spec.audio_source is not None:
                self.audio = _AudioCopy(self.container, spec)
        except BaseException:
            self.container.close()
            raise
        self.origin: int | None = None  # source pts that becomes output time 0
        self.last_pts: int | None = None
        self.frames = 0
        self.closed = False

    def _add_video_stream(self):
        """The video stream: encoder, size, exact rate and time base, quality, rotation."""
        spec = self.spec
        options = {"crf": str(spec.crf)} if spec.codec in CRF_CODECS else {}
        stream = self.container.add_stream(spec.codec, rate=spec.frame_rate, options=options,
                                           time_base=spec.time_base)
        assert isinstance(stream, av.VideoStream)  # the codec was checked to encode video
        stream.width, stream.height = spec.width, spec.height
        stream.pix_fmt = _pixel_format(spec.codec)
        # Say which matrix the RGB->YUV conversion used, so players do not guess BT.709 for HD.
        stream.colorspace, stream.color_range = SMPTE170M, LIMITED_RANGE
        if spec.rotation:
            stream.set_display_rotation(spec.rotation)
        return stream

    def write(self, source_pts: int, rgb: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 frame shown at source_pts (input time base)."""
        if self.origin is None:
            self.origin = source_pts
            if self.audio is not None:
                self.audio.start(source_pts * self.spec.time_base)
        pts = source_pts - self.origin
        if self.audio is not None:
            self.audio.mux_until(self.container, pts * self.spec.time_base)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        self.container.mux(self.video.encode(frame))
        self.last_pts = pts
        self.frames += 1

    def end_seconds(self) -> Fraction:
        """Output time at which the last written frame stops being shown."""
        if self.last_pts is None:
            return Fraction(0)
        return self.last_pts * self.spec.time_base + 1 / self.spec.frame_rate

    def finish(self, audio_to_video_end: bool = False) -> None:
        """Flush the encoder, copy the remaining audio (to the video's end, if asked), close."""
        self.container.mux(self.video.encode())
        if self.audio is not None:
            self.audio.mux_until(self.container, self.end_seconds() if audio_to_video_end else None)
        self.close()

    def close(self) -> None:
        """Close the output (writing the trailer if the header was written) and the audio input."""
        if self.closed:
            return
        self.closed = True
        try:
            self.container.close()
        finally:
            if self.audio is not None:
                self.audio.close()


def _dry_run(spec: _OutputSpec, audio_codec: str | None = None) -> None:
    """Write a frame (and the first audio packets) into memory: refusals come before any file.

    Some muxer refusals only show with data (mp4 wants a known channel layout for PCM, written
    in the trailer), hence a frame and not just the header. Video first, so the message can say
    which of the two the container refused.
    """
    try:
        _write_one_frame(replace(spec, audio_source=None))
    except (av.FFmpegError, ValueError) as exc:
        raise VideoError(f"cannot write {spec.codec} video into a {spec.format} file "
                         f"({_reason(exc)})") from None
    if spec.audio_source is None:
        return
    try:
        _write_one_frame(spec)
    except (av.FFmpegError, ValueError) as exc:
        raise VideoError(f"a {spec.format} file cannot take the input's {audio_codec} audio "
                         f"unchanged ({_reason(exc)}); write .mkv, or leave the audio out") \
            from None


def _write_one_frame(spec: _OutputSpec) -> None:
    """A black frame and the audio that goes with it, into an in-memory file."""
    writer = _Writer(io.BytesIO(), spec)
    origin = round((spec.audio_first or 0) / spec.time_base)  # where the audio copy begins
    try:
        writer.write(origin, np.zeros((spec.height, spec.width, 3), np.uint8))
        writer.finish(audio_to_video_end=True)
    finally:
        writer.close()


def _reason(exc: Exception) -> str:
    """FFmpeg's own words for an error, else the exception's message."""
    return getattr(exc, "strerror", None) or str(exc)


class _TempOutput:
    """A temp file beside the target, renamed onto it at the end: the target is never broken."""

    def __init__(self, target: Path):
        self.target = target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}",
                                        dir=target.parent)
        except OSError as exc:
            raise VideoError(f"output {target}: cannot write in {target.parent} "
                             f"({exc.strerror})") from None
        os.close(fd)
        self.path = Path(name)

    def keep_as(self, final: Path) -> Path:
        """Rename into place with the mode a plain open() would give (mkstemp makes 0600)."""
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.path, 0o666 & ~umask)
        os.replace(self.path, final)
        return final

    def remove(self) -> None:
        """Delete the temp file if it is still there."""
        self.path.unlink(missing_ok=True)


def partial_path(output: Path) -> Path:
    """Where an interrupted run leaves its frames: <stem>.partial<suffix> next to the target.

    Example:

    >>> import jaxstyle.video
    >>> from pathlib import Path
    >>> jaxstyle.video.partial_path(Path("out/clip.mp4"))
    PosixPath('out/clip.partial.mp4')
    """
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction | float,
                *, codec: str = "libx264", crf: int = 18, rotation: int = 0) -> Path:
    """Encode (H, W, 3) uint8 (or float [0, 1]) frames at a constant frame rate; no audio.

    Odd sizes lose their last row/column (yuv420p needs even sizes). Written atomically.

    Example:

    >>> import jaxstyle.video
    >>> frames = np.zeros((3, 33, 33, 3), np.uint8)  # uint8, or floats in [0, 1]
    >>> path = jaxstyle.video.write_video("clip.mp4", frames, fps=24)
    >>> info = jaxstyle.video.probe_video(path)
    >>> info.width, info.height, info.frames  # the odd row and column left out
    (32, 32, 3)
    """
    path = Path(path)
    container_format = _container_format(path)
    _check_codec(codec)
    _check_output_path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VideoError(f"output {path}: no frames to write")
    first = to_uint8(first)
    width, height = output_size(first.shape[1], first.shape[0])
    rate = Fraction(fps).limit_denominator(100_000)
    spec = _OutputSpec(format=container_format, codec=codec, crf=crf, width=width,
                       height=height, frame_rate=rate, time_base=1 / rate, rotation=rotation)
    _dry_run(spec)
    temp = _TempOutput(path)
    try:
        writer = _Writer(str(temp.path), spec)
        try:
            for index, frame in enumerate(_chain(first, frames)):
                writer.write(index, fit_frame(to_uint8(frame), width, height))
            writer.finish()
        finally:
            writer.close()
        return temp.keep_as(path)
    except BaseException:
        temp.remove()
        raise
