"""The stylise loop: decode ahead on one thread, the caller's network on the calling thread,
encode behind on another (`stylize_video`)."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Generator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from jaxstyle.flicker import as_float, temporal_smooth
from jaxstyle.interrupts import signum_of, stop_signals_raise
from jaxstyle.video.common import (
    QUEUE_BATCHES,
    Progress,
    StylizeBatch,
    VideoError,
    VideoInfo,
    VideoInterrupted,
    VideoResult,
    fit_frame,
    output_size,
    to_uint8,
)
from jaxstyle.video.read import _video_stream, probe_video
from jaxstyle.video.threads import _END, _Finish, _get, _get_from, _put, _put_to, _Worker
from jaxstyle.video.write import (
    _check_codec,
    _check_output_path,
    _container_format,
    _dry_run,
    _OutputSpec,
    _reason,
    _TempOutput,
    _Writer,
    partial_path,
)


@dataclass(frozen=True)
class _Plan:
    """The input side of a run: which frames, at which size."""

    source: Path
    width: int
    height: int
    fps: Fraction
    start: Fraction  # seconds from the video's first timestamp
    end: Fraction | None


def _frames_to_decode(plan: _Plan) -> Generator[tuple[int, np.ndarray], None, None]:
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
        batch: list[tuple[int, np.ndarray]] = []
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
    audio (copied unchanged; audio=False leaves it out). Ctrl-C or SIGTERM keeps the frames
    done so far in <stem>.partial<suffix> and raises VideoInterrupted.

    Example:

    >>> import jaxstyle.video
    >>> jaxstyle.video.write_video("clip.mp4", np.zeros((4, 32, 48, 3), np.uint8), fps=25)
    PosixPath('clip.mp4')
    >>> def negative(batch):  # (N, H, W, 3) uint8 -> the same, or floats in [0, 1]
    ...     return 1.0 - batch / 255.0
    >>> result = jaxstyle.video.stylize_video("clip.mp4", "negative.mp4", negative, batch_size=2,
    ...                                       max_dim=24, smooth=0.5)
    >>> result.path.name, result.frames, (result.width, result.height)
    ('negative.mp4', 4, (24, 16))
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
    interrupted, signum = False, None
    decoder.start()
    encoder.start()
    try:
        try:
            with stop_signals_raise():
                _stylize_loop(stylize_batch, decoder, decoded, encoder, encoded,
                              batch_size=batch_size, pad_last_batch=pad_last_batch,
                              smooth=smooth, total=total, progress=progress, counters=counters)
        except KeyboardInterrupt as stop:
            # The encoder still writes what it was given: a playable file.
            interrupted, signum = True, signum_of(stop)
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
            raise VideoInterrupted(None, 0, total, signum)
        until = "the end" if end is None else f"{float(end):g} s"
        raise VideoError(f"video {source}: no frames between {float(first):g} s and {until}")
    if interrupted:
        raise VideoInterrupted(temp.keep_as(partial_path(output)), frames, total, signum)
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
