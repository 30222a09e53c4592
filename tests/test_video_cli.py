"""`jaxstyle video` as a user meets it: a trained model over a clip with audio, bad inputs."""

import os
import subprocess
import sys

import numpy as np
import pytest
from test_video_io import make_clip

from jaxstyle.feedforward.modelfile import save_model, style_record
from jaxstyle.feedforward.network import init_params
from jaxstyle.video import probe_video, read_frames

ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "JAXSTYLE_NO_DOWNLOAD": "1"}


def jaxstyle(*args):
    return subprocess.run([sys.executable, "-m", "jaxstyle", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video_cli")
    header = {"width": 0.125, "num_styles": 1,
              "styles": [style_record("dots", np.full((32, 32, 3), 0.5, np.float32))]}
    model = save_model(folder / "tiny.jxs", init_params(0, 1, 0.125, size=32), header)
    return folder, model, make_clip(folder / "clip.mp4", audio_codec="aac")


def test_model_video_keeps_frames_rate_and_audio(inputs, tmp_path):
    _, model, clip = inputs
    out = tmp_path / "out.mp4"
    result = jaxstyle("video", clip, "-o", out, "--model", model, "--batch", 5, "-q")
    assert result.returncode == 0, result.stderr
    source, made = probe_video(clip), probe_video(out)
    assert made.frames == source.frames and made.fps == source.fps and made.has_audio
    assert abs(made.duration - source.duration) <= 1 / float(source.fps)
    first_in, first_out = next(read_frames(clip)), next(read_frames(out))
    assert first_out.shape == first_in.shape
    assert np.abs(first_out.astype(int) - first_in.astype(int)).mean() > 5  # it was stylized


@pytest.mark.parametrize("case", ["not_a_video", "missing", "same_as_input", "bad_codec",
                                  "unwritable"])
def test_bad_input_is_one_line_and_writes_nothing(inputs, tmp_path, case):
    folder, model, clip = inputs
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    args = {
        "not_a_video": [text, "-o", tmp_path / "a.mp4"],
        "missing": [tmp_path / "nope.mp4", "-o", tmp_path / "a.mp4"],
        "same_as_input": [clip, "-o", clip],
        "bad_codec": [clip, "-o", tmp_path / "a.mp4", "--codec", "no-such-codec"],
        "unwritable": [clip, "-o", blocker / "a.mp4"],
    }[case]
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(folder))
    result = jaxstyle("video", *args, "--model", model)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "Traceback" not in result.stderr
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(folder))) == before


def test_any_style_video_and_mode_errors(inputs, tmp_path, tiny_weights_file):
    from jaxstyle.arbitrary.decoder import init_decoder
    from jaxstyle.arbitrary.decoderfile import save_decoder
    from jaxstyle.images import save_image

    folder, model, clip = inputs
    decoder = save_decoder(tmp_path / "any.jxs", init_decoder(0, 0.125), {"width": 0.125})
    painting = tmp_path / "painting.png"
    save_image(painting, np.random.default_rng(0).uniform(size=(40, 40, 3)).astype(np.float32))
    out = tmp_path / "out.mp4"
    result = jaxstyle("video", clip, "-o", out, "--model", decoder, "--style-image", painting,
                      "--weights", tiny_weights_file, "--batch", 8, "-q")
    assert result.returncode == 0, result.stderr
    assert probe_video(out).frames == probe_video(clip).frames
    for args, message in (([], "give --style-image"),
                          (["--style-image", painting, "--style", "0"], "--style picks")):
        result = jaxstyle("video", clip, "-o", tmp_path / "x.mp4", "--model", decoder, *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    result = jaxstyle("video", clip, "-o", tmp_path / "x.mp4", "--model", model,
                      "--style-image", painting)
    assert result.returncode == 2 and "needs an arbitrary-style decoder" in result.stderr
    assert not (tmp_path / "x.mp4").exists()
