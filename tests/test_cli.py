"""The command line as a user meets it: subprocesses, exit codes, one-line errors."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from jaxstyle.cli import main

ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "JAXSTYLE_NO_DOWNLOAD": "1"}


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "jaxstyle", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, pattern):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert pattern in lines[-1], lines[-1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / "content.png")
    Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(folder / "style.jpg")
    Image.fromarray(rng.integers(0, 255, (20, 60, 3), dtype=np.uint8)).save(folder / "thin.png")
    Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(folder / "big.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    (folder / "notes.txt").write_text("not an image")
    (folder / "weights.h5").write_text("not weights")
    return folder


def test_version_and_help():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("jaxstyle ")
    for command in ("stylize", "demo", "weights", "bench"):
        result = run(command, "--help")
        assert result.returncode == 0 and "examples:" in result.stdout, command


@pytest.mark.parametrize("case, pattern", [
    ("missing", "no such file"),
    ("corrupt", "corrupt"),
    ("text", "not an image"),
    ("thin", "at least 32 px"),
    ("big", "pixel limit"),
])
def test_bad_content_files(inputs, tmp_path, case, pattern):
    files = {"missing": inputs / "absent.png", "corrupt": inputs / "corrupt.png",
             "text": inputs / "notes.txt", "thin": inputs / "thin.png", "big": inputs / "big.png"}
    out = tmp_path / "out.png"
    out.write_bytes(b"old result")
    result = run("stylize", files[case], inputs / "style.jpg", "-o", out, "--max-pixels", 100_000)
    assert_one_line_error(result, pattern)
    assert out.read_bytes() == b"old result"  # an existing output stays untouched


@pytest.mark.parametrize("options, pattern", [
    (["--style-layers", "block1_conv1,block9_conv9"], "unknown layer 'block9_conv9'"),
    (["--content-weight", "-1"], "content_weight must be"),
    (["--tv-weight", "inf"], "must be a finite number"),
    (["--weights", "WEIGHTS"], "not an HDF5 file"),
    (["--init", "ABSENT"], "init image"),
])
def test_bad_options(inputs, tmp_path, options, pattern):
    options = [str(inputs / "weights.h5") if o == "WEIGHTS" else
               str(inputs / "absent.png") if o == "ABSENT" else o for o in options]
    result = run("stylize", inputs / "content.png", inputs / "style.jpg", "-o",
                 tmp_path / "out.png", *options)
    assert_one_line_error(result, pattern)
    assert not (tmp_path / "out.png").exists()


def test_unwritable_output_and_output_equal_to_input(inputs, tmp_path):
    result = run("stylize", inputs / "content.png", inputs / "style.jpg", "-o",
                 inputs / "notes.txt" / "out.png")
    assert_one_line_error(result, "cannot create folder")
    result = run("stylize", inputs / "content.png", inputs / "style.jpg", "-o",
                 inputs / "content.png")
    assert_one_line_error(result, "is also an input")
    result = run("stylize", inputs / "content.png", inputs / "style.jpg", "-o", tmp_path / "x.gif2")
    assert_one_line_error(result, "unknown image type")


def test_stylize_writes_output_checkpoint_and_steps(inputs, tmp_path, tiny_weights_file):
    out = tmp_path / "result.jpg"
    ckpt = tmp_path / "run.ckpt"
    result = run("stylize", inputs / "content.png", inputs / "style.jpg", "-o", out,
                 "--weights", tiny_weights_file, "--epochs", 2, "--steps-per-epoch", 2,
                 "--save-every", 2, "--checkpoint", ckpt)
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (48, 40)
    assert sorted(p.name for p in (tmp_path / "result_steps").iterdir()) == [
        "result_00002.png", "result_00004.png"]
    assert "epoch 2/2" in result.stderr and ckpt.is_file()
    resumed = run("stylize", inputs / "content.png", inputs / "style.jpg", "-o", out,
                  "--weights", tiny_weights_file, "--epochs", 3, "--steps-per-epoch", 2,
                  "--resume", ckpt, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.strip() == ""  # --quiet prints only errors


def test_non_finite_loss_keeps_last_image(inputs, tmp_path, tiny_weights_file):
    out = tmp_path / "nan.png"
    result = run("stylize", inputs / "content.png", inputs / "style.jpg", "-o", out,
                 "--weights", tiny_weights_file, "--steps", 3, "--content-weight", "1e38",
                 "--style-weight", "1e38", "--tv-weight", "1e38")
    assert_one_line_error(result, "non-finite")
    assert out.is_file()
    assert np.isfinite(np.asarray(Image.open(out), np.float32)).all()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_image_and_a_resumable_checkpoint(inputs, tmp_path,
                                                                  tiny_weights_file, signum,
                                                                  code):
    # SIGTERM is how schedulers (Kubernetes, TPU VMs, batch queues) stop a job: as Ctrl-C.
    from jaxstyle import StyleConfig
    from jaxstyle.gatys import load_state
    from jaxstyle.gatys.loop import saved_image_size
    from jaxstyle.gatys.pipeline import resume_point, resume_template, run_sizes, scale_steps

    out, ckpt = tmp_path / "partial.png", tmp_path / "run.ckpt"
    steps = tmp_path / "steps"
    # Two scales (48x40 -> 38x32 first): stopped in the coarse one.
    process = subprocess.Popen(
        [sys.executable, "-m", "jaxstyle", "stylize", str(inputs / "content.png"),
         str(inputs / "style.jpg"), "-o", str(out), "--weights", str(tiny_weights_file),
         "--steps", "100000", "--scales", "2", "--scale-factor", "1.25", "--checkpoint",
         str(ckpt), "--save-every", "1", "--save-dir", str(steps), "--quiet"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (steps.is_dir() and any(steps.iterdir())) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)  # generous: CI machines are shared
    assert process.returncode == code, stderr
    assert f"interrupted by {signum.name} at step" in stderr and "Traceback" not in stderr
    assert f"checkpoint {ckpt}" in stderr
    assert Image.open(out).size == (48, 40)
    assert not list(tmp_path.glob(".*.part"))
    # The checkpoint is of the coarse scale, and `--resume` would take it up there.
    cfg = StyleConfig(steps=100000, scales=2, scale_factor=1.25)
    assert saved_image_size(ckpt) == (32, 38)
    state = load_state(ckpt, resume_template((32, 38), np.zeros((40, 48, 3), np.float32), cfg))
    assert resume_point((32, 38), int(state.step), run_sizes((40, 48), cfg),
                        scale_steps(cfg)) == 0 and int(state.step) >= 1


def test_demo_at_tiny_size(tmp_path, tiny_weights_file):
    out = tmp_path / "demo.png"
    result = run("demo", "-o", out, "--max-dim", 64, "--steps", 2, "--weights", tiny_weights_file)
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (64, 43)  # the packaged photo is 451x300
    assert "jaxstyle demo --max-dim 512" in result.stderr


def test_quick_demo_refines_the_shipped_networks_picture(tmp_path, tiny_weights_file):
    from jaxstyle.cli.onepass import make_one_pass
    from jaxstyle.demo import demo_content

    out = tmp_path / "quick.png"
    result = run("demo", "--quick", "-o", out, "--max-dim", 64, "--steps", 2, "--weights",
                 tiny_weights_file)
    assert result.returncode == 0, result.stderr
    assert "starting from paintings:starry_night's one-pass result" in result.stderr
    photo = demo_content(64)
    painted = make_one_pass("paintings:starry_night", [], None, lambda: None)(photo, [photo])
    refined = np.asarray(Image.open(out).convert("RGB"), np.float32) / 255
    # Two Adam steps (lr 0.02) move each pixel at most ~0.04 from the one-pass picture,
    # which itself is far from the photo.
    assert np.abs(refined - painted).max() <= 2 * 0.02 + 2 / 255
    assert np.abs(painted - photo).mean() > 0.05


def test_main_returns_exit_code_without_subprocess(inputs, tmp_path, capsys):
    code = main(["stylize", str(inputs / "absent.png"), str(inputs / "style.jpg"), "-o",
                 str(tmp_path / "o.png")])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: content image")


@pytest.mark.parametrize("options, pattern", [
    (["--style-blend", "1", "1", "1"], "3 weights for 2 style images"),
    (["--style-blend", "1", "-1"], "style_blend must be"),
    (["--mask", "MASK", "--mask", "MASK", "--mask", "MASK"], "3 masks for 2 styles"),
    (["--style-layer-weights", "1,2"], "2 weights for 5 layers"),
    (["--scales", "3", "--scale-steps", "5", "5"], "scale_steps has 2 entries for 3 scales"),
    (["--scales", "3"], "coarsest image"),
    (["--ema", "1.5"], "ema decay"),
    (["--preserve-color", "sepia"], "invalid choice"),
])
def test_bad_combinations_of_controls(inputs, tmp_path, tiny_weights_file, options, pattern):
    options = [str(inputs / "content.png") if o == "MASK" else o for o in options]
    result = run("stylize", inputs / "content.png", inputs / "style.jpg", inputs / "style.jpg",
                 "-o", tmp_path / "out.png", "--weights", tiny_weights_file, "--steps", 1,
                 *options)
    assert_one_line_error(result, pattern)
    assert not (tmp_path / "out.png").exists()


def test_blend_one_zero_matches_single_style(inputs, tmp_path, tiny_weights_file):
    common = ["--weights", tiny_weights_file, "--steps", 3, "--quiet"]
    single = run("stylize", inputs / "content.png", inputs / "style.jpg", "-o",
                 tmp_path / "single.png", *common)
    blended = run("stylize", inputs / "content.png", inputs / "style.jpg", inputs / "content.png",
                  "-o", tmp_path / "blend.png", "--style-blend", 1, 0, *common)
    assert single.returncode == 0 and blended.returncode == 0, blended.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "single.png")),
                                  np.asarray(Image.open(tmp_path / "blend.png")))


def test_controls_run_end_to_end(inputs, tmp_path, tiny_weights_file):
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (40, 1))).save(mask)
    result = run("stylize", inputs / "content.png", inputs / "style.jpg", inputs / "style.jpg",
                 "-o", tmp_path / "out.webp", "--weights", tiny_weights_file, "--steps", 2,
                 "--mask", mask, "--preserve-color", "histogram", "--ema", "0.9",
                 "--optimizer", "lbfgs", "--content-layer-weights", "1")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.webp").size == (48, 40)
