"""Feed-forward training: the stability term, style cycling, Gram targets, the compiled step,
the host loop (loss goes down, log, model file, preview), Ctrl-C + resume equal to an
uninterrupted run, 4-device data parallelism equal to 1 device, and the `train` command.

All on tiny random VGG params, a 0.125-width network, 32 px crops and shallow loss layers, so
each compile takes seconds. Every training test uses the config `TRAIN_FLAGS` describes, so
they share one compiled step (`cached_train_step`).
"""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from PIL import Image

from conftest import device_script, random_image
from jaxstyle.cli import build_parser, main
from jaxstyle.cli.train import config_from_args
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError
from jaxstyle.feedforward import load_model
from jaxstyle.feedforward.config import FeedForwardConfig, init_train_state
from jaxstyle.feedforward.step import (
    cached_train_step,
    random_offsets,
    shift_images,
    shifted_valid,
    stability_loss,
    style_assignment,
    style_grams,
)
from jaxstyle.feedforward.train import StyleImage, train
from jaxstyle.objective import make_targets
from jaxstyle.training import (
    TrainingInterrupted,
    default_checkpoint_dir,
    log_path_for,
    preview_path,
    read_log,
    training_mesh,
)
from jaxstyle.vgg import prepare_params

REPO = Path(__file__).resolve().parent.parent
# Shallow layers and balanced weights: every term moves within a few steps on random VGG.
TRAIN_FLAGS = ["--size", "32", "--batch", "4", "--width", "0.125", "--lr", "0.01",
               "--content-layers", "block1_conv2", "--style-layers", "block1_conv1,block2_conv1",
               "--content-weight", "1", "--style-weight", "1", "--tv-weight", "1e-3",
               "--stability-weight", "0.5", "--style-size", "48", "--workers", "0",
               "--preview-every", "0", "--checkpoint-every", "0"]
NUM_STYLES = 2


def write_png(path: Path, seed: int, height: int = 40, width: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.round(random_image(rng, height, width)[0] * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """8 small photos of mixed sizes."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(8):
        write_png(root / f"photo{i}.png", seed=i, height=32 + 4 * i, width=48 - 2 * i)
    return root


@pytest.fixture(scope="module")
def style_files(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("styles")
    return [write_png(root / "waves.png", 100, 40, 40), write_png(root / "dots.png", 101, 36, 44)]


def cli_config(style_files, *extra) -> FeedForwardConfig:
    """The FeedForwardConfig the `train` command builds from TRAIN_FLAGS (+ extra flags)."""
    args = build_parser().parse_args(["train", *map(str, style_files), "--data", "x", "-o", "m",
                                      *TRAIN_FLAGS, *extra])
    return config_from_args(args)


@pytest.fixture(scope="module")
def cfg(style_files) -> FeedForwardConfig:
    return cli_config(style_files)


@pytest.fixture(scope="module")
def vgg(tiny_params):
    return prepare_params(tiny_params)


@pytest.fixture(scope="module")
def styles(style_files, cfg) -> list[StyleImage]:
    from jaxstyle.cli.train import load_styles

    return load_styles(style_files, cfg.style_side)


def training_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


# --- stability term ------------------------------------------------------------------------------

def ramp(height: int, width: int) -> np.ndarray:
    """A linear ramp 0.01 r + 0.02 c per pixel, the same in each channel: (H, W, 3)."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.repeat((0.01 * rows + 0.02 * cols)[..., None], 3, axis=2)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _motion(key, shape, max_shift, noise_std):
    shift_key, noise_key = jax.random.split(key)
    return (random_offsets(shift_key, shape[0], max_shift),
            noise_std * jax.random.normal(noise_key, shape, jnp.float32))


def drawn_motion(key, images, max_shift, noise_std):
    """The offsets and noise `stability_loss` draws from `key` (its documented key split)."""
    offsets, noise = _motion(key, images.shape, max_shift, noise_std)
    return np.asarray(offsets), np.asarray(noise)


@pytest.fixture
def batch(rng):
    # Away from 0 and 1, so the noise is never clipped and the expectations stay exact.
    return (0.2 + 0.6 * np.concatenate([random_image(rng, 24, 28) for _ in range(3)]))


@functools.lru_cache
def compiled_stability(apply_fn):
    # noise_std as an argument (it only scales the noise): one compile serves every value.
    return jax.jit(lambda x, w, k, noise_std: stability_loss(apply_fn, None, x, w, k,
                                                             noise_std=noise_std))


def stability(apply_fn, images, key, noise_std=0.02):
    weights = jnp.ones((images.shape[0], 1))
    return np.asarray(compiled_stability(apply_fn)(jnp.asarray(images, jnp.float32), weights,
                                                   key, noise_std))


def test_stability_is_exactly_zero_for_a_constant_network(batch):
    constant = lambda params, x, w: jnp.full_like(x, 0.3)
    loss = stability(constant, batch, jax.random.key(0))
    assert loss.shape == (3,)
    np.testing.assert_array_equal(loss, 0.0)


def identity(params, images, style_weights):
    return images


def test_stability_is_zero_for_a_shift_equivariant_network_without_noise(batch):
    assert np.all(stability(identity, batch, jax.random.key(1), noise_std=0.0) == 0.0)
    # With noise, an identity network passes the noise through: exactly its mean square.
    key = jax.random.key(2)
    offsets, noise = drawn_motion(key, batch, 2, 0.02)
    valid = np.asarray(shifted_valid(jnp.asarray(offsets), 24, 28))[..., None]
    expected = (valid * noise**2).sum(axis=(1, 2, 3)) / (valid.sum(axis=(1, 2, 3)) * 3)
    np.testing.assert_allclose(stability(identity, batch, key), expected, rtol=1e-4)


def test_stability_is_positive_for_a_position_dependent_network(batch):
    field = jnp.asarray(ramp(24, 28))
    positional = lambda params, x, w: 0.0 * x + field
    key = jax.random.key(3)
    offsets, _ = drawn_motion(key, batch, 2, 0.02)
    # f(T x + n) - T f(x) = ramp(r, c) - ramp(r - dy, c - dx) = 0.01 dy + 0.02 dx everywhere.
    expected = (0.01 * offsets[:, 0] + 0.02 * offsets[:, 1]) ** 2
    loss = stability(positional, batch, key)
    assert np.all(loss > 0)
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_shift_images_moves_pixels_and_mirrors_at_the_edges(rng):
    images = rng.uniform(size=(2, 8, 9, 3)).astype(np.float32)
    offsets = np.array([[2, -1], [-1, 0]])
    shifted = np.asarray(jax.jit(shift_images, static_argnums=2)(images, offsets, 2))
    for image, out, (dy, dx) in zip(images, shifted, offsets):
        rows = np.abs(np.arange(8) - dy)  # reflection of negative indices
        rows = np.where(rows > 7, 14 - rows, rows)
        cols = np.abs(np.arange(9) - dx)
        cols = np.where(cols > 8, 16 - cols, cols)
        np.testing.assert_array_equal(out, image[rows][:, cols])
    valid = np.asarray(shifted_valid(jnp.asarray(offsets), 8, 9))
    assert valid[0, :2].sum() == 0 and valid[0, :, -1].sum() == 0 and valid[0].sum() == 6 * 8
    assert valid[1, -1].sum() == 0 and valid[1].sum() == 7 * 9


def test_random_offsets_stay_in_range_and_always_move():
    offsets = np.asarray(random_offsets(jax.random.key(0), 2000, 2))
    assert offsets.min() == -2 and offsets.max() == 2
    assert not np.any(np.all(offsets == 0, axis=1))
    assert len({tuple(o) for o in offsets}) == 24  # every non-zero shift occurs


# --- targets and style assignment ----------------------------------------------------------------

def test_styles_cycle_evenly_over_the_global_batch():
    ids = np.stack([np.asarray(style_assignment(jnp.int32(step), 4, 3)) for step in range(3)])
    np.testing.assert_array_equal(ids, [[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2]])
    assert np.all(np.bincount(ids.ravel(), minlength=3) == 4)


def test_style_grams_stack_the_shared_objectives_targets(vgg, cfg, rng):
    images = [random_image(rng, 36, 40)[0], random_image(rng, 44, 32)[0]]
    grams = style_grams(vgg, images, cfg)
    assert set(grams) == set(cfg.loss.style_layers)
    for i, image in enumerate(images):
        expected = make_targets(vgg, image, image, cfg.loss).style
        for layer, gram in grams.items():
            assert gram.shape[0] == 2
            np.testing.assert_allclose(gram[i], expected[layer][0, 0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="num_styles"):
        style_grams(vgg, images[:1], cfg)


def test_config_validates_and_keeps_the_shared_loss_config():
    default = FeedForwardConfig()
    assert default.loss.content_layers == ("block3_conv3", "block5_conv2")
    assert default.loss.style_layers == StyleConfig().style_layers  # the seed's
    assert default.style_side == default.size
    for bad in (dict(batch=0), dict(size=16), dict(learning_rate=0.0),
                dict(stability_weight=-1.0), dict(loss="fp32")):
        with pytest.raises(ConfigError):
            FeedForwardConfig(**bad)


# --- the compiled step and the host loop ---------------------------------------------------------

def test_training_lowers_the_loss_and_writes_model_log_and_preview(vgg, cfg, styles, photos,
                                                                   tmp_path):
    output = tmp_path / "net.jxs"
    cfg20 = cfg.replace(steps=20, preview_every=10, log_every=5)
    preview = random_image(np.random.default_rng(5), 32, 36)[0]
    result = train(vgg, styles, training_paths(photos), output, cfg20, preview=preview,
                   worker_count=0)
    records = read_log(log_path_for(output))
    assert [r["step"] for r in records] == list(range(1, 21))
    assert set(records[0]) >= {"step", "loss", "content", "style", "tv", "stability",
                               "grad_norm", "images_per_s"}
    losses = np.array([r["loss"] for r in records])
    assert losses[-5:].mean() < 0.8 * losses[:5].mean()
    assert cached_train_step(cfg20, training_mesh()).trace_count == 1  # one compile, 20 steps

    params, header = load_model(output)
    assert header["num_styles"] == 2 and header["width"] == 0.125
    assert [s["name"] for s in header["styles"]] == ["waves", "dots"]
    assert all(len(s["sha256"]) == 64 for s in header["styles"])
    assert header["styles"][1]["size"] == [36, 44]
    assert header["training"]["steps"] == 20 and header["data_count"] == 8
    assert header["training"]["content_layers"] == ["block1_conv2"]
    for saved, trained in zip(jax.tree.leaves(params), jax.tree.leaves(result.params)):
        np.testing.assert_array_equal(saved, trained)
    with Image.open(preview_path(output)) as image:
        assert image.size == (2 * 36, 32)  # one panel per style


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C, a scheduler
def test_interrupt_then_resume_repeats_the_uninterrupted_losses(vgg, cfg, styles, photos,
                                                                tmp_path, signum):
    paths = training_paths(photos)
    six = cfg.replace(steps=6, log_every=1, checkpoint_every=2)
    straight = train(vgg, styles, paths, tmp_path / "straight.jxs", six, worker_count=0)

    output = tmp_path / "resumed.jxs"

    def signal_at_step_3(records):
        if records[-1]["step"] == 3:
            os.kill(os.getpid(), signum)

    with pytest.raises(TrainingInterrupted, match=f"interrupted by {signum.name} at step 3") \
            as stopped:
        train(vgg, styles, paths, output, six, worker_count=0, on_log=signal_at_step_3)
    assert stopped.value.signum == signum
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers were put back
    _, header = load_model(output)  # the model was saved at the interruption
    assert header["training"]["steps"] == 3 and header["training"]["interrupted"]
    checkpoints = default_checkpoint_dir(output)
    assert sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit()) == [2, 3]

    with pytest.raises(ConfigError, match="--resume"):  # never overwrite an earlier run
        train(vgg, styles, paths, output, six, worker_count=0)
    resumed = train(vgg, styles, paths, output, six, worker_count=0, resume=True)

    expected, got = read_log(log_path_for(tmp_path / "straight.jxs")), read_log(
        log_path_for(output))
    assert [r["step"] for r in got] == list(range(1, 7))
    for name in ("loss", "content", "style", "tv", "stability", "grad_norm"):
        np.testing.assert_allclose([r[name] for r in got], [r[name] for r in expected],
                                   rtol=1e-6, err_msg=name)
    assert expected[-1]["stability"] > 0
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert resumed.steps == 6


def test_time_limit_stops_early_like_the_end_and_resume_finishes(vgg, cfg, styles, photos,
                                                                 tmp_path):
    paths = training_paths(photos)
    six = cfg.replace(steps=6, log_every=2, checkpoint_every=0)
    output = tmp_path / "limited.jxs"
    # Any limit is past by the first check, at the first log boundary (step 2).
    stopped = train(vgg, styles, paths, output, six, worker_count=0, time_limit=1e-9)
    assert stopped.steps == 2
    _, header = load_model(output)
    assert header["training"]["steps"] == 2 and "interrupted" not in header["training"]
    checkpoints = default_checkpoint_dir(output)
    assert [p.name for p in checkpoints.iterdir() if p.name.isdigit()] == ["2"]
    finished = train(vgg, styles, paths, output, six, worker_count=0, resume=True,
                     time_limit=3600)
    assert finished.steps == 6
    assert [r["step"] for r in read_log(log_path_for(output))] == list(range(1, 7))


def test_time_limit_option_reads_durations(style_files):
    def parsed(text):
        return build_parser().parse_args(["train", *map(str, style_files), "--data", "x", "-o",
                                          "m", "--time-limit", text]).time_limit

    assert parsed("90") == 90 and parsed("90s") == 90
    assert parsed("45m") == 2700 and parsed("1.5h") == 5400
    assert build_parser().parse_args(["train", "s.png", "--data", "x", "-o", "m"]).time_limit \
        is None
    for bad in ("soon", "0", "-5m", "infh"):
        with pytest.raises(SystemExit):
            parsed(bad)


def test_resume_with_other_styles_is_refused(vgg, cfg, styles, photos, tmp_path):
    paths = training_paths(photos)
    two = cfg.replace(steps=2)
    train(vgg, styles, paths, tmp_path / "a.jxs", two, worker_count=0)
    swapped = [styles[1], styles[0]]
    with pytest.raises(ConfigError, match="style images"):
        train(vgg, swapped, paths, tmp_path / "a.jxs", two, worker_count=0, resume=True)


def test_non_finite_loss_skips_the_update(vgg, cfg, styles):
    step = cached_train_step(cfg, training_mesh())  # the one the other tests compile
    whole = step.replicated
    grams = style_grams(vgg, [s.image for s in styles], cfg)
    broken = jax.tree.map(lambda g: g.at[0, 0, 0].set(jnp.inf), grams)
    state = jax.device_put(init_train_state(cfg), whole)
    before = jax.device_get(state.params)
    batch = jax.device_put(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), np.uint8),
                           step.batch_sharding)
    vgg, grams, broken = jax.device_put((vgg, grams, broken), whole)
    state, metrics = step(vgg, broken, state, batch)
    assert not bool(metrics["finite"]) and not np.isfinite(float(metrics["loss"]))
    assert int(state.step) == 1
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(jax.device_get(state.params))):
        np.testing.assert_array_equal(a, b)
    state, metrics = step(vgg, grams, state, batch)
    assert bool(metrics["finite"])
    flat_before = traverse_util.flatten_dict(before)
    flat_after = traverse_util.flatten_dict(jax.device_get(state.params))
    changed = {path for path in flat_before
               if not np.array_equal(flat_before[path], flat_after[path])}
    assert cfg.identity_start  # the default, which TRAIN_FLAGS keep
    # With the identity start every gradient behind the output conv passes through its zero
    # kernel, so the first update moves exactly the output conv (Adam moves nothing whose
    # gradient is exactly zero); from the second step on, every conv trains.
    assert changed == {("output", "kernel"), ("output", "bias")}
    state, _ = step(vgg, grams, state, batch)
    flat_after = traverse_util.flatten_dict(jax.device_get(state.params))
    kernels = [path for path in flat_before if path[-1] == "kernel"]
    assert len(kernels) == 16
    assert all(not np.array_equal(flat_before[path], flat_after[path]) for path in kernels)


# --- data parallel -------------------------------------------------------------------------------

def test_four_devices_train_like_one():
    # tests/scripts/train_four_devices.py, started when collection ended (conftest.py).
    done = device_script("train_four_devices")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("same")


# --- the train command ---------------------------------------------------------------------------

def test_init_continues_a_model_and_refuses_another_architecture(photos, style_files,
                                                                 tiny_weights_file, tmp_path,
                                                                 capsys):
    first = tmp_path / "first.jxs"
    common = ["--data", photos, *TRAIN_FLAGS, "--weights", tiny_weights_file]
    code, _, err = run_cli(capsys, "train", *style_files, "-o", first, *common, "--steps", "2",
                           "--identity-start")
    assert code == 0, err
    # One step at a learning rate of 1e-9 moves no weight more than ~1e-9: the saved model
    # must be the --init one (a fresh start would differ by O(0.1) in every conv).
    second = tmp_path / "second.jxs"
    code, _, err = run_cli(capsys, "train", *style_files, "-o", second, *common, "--steps", "1",
                           "--identity-start", "--init", first, "--lr", "1e-9",
                           "--layout-weight", "3", "--grid-weight", "2")
    assert code == 0, err
    logged = read_log(log_path_for(second))[0]
    assert logged["layout"] > 0  # the layout term is in the loss
    assert logged["grid"] >= 0  # and the grid term (0 while the output has no grid of its own)
    (start, start_header), (continued, header) = load_model(first), load_model(second)
    for got, want in zip(jax.tree.leaves(continued), jax.tree.leaves(start)):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert header["identity_start"] is True and start_header["identity_start"] is True
    assert header["training"]["initialised_from"] == "first.jxs (trained 2 steps)"
    assert header["training"]["layout_weight"] == 3 and header["training"]["grid_weight"] == 2
    code, _, err = run_cli(capsys, "train", *style_files, "-o", tmp_path / "third.jxs",
                           *common, "--steps", "1", "--no-identity-start", "--init", first)
    assert code == 2
    assert err.count("\n") == 1 and "--init" in err and "--identity-start" in err, err


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_command_skips_and_counts_bad_files(photos, style_files, tiny_weights_file,
                                                  tmp_path, capsys):
    data = tmp_path / "photos"
    for path in training_paths(photos):
        (data / path.name).parent.mkdir(exist_ok=True)
        (data / path.name).write_bytes(path.read_bytes())
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 30)
    (data / "notes.jpg").write_text("a text file with an image's name")
    (data / "readme.txt").write_text("not an image at all")
    output = tmp_path / "model.jxs"
    code, _, err = run_cli(capsys, "train", *style_files, "--data", data, "-o", output,
                           *TRAIN_FLAGS, "--steps", "3", "--weights", tiny_weights_file)
    assert code == 0, err
    assert "8 training images" in err and "(2 skipped)" in err
    assert "broken.png" in err and "notes.jpg" in err
    assert f"saved {output} after 3 steps" in err
    _, header = load_model(output)
    assert header["data_count"] == 8 and header["training"]["steps"] == 3


@pytest.mark.parametrize("problem, expected", [
    ("missing data", "no such folder"),
    ("too few images", "need at least 4 images"),
    ("corrupt style", "style image"),
    ("output is a folder", "is a folder"),
    ("unwritable output", "cannot write"),
])
def test_train_command_bad_inputs_are_one_line_errors(problem, expected, photos, style_files,
                                                      tmp_path, capsys):
    styles, data, output = list(style_files), photos, tmp_path / "m.jxs"
    if problem == "missing data":
        data = tmp_path / "nowhere"
    elif problem == "too few images":
        data = tmp_path / "few"
        for i in range(3):
            write_png(data / f"{i}.png", i)
    elif problem == "corrupt style":
        styles[1] = tmp_path / "bad.png"
        styles[1].write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 10)
    elif problem == "output is a folder":
        output = tmp_path
    elif problem == "unwritable output":
        (tmp_path / "file").write_text("")
        output = tmp_path / "file" / "m.jxs"
    code, _, err = run_cli(capsys, "train", *styles, "--data", data, "-o", output,
                           *TRAIN_FLAGS, "--steps", "1")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert not output.is_file()
