"""Video I/O: tiny clips (16 frames, 64x48) made here with PyAV, stylized by numpy functions."""

from __future__ import annotations

import os
import signal
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from jaxstyle.errors import JaxstyleError
from jaxstyle.video import (
    VideoError,
    VideoInterrupted,
    fit_frame,
    output_size,
    probe_video,
    read_frames,
    stylize_video,
    temporal_smooth,
    write_video,
)
from jaxstyle.video import stylize as V  # where the loop looks its helpers up

FRAMES, WIDTH, HEIGHT, FPS = 16, 64, 48, Fraction(24)


def clip_frames(count: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frames that tell each other apart: a brightness ramp over time and a moving bar."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    for index in range(count):
        frames[index, ..., 0] = 40 + 10 * index
        frames[index, :, 4 * index % width:4 * index % width + 6, 1] = 220
        frames[index, height // 2:, :, 2] = 120
    return frames


def _audio_frame(samples: np.ndarray, stream) -> av.AudioFrame:
    """(channels, n) float samples in [-1, 1] as a frame in the encoder's sample format."""
    fmt = stream.codec_context.format
    dtype = {"flt": np.float32, "dbl": np.float64, "s16": np.int16, "s32": np.int32}[
        fmt.name.rstrip("p")]
    scale = 1.0 if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).max
    data = (samples * scale).astype(dtype)
    if not fmt.is_planar:
        data = data.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt.name,
                                       layout=stream.codec_context.layout.name)
    frame.sample_rate = stream.codec_context.sample_rate
    return frame


def make_clip(path: Path, frames: np.ndarray | None = None, fps: Fraction = FPS,
              audio_codec: str | None = None, sample_rate: int = 48000,
              rotation: int = 0) -> Path:
    """Write a test clip with PyAV directly (independent of the code under test)."""
    frames = clip_frames() if frames is None else frames
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        audio = container.add_stream(audio_codec, rate=sample_rate) if audio_codec else None
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None:
            total = int(sample_rate * len(frames) / fps)
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / sample_rate)
            channels = audio.codec_context.layout.nb_channels
            chunk = audio.codec_context.frame_size or 1024
            for begin in range(0, total, chunk):
                piece = np.repeat(tone[None, begin:begin + chunk], channels, axis=0)
                frame = _audio_frame(piece, audio)
                frame.pts = begin
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


def audio_seconds(path: Path) -> float:
    """Total duration of the audio packets in a file (0 if it has no audio)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        stream = container.streams.audio[0]
        return float(sum(packet.duration * stream.time_base
                         for packet in container.demux(stream) if packet.size))


def video_threads() -> list[str]:
    """Names of this module's threads still alive."""
    return [t.name for t in threading.enumerate() if t.name.startswith("jaxstyle-video")]


def identity(frames: np.ndarray) -> np.ndarray:
    return frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """The input clips, made once: plain, with aac (mp4), with pcm (mkv), rotated."""
    folder = tmp_path_factory.mktemp("clips")
    return {
        "plain": make_clip(folder / "plain.mp4"),
        "aac": make_clip(folder / "aac.mp4", audio_codec="aac"),
        "pcm": make_clip(folder / "pcm.mkv", audio_codec="pcm_s16le"),
        "rotated": make_clip(folder / "rotated.mp4", rotation=90),
    }


@pytest.fixture
def out_dir(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# ----------------------------------------------------------------------------- pure helpers

@pytest.mark.parametrize("size, max_dim, expected", [
    ((64, 48), None, (64, 48)),
    ((64, 48), 1000, (64, 48)),  # never enlarged
    ((65, 49), None, (64, 48)),  # odd sizes lose a pixel
    ((64, 48), 37, (36, 28)),  # 37 x 27.75 -> 37 x 28 -> even
    ((1920, 1080), 513, (512, 288)),
    ((1080, 1920), 512, (288, 512)),
])
def test_output_size_fits_and_is_even(size, max_dim, expected):
    width, height = output_size(*size, max_dim)
    assert (width, height) == expected
    assert width % 2 == 0 and height % 2 == 0


def test_fit_frame_crops_a_lone_odd_pixel_and_resizes_otherwise():
    rgb = np.random.default_rng(0).integers(0, 256, (49, 65, 3), dtype=np.uint8)
    np.testing.assert_array_equal(fit_frame(rgb, 64, 48), rgb[:48, :64])
    assert fit_frame(rgb, 32, 24).shape == (24, 32, 3)
    smooth = np.full((48, 64, 3), 77, np.uint8)
    assert np.abs(fit_frame(smooth, 32, 24).astype(int) - 77).max() <= 1  # antialiased, no ringing


def test_temporal_smooth_is_an_exponential_blend_carried_across_batches():
    frames = np.array([[0.0], [1.0], [1.0], [0.0]], np.float32)
    out, last = temporal_smooth(frames[:2], 0.5)
    out2, last2 = temporal_smooth(frames[2:], 0.5, last)
    np.testing.assert_allclose(np.concatenate([out, out2])[:, 0], [0.0, 0.5, 0.75, 0.375])
    assert last2[0] == pytest.approx(0.375)


# ----------------------------------------------------------------------------- probe

def test_probe_reports_the_clip(clips):
    info = probe_video(clips["aac"])
    assert (info.width, info.height, info.frames, info.fps) == (WIDTH, HEIGHT, FRAMES, FPS)
    assert info.duration == pytest.approx(FRAMES / 24, abs=1 / 24)
    assert info.codec == "h264" and info.rotation == 0
    assert info.has_audio and info.audio_codec == "aac"
    assert not probe_video(clips["plain"]).has_audio


def test_probe_reads_rotation_and_display_size(clips):
    info = probe_video(clips["rotated"])
    assert info.rotation == 90
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.display_size == (HEIGHT, WIDTH)


def test_probe_estimates_frames_where_the_container_does_not_count(clips):
    info = probe_video(clips["pcm"])  # Matroska stores no frame count
    assert not info.frames_exact
    assert info.frames == FRAMES


# ----------------------------------------------------------------------------- stylize_video

@pytest.mark.parametrize("clip, suffix", [("plain", ".mp4"), ("aac", ".mp4"), ("aac", ".mkv"),
                                          ("pcm", ".mkv"), ("aac", ".mov")])
def test_identity_keeps_frames_rate_duration_audio_and_content(clips, out_dir, clip, suffix):
    source = clips[clip]
    result = stylize_video(source, out_dir / f"out{suffix}", identity, batch_size=5)
    before, after = probe_video(source), probe_video(result.path)
    frames_in = np.stack(list(read_frames(source)))
    frames_out = np.stack(list(read_frames(result.path)))
    assert len(frames_out) == len(frames_in) == FRAMES == result.frames
    assert after.fps == before.fps == result.frame_rate
    assert after.duration == pytest.approx(before.duration, abs=1 / 24)
    assert result.duration == pytest.approx(FRAMES / 24)
    assert after.has_audio == before.has_audio == result.has_audio
    if before.has_audio:
        assert after.audio_codec == before.audio_codec  # copied, not re-encoded
        assert audio_seconds(result.path) == pytest.approx(audio_seconds(source), abs=0.03)
    diff = np.abs(frames_out.astype(float) - frames_in.astype(float)).mean() / 255
    assert diff < 0.02
    assert os.listdir(out_dir) == [f"out{suffix}"]  # no temp file left behind


def test_float_output_and_max_dim_with_odd_result_give_even_frames(clips, out_dir):
    result = stylize_video(clips["plain"], out_dir / "small.mp4",
                           lambda f: f.astype(np.float32) / 255.0, max_dim=37)
    assert (result.width, result.height) == (36, 28)
    info = probe_video(result.path)
    assert (info.width, info.height) == (36, 28)
    frames = np.stack(list(read_frames(result.path)))
    assert frames.shape == (FRAMES, 28, 36, 3)
    red = frames[..., 0].mean(axis=(1, 2))
    assert np.all(np.diff(red) > 5)  # the brightness ramp survived the float round trip


def test_stylize_batch_sees_resized_uint8_batches_and_a_smaller_last_batch(clips, out_dir):
    shapes = []

    def record(frames):
        shapes.append((frames.shape, frames.dtype))
        return frames

    stylize_video(clips["plain"], out_dir / "out.mp4", record, batch_size=5, max_dim=32)
    assert [shape[0] for shape, _ in shapes] == [5, 5, 5, 1]
    assert all(shape[1:] == (24, 32, 3) and dtype == np.uint8 for shape, dtype in shapes)


def test_pad_last_batch_gives_one_shape_and_drops_the_padding(clips, out_dir):
    sizes = []
    result = stylize_video(clips["plain"], out_dir / "out.mp4",
                           lambda f: sizes.append(len(f)) or f, batch_size=5,
                           pad_last_batch=True)
    assert sizes == [5, 5, 5, 5]
    assert result.frames == FRAMES == len(list(read_frames(result.path)))


def test_rotation_metadata_is_copied(clips, out_dir):
    result = stylize_video(clips["rotated"], out_dir / "out.mp4", identity)
    info = probe_video(result.path)
    assert info.rotation == 90
    assert (info.width, info.height) == (WIDTH, HEIGHT)  # frames are stored as they came


def _flicker(frames: np.ndarray) -> float:
    """Mean absolute change between consecutive frames, 0..1."""
    return float(np.abs(np.diff(frames.astype(float), axis=0)).mean() / 255)


def test_smooth_reduces_flicker_of_a_random_stylizer(clips, out_dir):
    def noisy(seed):
        rng = np.random.default_rng(seed)
        return lambda f: rng.integers(0, 256, f.shape, dtype=np.uint8)

    raw = stylize_video(clips["plain"], out_dir / "raw.mkv", noisy(0), crf=0)
    calm = stylize_video(clips["plain"], out_dir / "calm.mkv", noisy(0), crf=0, smooth=0.7)
    raw_flicker = _flicker(np.stack(list(read_frames(raw.path))))
    calm_flicker = _flicker(np.stack(list(read_frames(calm.path))))
    assert raw_flicker > 0.2
    assert calm_flicker < 0.6 * raw_flicker  # an EMA of noise: sqrt(0.3/1.7) = 0.42 of it


def test_trim_keeps_the_chosen_frames_and_audio(clips, out_dir):
    result = stylize_video(clips["aac"], out_dir / "cut.mp4", identity, start=0.25,
                           duration=0.25)
    frames = np.stack(list(read_frames(result.path)))
    assert len(frames) == result.frames == 6  # 0.25 s at 24 fps
    source = np.stack(list(read_frames(clips["aac"])))
    # Frame i has red level 40 + 10 i: the cut starts at frame 6.
    np.testing.assert_allclose(frames[..., 0].mean(axis=(1, 2)),
                               source[6:12, ..., 0].mean(axis=(1, 2)), atol=3)
    assert probe_video(result.path).duration == pytest.approx(0.25, abs=1 / 24)
    assert audio_seconds(result.path) == pytest.approx(0.25, abs=0.05)


def test_progress_and_timings_are_reported(clips, out_dir):
    calls = []

    def slow(frames):
        time.sleep(0.02)
        return frames

    result = stylize_video(clips["plain"], out_dir / "out.mp4", slow, batch_size=4,
                           progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 16), (8, 16), (12, 16), (16, 16)]
    assert result.stylize_seconds >= 4 * 0.02
    assert result.decode_seconds > 0 and result.encode_seconds > 0
    assert result.wall_seconds >= result.stylize_seconds
    assert result.throughput_fps == pytest.approx(16 / result.wall_seconds)
    assert "frames/s" in result.timing_summary()


def test_decoding_and_encoding_run_while_the_network_runs(clips, out_dir, monkeypatch):
    """While stylize_batch blocks the calling thread, other threads decode ahead and encode."""
    decoded, encoded, encode_thread = [], [], "jaxstyle-video-encode"
    real_fit, real_write = V.fit_frame, V._Writer.write

    def counting_fit(*args):
        decoded.append(threading.current_thread().name)
        return real_fit(*args)

    def counting_write(self, *args):
        encoded.append(threading.current_thread().name)
        return real_write(self, *args)

    monkeypatch.setattr(V, "fit_frame", counting_fit)
    monkeypatch.setattr(V._Writer, "write", counting_write)
    seen, on_main_thread = {}, []

    def wait_for(condition):
        deadline = time.monotonic() + 20
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        return condition()

    def network(frames):
        call = len(on_main_thread)
        on_main_thread.append(threading.current_thread() is threading.main_thread())
        if call == 0:  # decoding goes on beyond this batch while we hold the thread...
            seen["decoded ahead"] = wait_for(lambda: len(decoded) > 4)
            time.sleep(0.3)  # ...but only as far as the bounded queue allows (memory stays flat):
            seen["read ahead"] = len(decoded)  # this batch + a full queue + one in hand
        if call == 1:  # the first batch gets encoded while we hold the thread
            seen["encoded meanwhile"] = wait_for(lambda: encoded.count(encode_thread) >= 4)
        return frames

    stylize_video(clips["plain"], out_dir / "out.mp4", network, batch_size=4)
    assert seen["decoded ahead"] and seen["encoded meanwhile"]
    assert seen["read ahead"] <= 4 + V.QUEUE_BATCHES * 4 + 1 < FRAMES
    assert on_main_thread == [True] * 4  # the network runs on the calling thread
    assert set(decoded) == {"jaxstyle-video-decode"}
    assert encoded.count(encode_thread) == FRAMES  # (the dry run wrote one on the main thread)
    assert video_threads() == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C, a scheduler
def test_ctrl_c_or_sigterm_keeps_a_playable_partial_file(clips, out_dir, signum):
    calls = []

    def interrupted_on_third_batch(frames):
        calls.append(len(frames))
        if len(calls) == 3:
            os.kill(os.getpid(), signum)
        return frames

    target = out_dir / "out.mp4"
    with pytest.raises(VideoInterrupted) as caught:
        stylize_video(clips["aac"], target, interrupted_on_third_batch, batch_size=4)
    partial = out_dir / "out.partial.mp4"
    assert caught.value.partial_path == partial
    assert caught.value.frames_done == 8 and caught.value.total_frames == FRAMES
    assert caught.value.signum == signum
    assert f"interrupted by {signum.name}" in str(caught.value)
    assert str(partial) in str(caught.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers were put back
    assert os.listdir(out_dir) == ["out.partial.mp4"]  # nothing at the target, no temp file
    frames = np.stack(list(read_frames(partial)))
    assert len(frames) == 8
    np.testing.assert_allclose(frames[..., 0].mean(axis=(1, 2)), 40 + 10 * np.arange(8),
                               atol=3)
    assert probe_video(partial).duration == pytest.approx(8 / 24, abs=1 / 24)
    assert audio_seconds(partial) == pytest.approx(8 / 24, abs=0.05)  # audio ends with video
    assert video_threads() == []
    assert isinstance(caught.value, JaxstyleError)


def test_ctrl_c_before_any_frame_writes_nothing(clips, out_dir):
    def interrupted(frames):
        raise KeyboardInterrupt

    with pytest.raises(VideoInterrupted) as caught:
        stylize_video(clips["plain"], out_dir / "out.mp4", interrupted)
    assert caught.value.partial_path is None and caught.value.frames_done == 0
    assert os.listdir(out_dir) == []


def test_an_error_in_the_network_propagates_and_removes_the_temp_file(clips, out_dir):
    def broken(frames):
        raise RuntimeError("network broke")

    with pytest.raises(RuntimeError, match="network broke"):
        stylize_video(clips["aac"], out_dir / "out.mp4", broken)
    assert os.listdir(out_dir) == []
    assert video_threads() == []


def test_the_target_keeps_its_old_content_when_a_run_fails(clips, out_dir):
    target = out_dir / "out.mp4"
    target.write_bytes(b"old")

    def wrong_shape(frames):
        return frames[:, ::2]

    with pytest.raises(VideoError, match="shape"):
        stylize_video(clips["plain"], target, wrong_shape)
    assert target.read_bytes() == b"old"
    assert os.listdir(out_dir) == ["out.mp4"]


# ----------------------------------------------------------------------------- bad input

def _no_video_stream(folder: Path) -> Path:
    path = folder / "sound.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = _audio_frame(np.zeros((2, 1024)), stream)
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _zero_frames(folder: Path) -> Path:
    """A Matroska file with a video stream but no video frames (only a little audio)."""
    path = folder / "empty.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height = WIDTH, HEIGHT
        audio = container.add_stream("aac", rate=48000)
        frame = _audio_frame(np.zeros((2, 1024)), audio)
        frame.pts = 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode())
        container.mux(video.encode())
    return path


def _pcm_in_mov(folder: Path) -> Path:
    return make_clip(folder / "mulaw.mov", audio_codec="pcm_mulaw", sample_rate=8000)


def _still_image(folder: Path) -> Path:
    from PIL import Image
    path = folder / "still.png"
    Image.fromarray(clip_frames()[0]).save(path)
    return path


def _text(folder: Path) -> Path:
    path = folder / "notes.mp4"
    path.write_text("not a video\n")
    return path


@pytest.mark.parametrize("case, message", [
    ("missing input", "no such file"),
    ("input is a folder", "is a folder"),
    ("not a video", "not a video PyAV can read"),
    ("still image", "still image"),
    ("no video stream", "no video stream"),
    ("zero frames", "no frames"),
    ("unknown codec", "unknown video codec"),
    ("audio codec for video", "not video"),
    ("output not a container", "not a video container"),
    ("output without extension", "not a video container"),
    ("output is the input", "is the input"),
    ("output is the input, spelled differently", "is the input"),
    ("output folder is a file", "is not a folder"),
    ("start past the end", "past its end"),
    ("smooth out of range", "smooth"),
    ("batch size zero", "batch_size"),
    ("audio the container cannot take", "cannot take the input's pcm_mulaw audio"),
])
def test_bad_input_gives_one_line_and_writes_nothing(clips, tmp_path, out_dir, case, message):
    inputs = tmp_path / "in"
    inputs.mkdir()
    source, target, options = clips["aac"], out_dir / "out.mp4", {}
    if case == "missing input":
        source = inputs / "absent.mp4"
    elif case == "input is a folder":
        source = inputs
    elif case == "not a video":
        source = _text(inputs)
    elif case == "still image":
        source = _still_image(inputs)
    elif case == "no video stream":
        source = _no_video_stream(inputs)
    elif case == "zero frames":
        source = _zero_frames(inputs)
    elif case == "unknown codec":
        options = {"codec": "nosuchcodec"}
    elif case == "audio codec for video":
        options = {"codec": "aac"}
    elif case == "output not a container":
        target = out_dir / "out.png"
    elif case == "output without extension":
        target = out_dir / "out"
    elif case == "output is the input":
        source = make_clip(out_dir / "self.mp4")
        target = source
    elif case == "output is the input, spelled differently":
        source = make_clip(out_dir / "self.mp4")
        target = out_dir / ".." / out_dir.name / "self.mp4"
    elif case == "output folder is a file":
        (out_dir / "file").write_text("x")
        target = out_dir / "file" / "out.mp4"
    elif case == "start past the end":
        options = {"start": 5.0}
    elif case == "smooth out of range":
        options = {"smooth": 1.0}
    elif case == "batch size zero":
        options = {"batch_size": 0}
    elif case == "audio the container cannot take":
        source = _pcm_in_mov(inputs)
    before = {path: path.stat().st_mtime_ns for path in out_dir.rglob("*")}
    calls = []
    with pytest.raises(VideoError, match=message) as caught:
        stylize_video(source, target, lambda f: calls.append(1) or f, **options)
    assert "\n" not in str(caught.value)
    assert calls == []  # refused before any frame was stylized
    assert {path: path.stat().st_mtime_ns for path in out_dir.rglob("*")} == before


def test_probe_refuses_what_is_not_a_video(tmp_path):
    with pytest.raises(VideoError, match="notes.mp4: not a video PyAV can read"):
        probe_video(_text(tmp_path))
    with pytest.raises(VideoError, match="no video stream"):
        probe_video(_no_video_stream(tmp_path))


# ----------------------------------------------------------------------------- small helpers

def test_write_video_and_read_frames_round_trip(tmp_path):
    frames = clip_frames(8, 66, 50)  # even already; the odd case is below
    path = write_video(tmp_path / "clip.mp4", frames, Fraction(30000, 1001), crf=0)
    info = probe_video(path)
    assert info.fps == Fraction(30000, 1001) and info.frames == 8
    back = np.stack(list(read_frames(path)))
    assert back.shape == frames.shape
    assert np.abs(back.astype(float) - frames.astype(float)).mean() / 255 < 0.02
    odd = write_video(tmp_path / "odd.mkv", clip_frames(4, 65, 49).astype(np.float32) / 255, 24)
    assert next(read_frames(odd)).shape == (48, 64, 3)
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "odd.mkv"]


def test_write_video_refuses_a_non_container(tmp_path):
    with pytest.raises(VideoError, match="not a video container"):
        write_video(tmp_path / "clip.gif", clip_frames(2), 24)
    assert os.listdir(tmp_path) == []
