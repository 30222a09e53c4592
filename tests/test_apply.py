"""Applying a trained feed-forward model: style choice and blends, strength, colour
preservation, one compile per shape, built-in names, and the `apply` command on a file, a
folder (with a bad image in it), stdin and damaged model files."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_feedforward import randomize_style_params as distinct_styles  # noqa: E402

from conftest import random_image
from jaxstyle.cli import main
from jaxstyle.color import rgb_to_yiq
from jaxstyle.errors import ConfigError
from jaxstyle.feedforward import (
    ModelError,
    apply_model,
    init_params,
    load_model,
    make_stylizer,
    resolve_model,
    save_model,
    style_record,
    style_weights_for,
)
from jaxstyle.feedforward.apply import builtin_models, read_header

REPO = Path(__file__).resolve().parent.parent
WIDTH = 0.125


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A 3-style width-0.125 model file: (path, params, header)."""
    params = distinct_styles(init_params(0, 3, WIDTH, size=32))
    names = ["starry_night", "scream", "wave"]
    header = {"width": WIDTH, "num_styles": 3,
              "styles": [style_record(name, np.full((32, 32, 3), i / 3, np.float32))
                         for i, name in enumerate(names)]}
    path = save_model(tmp_path_factory.mktemp("models") / "three.jxs", params, header)
    return path, params, read_header(path)


@pytest.fixture(scope="module")
def stylizer(model):
    _, params, header = model
    return make_stylizer(params, header)


def photo(seed: int, height: int = 32, width: int = 40) -> np.ndarray:
    return random_image(np.random.default_rng(seed), height, width)[0]


def write_photo(path: Path, seed: int, height: int = 32, width: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(photo(seed, height, width) * 255).astype(np.uint8)).save(path)
    return path


def read_png(data_or_path) -> np.ndarray:
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(source) as image:
        return np.asarray(image.convert("RGB"), np.float32) / 255


# --- library ---------------------------------------------------------------------------------

def test_style_weights_by_name_index_and_blend(model):
    _, _, header = model
    np.testing.assert_array_equal(style_weights_for(header), [1, 0, 0])
    np.testing.assert_array_equal(style_weights_for(header, "Scream"), [0, 1, 0])
    np.testing.assert_array_equal(style_weights_for(header, 2), [0, 0, 1])
    np.testing.assert_allclose(style_weights_for(header, blend=[1, 3, 0]), [0.25, 0.75, 0])
    for bad in (dict(style="nope"), dict(style=3)):
        with pytest.raises(ModelError, match="available: 0 'starry_night'"):
            style_weights_for(header, **bad)
    for blend in ([1, 1], [1, -1, 1], [0, 0, 0]):
        with pytest.raises(ConfigError):
            style_weights_for(header, blend=blend)
    with pytest.raises(ConfigError, match="not both"):
        style_weights_for(header, "scream", [1, 1, 1])


def test_styles_differ_and_a_blend_lies_between(model, stylizer):
    _, params, header = model
    image = photo(1)
    outputs = [apply_model(params, header, image, style=i, stylizer=stylizer) for i in range(3)]
    assert outputs[0].shape == image.shape and outputs[0].dtype == np.float32
    assert np.abs(outputs[0] - outputs[1]).mean() > 1e-3
    half = apply_model(params, header, image, blend=[1, 1, 0], stylizer=stylizer)
    assert 0 < np.abs(half - outputs[0]).mean() < np.abs(outputs[1] - outputs[0]).mean()


def test_strength_blends_with_the_photo(model, stylizer):
    _, params, header = model
    image = photo(2)[None]
    full = apply_model(params, header, image, stylizer=stylizer)
    np.testing.assert_allclose(apply_model(params, header, image, strength=0.0,
                                           stylizer=stylizer), image, atol=1e-6)
    np.testing.assert_allclose(apply_model(params, header, image, strength=0.3,
                                           stylizer=stylizer),
                               0.3 * full + 0.7 * image, atol=1e-6)
    with pytest.raises(ConfigError, match="strength"):
        apply_model(params, header, image, strength=1.5, stylizer=stylizer)


def test_preserve_color_keeps_the_photos_chroma(model, stylizer):
    _, params, header = model
    image = 0.25 + 0.5 * photo(3)  # mid-tones: the recombined colours are never clipped
    plain = apply_model(params, header, image, stylizer=stylizer)
    kept = apply_model(params, header, image, preserve_color="luminance", stylizer=stylizer)
    kept_yiq, plain_yiq, image_yiq = (np.asarray(rgb_to_yiq(x)) for x in (kept, plain, image))
    inside = np.all((kept > 1e-3) & (kept < 1 - 1e-3), axis=-1)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(kept_yiq[inside][:, 1:], image_yiq[inside][:, 1:], atol=1e-4)
    np.testing.assert_allclose(kept_yiq[inside][:, 0], plain_yiq[inside][:, 0], atol=1e-4)


def test_stylizer_compiles_once_per_shape(model):
    _, params, header = model
    stylize = make_stylizer(params, header)
    weights = np.tile(style_weights_for(header, 1), (2, 1))
    first = np.asarray(stylize(np.stack([photo(4), photo(5)]), weights))
    second = np.asarray(stylize(np.stack([photo(6), photo(7)]), weights))
    assert stylize.trace_count == 1 and not np.array_equal(first, second)
    stylize(np.stack([photo(4, 36, 36)] * 2), weights)
    assert stylize.trace_count == 2
    # Each image's output depends on that image alone (instance norm), so batching is exact.
    alone = np.asarray(stylize(photo(5)[None], weights[:1]))
    np.testing.assert_allclose(alone[0], first[1], atol=1e-5)


def test_resolve_model_by_path_and_builtin_name(model, tmp_path):
    path, _, _ = model
    assert resolve_model(path) == (path, None)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "three.jxs").write_bytes(path.read_bytes())
    (shipped / "broken.jxs").write_bytes(b"not a model")
    assert resolve_model("Scream", shipped) == (shipped / "three.jxs", "scream")
    assert resolve_model("three", shipped) == (shipped / "three.jxs", None)
    names = {m.name for m in builtin_models(shipped)}
    assert names == {"three", "starry_night", "scream", "wave", "broken"}
    with pytest.raises(ModelError, match="built-in models: broken, scream, starry_night"):
        resolve_model("mona_lisa", shipped)
    with pytest.raises(ModelError, match="no built-in models"):
        resolve_model("mona_lisa", tmp_path / "empty")


# --- the apply command ---------------------------------------------------------------------------

def run_module(*argv, stdin: bytes | None = None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "jaxstyle", "apply", *map(str, argv)],
                          cwd=REPO, env=env, input=stdin, capture_output=True, timeout=300)


def test_apply_command_on_a_file(model, tmp_path):
    path, params, header = model
    source = write_photo(tmp_path / "photo.png", 8)
    output = tmp_path / "out" / "styled.png"
    done = run_module(path, source, "-o", output, "--style", "wave", "-q")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b"" and done.stdout == b""
    expected = apply_model(params, header, read_png(source), style="wave")
    np.testing.assert_allclose(read_png(output), expected, atol=1.5 / 255)


def test_apply_command_from_stdin_to_stdout(model, tmp_path):
    path, params, header = model
    source = write_photo(tmp_path / "photo.png", 9, 40, 36)
    done = run_module(path, "-", "--strength", "0.5", "--max-dim", "38",
                      stdin=source.read_bytes())
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.startswith(b"\x89PNG")
    out = read_png(done.stdout)
    assert out.shape == (38, 34, 3)  # 36x40 shrunk to a longer side of 38
    from jaxstyle.images import load_image

    expected = apply_model(params, header, load_image(source, 38), strength=0.5)
    np.testing.assert_allclose(out, expected, atol=1.5 / 255)


def test_apply_command_on_a_folder_skips_a_bad_image(model, stylizer, tmp_path, capsys):
    path, params, header = model
    photos = tmp_path / "photos"
    sources = [write_photo(photos / "a.png", 10), write_photo(photos / "b.jpg", 11),
               write_photo(photos / "nested" / "c.png", 12, 40, 36),
               write_photo(photos / "nested" / "d.png", 13)]
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "styled"
    code = main(["apply", str(path), str(photos), "-o", str(out), "--style-blend", "1", "1",
                 "0", "--batch", "3"])
    err = capsys.readouterr().err
    assert code == 2
    assert "broken.png" in err and "error: 1 of 5 image(s) failed" in err
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "b.png", "nested/c.png", "nested/d.png"]
    from jaxstyle.images import load_image

    for source in sources:
        target = out / source.relative_to(photos).with_suffix(".png")
        expected = apply_model(params, header, load_image(source, None), blend=[1, 1, 0],
                               stylizer=stylizer)
        np.testing.assert_allclose(read_png(target), expected, atol=1.5 / 255)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_apply_command_on_a_folder_stopped_by_a_signal_keeps_the_images_done(
        model, tmp_path, capsys, monkeypatch, signum, code):
    # SIGTERM is how schedulers stop a job; it must stop `apply` as Ctrl-C does.
    import jaxstyle.feedforward.apply as engine

    path, _, _ = model
    photos = tmp_path / "photos"
    for k in range(3):
        write_photo(photos / f"{k}.png", 20 + k)
    calls = []

    def signalled_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)
        return apply_model(*args, **kwargs)

    monkeypatch.setattr(engine, "apply_model", signalled_on_second_batch)
    out = tmp_path / "styled"
    code_got = main(["apply", str(path), str(photos), "-o", str(out), "--batch", "1"])
    assert code_got == code
    assert f"interrupted by {signum.name}" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["0.png"]  # the finished one, no temp file
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers were put back


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "foreign", "missing"])
def test_apply_command_refuses_a_damaged_model_in_one_line(model, damage, tmp_path, capsys):
    path, _, _ = model
    data = path.read_bytes()
    broken = tmp_path / "broken.jxs"
    if damage == "truncated":
        broken.write_bytes(data[:len(data) // 2])
    elif damage == "flipped byte":
        broken.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    elif damage == "foreign":
        broken.write_bytes(b"PK\x03\x04 a zip file, say" * 10)
    source = write_photo(tmp_path / "photo.png", 14)
    code = main(["apply", str(broken), str(source), "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "broken.jxs" in err, err
    assert not (tmp_path / "out.png").exists()


def test_apply_command_lists_styles_and_checks_options(model, tmp_path, capsys):
    path, _, _ = model
    assert main(["apply", str(path), "--list"]) == 0
    out = capsys.readouterr().out
    assert "3 style(s)" in out and "'scream'" in out
    source = write_photo(tmp_path / "photo.png", 15)
    for argv, message in [([source], "-o OUT"),
                          ([source, "-o", tmp_path / "o.png", "--style", "nope"], "no style"),
                          ([source, "-o", tmp_path / "o.png", "--style-blend", "1"], "3 styles"),
                          ([source, "-", "-o", tmp_path / "o"], "only input")]:
        assert main(["apply", str(path), *map(str, argv)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_the_shipped_model_works_offline_by_style_name():
    path, style = resolve_model("starry_night")  # a style inside jaxstyle/models/paintings.jxs
    assert path.name == "paintings.jxs" and style == "starry_night"
    params, header = load_model(path)
    assert [s["name"] for s in header["styles"]] == ["starry_night", "shipwreck", "woman_with_hat"]
    photo = np.random.default_rng(0).uniform(size=(1, 40, 52, 3)).astype(np.float32)
    out = np.asarray(apply_model(params, header, photo, style="shipwreck"))
    assert out.shape == photo.shape and np.isfinite(out).all()
    assert np.abs(out - photo).mean() > 0.05  # it repainted the photo


# --- The CLI's pipeline: read ahead, fill the remainder batch, write behind -------------------

def test_plan_batches_groups_by_shape_then_cuts():
    from jaxstyle.cli.pipeline import fill_batch, plan_batches

    keys = ["a", "b", "a", "a", "b", "a", "a"]
    assert plan_batches(keys, 2) == [[0, 2], [3, 5], [6], [1, 4]]
    images = [np.full((2, 2, 3), i, np.float32) for i in range(2)]
    filled = fill_batch(images, 4)
    assert filled.shape == (4, 2, 2, 3)
    assert [float(x[0, 0, 0]) for x in filled] == [0, 1, 1, 1]
    assert fill_batch(images, 2).shape == (2, 2, 2, 3)


@pytest.mark.parametrize("overlap", [True, False])
def test_pipeline_fills_the_remainder_and_counts_failures_in_order(model, overlap):
    import threading

    from jaxstyle.cli.pipeline import StageClock, run_pipeline
    from jaxstyle.errors import JaxstyleError

    _, params, header = model
    stylizer = make_stylizer(params, header)
    weights = style_weights_for(header, 0)
    seen_batches, written, failed, done = [], {}, [], []

    threads = set()

    def load(item):
        threads.add(threading.current_thread().name)
        if item == "unreadable":
            raise JaxstyleError("input unreadable: corrupt")
        return photo(item)

    def stylize(batch):
        seen_batches.append(batch.shape)
        return stylizer(batch, np.repeat(weights[None], batch.shape[0], axis=0))

    def write(item, image):
        if item == 3:
            raise JaxstyleError("output 3: permission denied")
        written[item] = image

    clock = StageClock()
    run_pipeline([[0, 1], [2, "unreadable", 3]], load, stylize, write, on_done=done.append,
                 on_error=lambda item, error: failed.append((item, str(error))),
                 errors=(JaxstyleError,), clock=clock, overlap=overlap)
    # Overlapped, images are read on a thread of their own; else in turn, on this one.
    assert threads == ({"read_0"} if overlap else {threading.current_thread().name})
    # The second batch lost an image to a load error; it was filled back up to 2.
    assert seen_batches == [(2, 32, 40, 3), (2, 32, 40, 3)]
    assert stylizer.trace_count == 1  # the remainder reused the compiled program
    assert done == [0, 1, 2] and [item for item, _ in failed] == ["unreadable", 3]
    alone = apply_model(params, header, photo(2), style=0)
    np.testing.assert_allclose(written[2], alone, atol=1e-5)
    table = clock.table(1.0, 4)
    assert "first call" in table and "network" in table and "encode" in table


def test_apply_timings_table_names_every_stage(model, tmp_path, capsys):
    path, _, _ = model
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(3):
        write_photo(folder / f"{seed}.jpg", seed)
    code = main(["apply", str(path), str(folder), "-o", str(tmp_path / "out"), "--batch", "2",
                 "--timings", "-q"])
    assert code == 0
    rows = {line.split()[0] for line in capsys.readouterr().err.splitlines() if line.strip()}
    assert {"decode", "resize", "to", "first", "network", "encode", "wall"} <= rows
    assert len(list((tmp_path / "out").iterdir())) == 3
