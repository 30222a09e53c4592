"""Stylize a video frame by frame with PyAV, decoding, stylizing and encoding at the same time.

The caller's network (`stylize_batch`) runs on the calling thread. One background thread
decodes and resizes frames into a bounded queue, another encodes the stylized frames from a
bounded queue, so FFmpeg's work overlaps the network's and memory stays flat for any length.
This module never imports jax: the network comes in as a plain function of numpy batches.

Decisions:
- Sizes are the stored frame size. Rotation metadata (phone videos) is copied onto the output
  stream, so players turn the stylized video exactly as they turned the input; frames are
  stylized as stored (sideways, if so), which a convolutional network does not mind, and no
  pixels are resampled for it.
- yuv420p, the pixel format players expect, stores colour at half resolution and so needs
  even sizes. The output size is made even by rounding down; where that is the only change
  (at most one row/column) the frame is cropped rather than resampled, which keeps it sharp.
- Audio packets are copied unchanged (no re-encoding, no quality loss). Where the output
  container cannot hold that codec, the call fails before writing anything and says so.
- The last batch holds the frames left over (fewer than batch_size) unless pad_last_batch,
  which repeats its last frame up to batch_size (one shape for a jitted network).
- Output timestamps are the input's (shifted to start at 0), in the input's time base: frame
  rate, frame count and duration carry over exactly, variable frame rates included.
"""

from __future__ import annotations

import io
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from jaxstyle.errors import JaxstyleError
from jaxstyle.flicker import as_float, temporal_smooth

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
CRF_CODECS = ("libx264", "libx265")  # encoders with a constant-quality `crf` option
QUEUE_BATCHES = 2  # each queue holds this many batches: hides jitter, memory stays flat
POLL_SECONDS = 0.05  # how often a blocked thread looks whether it should give up
SMPTE170M, LIMITED_RANGE = 6, 1  # FFmpeg's enums for the BT.601 matrix swscale converts with

StylizeBatch = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


class VideoError(JaxstyleError):
    """A video is missing, unreadable or cannot be written as asked."""


class VideoInterrupted(JaxstyleError):
    """Ctrl-C during stylize_video; the frames done so far are in `partial_path` (or nowhere)."""

    def __init__(self, partial_path: Path | None, frames_done: int, total_frames: int):
        self.partial_path = partial_path
        self.frames_done = frames_done
        self.total_frames = total_frames
        where = (f"the frames done are in {partial_path}" if partial_path is not None
                 else "nothing was written")
        super().__init__(f"interrupted after {frames_done} of {total_frames} frames; {where}")


@dataclass(frozen=True)
class VideoInfo:
    """What probe_video learns about a file; width and height are as stored, before rotation."""

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
    """What stylize_video wrote, and where the time went (the three stages overlap)."""

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
    """(width, height) with the longer side at most max_dim (never enlarged), both even."""
    if max_dim is not None and max(width, height) > max_dim:
        scale = max_dim / max(width, height)
        width, height = round(width * scale), round(height * scale)
    # yuv420p stores one colour sample per 2x2 block, so encoders refuse odd sizes.
    return max(2, width - width % 2), max(2, height - height % 2)


def fit_frame(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize (antialiased) an (H, W, 3) uint8 frame to (height, width); crop a lone odd pixel."""
    rows, cols = rgb.shape[:2]
    if (cols, rows) == (width, height):
        return rgb
    if cols - width in (0, 1) and rows - height in (0, 1):
        return rgb[:height, :width]  # only evenness changed: cropping keeps every pixel sharp
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.LANCZOS))


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """uint8 frames as they are; float frames in [0, 1] clipped and rounded to uint8."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return np.rint(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------- reading

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


def _video_stream(container, path: Path):
    """The first real video stream (cover art in music files does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            if stream.codec_context is None:
                raise VideoError(f"video {path}: FFmpeg has no decoder for its video codec")
            return stream
    raise VideoError(f"video {path}: no video stream")


def _audio_stream(container):
    """The first audio stream, or None."""
    return container.streams.audio[0] if container.streams.audio else None


def _frame_rate(stream, path: Path) -> Fraction:
    """The stream's frame rate as an exact fraction (e.g. 30000/1001)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    raise VideoError(f"video {path}: frame rate unknown")


def _duration_seconds(container, stream) -> float | None:
    """The video stream's duration, else the container's, else None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _first_frame(container, stream, path: Path):
    """The first decoded frame; a video without one is refused."""
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise VideoError(f"video {path}: cannot decode its video ({exc.strerror})") from None
    raise VideoError(f"video {path}: no frames (zero-length video)")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, frame count, duration, rotation and codecs of a video file."""
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
    """Every frame of a video as (H, W, 3) uint8 RGB, as stored (rotation not applied)."""
    path = Path(path)
    _check_input_file(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


# ----------------------------------------------------------------------------- writing

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

    def __init__(self, output, spec: _OutputSpec):
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

    def mux_until(self, output, seconds: Fraction | None) -> None:
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

    def __init__(self, target, spec: _OutputSpec):
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
    """Where an interrupted run leaves its frames: <stem>.partial<suffix> next to the target."""
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: Fraction | float,
                *, codec: str = "libx264", crf: int = 18, rotation: int = 0) -> Path:
    """Encode (H, W, 3) uint8 (or float [0, 1]) frames at a constant frame rate; no audio.

    Odd sizes lose their last row/column (yuv420p needs even sizes). Written atomically.
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


def _chain(first, rest: Iterator) -> Iterator:
    """first, then everything in rest."""
    yield first
    yield from rest


# ----------------------------------------------------------------------------- threads

_END = object()  # the decode thread's last item


@dataclass(frozen=True)
class _Finish:
    """Tells the encode thread to flush and close; partial runs end the audio with the video."""

    audio_to_video_end: bool = False


class _Worker(threading.Thread):
    """A daemon thread that keeps its exception and the seconds it spent working."""

    def __init__(self, name: str, target: Callable, *args):
        super().__init__(name=name, daemon=True)
        self.work, self.args = target, args
        self.error: BaseException | None = None
        self.busy_seconds = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self.work(self, *self.args)
        except BaseException as exc:  # handed to the calling thread, which raises it
            self.error = exc

    def raise_error(self) -> None:
        """Raise what killed the thread (or say it vanished)."""
        if self.error is not None:
            raise self.error
        raise RuntimeError(f"thread {self.name} ended unexpectedly")


def _put(items: queue.Queue, item, stop: threading.Event) -> bool:
    """Put, waiting while the queue is full; False if asked to stop meanwhile."""
    while not stop.is_set():
        try:
            items.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            pass
    return False


def _get(items: queue.Queue, stop: threading.Event):
    """Get, waiting while the queue is empty; None if asked to stop meanwhile."""
    while not stop.is_set():
        try:
            return items.get(timeout=POLL_SECONDS)
        except queue.Empty:
            pass
    return None


def _get_from(items: queue.Queue, worker: _Worker):
    """Get an item the worker produces; raise the worker's error if it died."""
    while True:
        try:
            return items.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if not worker.is_alive() and items.empty():
                worker.raise_error()


def _put_to(items: queue.Queue, item, worker: _Worker) -> None:
    """Put an item the worker consumes; raise the worker's error if it died."""
    while True:
        try:
            items.put(item, timeout=POLL_SECONDS)
            return
        except queue.Full:
            if not worker.is_alive():
                worker.raise_error()


@dataclass(frozen=True)
class _Plan:
    """The input side of a run: which frames, at which size."""

    source: Path
    width: int
    height: int
    fps: Fraction
    start: Fraction  # seconds from the video's first timestamp
    end: Fraction | None


def _frames_to_decode(plan: _Plan) -> Iterator[tuple[int, np.ndarray]]:
    """(source pts, RGB frame at the output size) for the frames inside [start, end)."""
    with av.open(str(plan.source), "r") as container:
        stream = _video_stream(container, plan.source)
        stream.thread_type = "AUTO"  # frame threads: decoding keeps up with bigger videos
        time_base = stream.time_base
        origin = stream.start_time or 0
        # Keep frames whose timestamp lies within half a frame of the window: robust to rounding.
        half_frame = 1 / (2 * plan.fps * time_base)
        first = origin + plan.start / time_base
        last = None if plan.end is None else origin + plan.end / time_base
        if plan.start > 0:
            container.seek(int(first), stream=stream)  # lands on the keyframe before start
        step = max(1, round(1 / (plan.fps * time_base)))
        previous = None
        for frame in container.decode(stream):
            pts = _next_pts(frame.pts, previous, step)
            previous = pts
            if pts < first - half_frame:
                continue
            if last is not None and pts >= last - half_frame:
                return
            yield pts, fit_frame(frame.to_ndarray(format="rgb24"), plan.width, plan.height)


def _next_pts(pts: int | None, previous: int | None, step: int) -> int:
    """A usable, strictly increasing timestamp: made up from the rate where the file has none."""
    if previous is None:
        return 0 if pts is None else pts
    return previous + step if pts is None else max(pts, previous + 1)


def _decode_loop(worker: _Worker, plan: _Plan, frames: queue.Queue) -> None:
    """Decode thread: fill the queue with frames, then _END."""
    decoded = _frames_to_decode(plan)
    try:
        while True:
            began = time.perf_counter()
            try:
                item = next(decoded, _END)
            except av.FFmpegError as exc:
                raise VideoError(f"video {plan.source}: decoding failed ({_reason(exc)})") \
                    from None
            worker.busy_seconds += time.perf_counter() - began
            if not _put(frames, item, worker.stop) or item is _END:
                return
    finally:
        decoded.close()


def _encode_loop(worker: _Worker, writer: _Writer, frames: queue.Queue, output: Path) -> None:
    """Encode thread: write queued frames until _Finish (or until told to stop)."""
    try:
        while True:
            item = _get(frames, worker.stop)
            if item is None:
                return  # abandoned: the calling thread removes the file
            began = time.perf_counter()
            try:
                if isinstance(item, _Finish):
                    writer.finish(item.audio_to_video_end)
                else:
                    writer.write(*item)
            except av.FFmpegError as exc:
                raise VideoError(f"output {output}: encoding failed ({_reason(exc)})") from None
            worker.busy_seconds += time.perf_counter() - began
            if isinstance(item, _Finish):
                return
    finally:
        writer.close()


# ----------------------------------------------------------------------------- stylize_video

def _check_settings(batch_size: int, max_dim: int | None, crf: int, start: float | None,
                    duration: float | None, smooth: float) -> None:
    """Refuse settings out of range, in one line each."""
    if batch_size < 1:
        raise VideoError(f"batch_size must be at least 1, not {batch_size}")
    if max_dim is not None and max_dim < 2:
        raise VideoError(f"max_dim must be at least 2, not {max_dim}")
    if not 0 <= crf <= 51:
        raise VideoError(f"crf must be in 0..51 (0 lossless, 18 visually lossless), not {crf}")
    if start is not None and start < 0:
        raise VideoError(f"start must be 0 or more seconds, not {start}")
    if duration is not None and duration <= 0:
        raise VideoError(f"duration must be more than 0 seconds, not {duration}")
    if not 0.0 <= smooth < 1.0:
        raise VideoError(f"smooth must be in [0, 1), not {smooth}")


def _trim_window(info: VideoInfo, start: float | None,
                 duration: float | None) -> tuple[Fraction, Fraction | None, int]:
    """(start, end or None, expected frame count) of the part to stylize."""
    first = Fraction(start or 0)
    if first >= Fraction(info.duration):
        raise VideoError(f"video {info.path}: start {float(first):g} s is past its end "
                         f"({info.duration:g} s)")
    end = None if duration is None else first + Fraction(duration)
    if start is None and duration is None:
        return first, None, info.frames
    length = Fraction(info.duration) - first if end is None else \
        min(end, Fraction(info.duration)) - first
    return first, end, max(1, round(length * info.fps))


def _stylized(stylize_batch: StylizeBatch, frames: np.ndarray, pad_to: int | None) -> np.ndarray:
    """Run the caller's network on a batch, padded by repeating the last frame if asked."""
    count = len(frames)
    if pad_to is not None and count < pad_to:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad_to - count, axis=0)])
    result = np.asarray(stylize_batch(frames))
    if result.shape != frames.shape:
        raise VideoError(f"stylize_batch returned shape {result.shape} for a batch of shape "
                         f"{frames.shape}; it must keep the shape")
    if result.dtype != np.uint8 and not np.issubdtype(result.dtype, np.floating):
        raise VideoError(f"stylize_batch returned {result.dtype}; use uint8 or float in [0, 1]")
    return result[:count]


@dataclass
class _Counters:
    """What the calling thread measures while it runs the network."""

    frames: int = 0
    stylize_seconds: float = 0.0
    wait_seconds: float = 0.0


def _stylize_loop(stylize_batch: StylizeBatch, decoder: _Worker, decoded: queue.Queue,
                  encoder: _Worker, encoded: queue.Queue, *, batch_size: int,
                  pad_last_batch: bool, smooth: float, total: int,
                  progress: Progress | None, counters: _Counters) -> None:
    """Calling thread: batches from the decoder, through the network, to the encoder."""
    previous = None  # last smoothed output, carried across batches
    finished = False
    while not finished:
        batch = []
        began = time.perf_counter()
        while len(batch) < batch_size:
            item = _get_from(decoded, decoder)
            if item is _END:
                finished = True
                break
            batch.append(item)
        counters.wait_seconds += time.perf_counter() - began
        if not batch:
            return
        began = time.perf_counter()
        frames = np.stack([rgb for _, rgb in batch])
        styled = _stylized(stylize_batch, frames, batch_size if pad_last_batch else None)
        counters.stylize_seconds += time.perf_counter() - began
        if smooth > 0:
            smoothed, previous = temporal_smooth(as_float(styled), smooth, previous)
            styled = to_uint8(smoothed)
        else:
            styled = to_uint8(styled)
        began = time.perf_counter()
        for (pts, _), rgb in zip(batch, styled):
            _put_to(encoded, (pts, rgb), encoder)
        counters.wait_seconds += time.perf_counter() - began
        counters.frames += len(batch)
        if progress is not None:
            progress(counters.frames, total)


def stylize_video(input_path: str | os.PathLike, output_path: str | os.PathLike,
                  stylize_batch: StylizeBatch, *, batch_size: int = 8,
                  max_dim: int | None = None, crf: int = 18, codec: str = "libx264",
                  start: float | None = None, duration: float | None = None,
                  smooth: float = 0.0, pad_last_batch: bool = False, audio: bool = True,
                  progress: Progress | None = None) -> VideoResult:
    """Stylize every frame of a video with stylize_batch((N, H, W, 3) uint8) and write it.

    stylize_batch returns (N, H, W, 3) uint8 or float in [0, 1]; it runs on this thread while
    other threads decode and encode. The output keeps frame rate, timestamps, rotation and the
    audio (copied unchanged; audio=False leaves it out). Ctrl-C keeps the frames done so far
    in <stem>.partial<suffix> and raises VideoInterrupted.
    """
    wall_began = time.perf_counter()
    source, output = Path(input_path), Path(output_path)
    _check_settings(batch_size, max_dim, crf, start, duration, smooth)
    container_format = _container_format(output)
    _check_codec(codec)
    info = probe_video(source)
    _check_output_path(output, source)
    first, end, total = _trim_window(info, start, duration)
    width, height = output_size(info.width, info.height, max_dim)
    spec = _OutputSpec(
        format=container_format, codec=codec, crf=crf, width=width, height=height,
        frame_rate=info.fps, time_base=info.time_base, rotation=info.rotation,
        audio_source=source if (audio and info.has_audio) else None,
        audio_first=None if start is None else info.start_seconds + first,
        audio_last=None if end is None else info.start_seconds + end)
    _dry_run(spec, info.audio_codec)

    temp = _TempOutput(output)
    try:
        writer = _Writer(str(temp.path), spec)
    except BaseException:
        temp.remove()
        raise
    decoded: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES * batch_size)
    encoded: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES * batch_size)
    plan = _Plan(source=source, width=width, height=height, fps=info.fps, start=first, end=end)
    decoder = _Worker("jaxstyle-video-decode", _decode_loop, plan, decoded)
    encoder = _Worker("jaxstyle-video-encode", _encode_loop, writer, encoded, output)
    counters = _Counters()
    interrupted = False
    decoder.start()
    encoder.start()
    try:
        try:
            _stylize_loop(stylize_batch, decoder, decoded, encoder, encoded,
                          batch_size=batch_size, pad_last_batch=pad_last_batch, smooth=smooth,
                          total=total, progress=progress, counters=counters)
        except KeyboardInterrupt:
            interrupted = True  # the encoder still writes what it was given: a playable file
            decoder.stop.set()
        frames = _finish(encoder, encoded, writer, partial=interrupted)
    except BaseException:
        encoder.stop.set()
        encoder.join()  # it closes the writer; only then may the file go
        temp.remove()
        raise
    finally:
        decoder.stop.set()
        decoder.join()

    if frames == 0:
        temp.remove()
        if interrupted:
            raise VideoInterrupted(None, 0, total)
        until = "the end" if end is None else f"{float(end):g} s"
        raise VideoError(f"video {source}: no frames between {float(first):g} s and {until}")
    if interrupted:
        raise VideoInterrupted(temp.keep_as(partial_path(output)), frames, total)
    temp.keep_as(output)
    return VideoResult(
        path=output, frames=frames, width=width, height=height, frame_rate=info.fps,
        duration=float(writer.end_seconds()), has_audio=spec.audio_source is not None,
        decode_seconds=decoder.busy_seconds, stylize_seconds=counters.stylize_seconds,
        encode_seconds=encoder.busy_seconds, wait_seconds=counters.wait_seconds,
        wall_seconds=time.perf_counter() - wall_began)


def _finish(encoder: _Worker, encoded: queue.Queue, writer: _Writer, partial: bool) -> int:
    """Let the encoder write what is queued, flush and close; the number of frames written."""
    _put_to(encoded, _Finish(audio_to_video_end=partial), encoder)
    encoder.join()
    if encoder.error is not None:
        raise encoder.error
    return writer.frames
