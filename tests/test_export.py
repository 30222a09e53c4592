"""`jaxstyle export`: ONNX and serialized StableHLO files run elsewhere equal `jaxstyle apply`.

StableHLO is read back by `jax.export.deserialize` in a fresh process; ONNX by onnxruntime
(the `export` extra, which the README's test command installs). Photos are real, at sizes
the export never saw: the files have symbolic N, H and W.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import EXPORTS, device_script
from jaxstyle.arbitrary.apply import apply_any, load_builtin_decoder
from jaxstyle.cli import main
from jaxstyle.demo import DEMO_CONTENT as PHOTO  # Chelsea the cat, CC0: a real photo
from jaxstyle.demo import DEMO_STYLE as PAINTING  # The Starry Night, public domain
from jaxstyle.feedforward.apply import apply_model, load_resolved
from jaxstyle.images import load_image, resize

FRESH_PROCESS = """
import sys, jax, numpy as np
data = np.load(sys.argv[2])
exported = jax.export.deserialize(open(sys.argv[1], "rb").read())
out = {key: np.asarray(exported.call(*[data[f"{key}_{i}"] for i in range(int(data[f"{key}_n"]))]))
       for key in data["keys"]}
np.savez(sys.argv[3], **out)
"""


def photo_at(height: int, width: int) -> np.ndarray:
    return resize(load_image(PHOTO), (height, width))


def export(tmp_path, *args) -> tuple[int, str]:
    import contextlib
    import io

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = main(["export", *map(str, args), "-q"])
    return code, errors.getvalue()


def run_fresh(model: Path, calls: dict[str, list[np.ndarray]], tmp_path) -> dict:
    """Each call's inputs through `jax.export.deserialize(model)` in a new interpreter."""
    feeds = {"keys": np.array(list(calls))}
    for key, arrays in calls.items():
        feeds[f"{key}_n"] = np.array(len(arrays))
        feeds.update({f"{key}_{i}": a for i, a in enumerate(arrays)})
    np.savez(tmp_path / "in.npz", **feeds)
    command = [sys.executable, "-c", FRESH_PROCESS, model, tmp_path / "in.npz",
               tmp_path / "out.npz"]
    done = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=600,
                          env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(np.load(tmp_path / "out.npz"))


@pytest.fixture(scope="module")
def exported_files() -> Path:
    """The folder of tests/scripts/export_models.py's files (`jaxstyle export` of the shipped
    models), converted in a process of its own while the other tests ran."""
    done = device_script("export_models")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, result in results.items():
        if name.endswith(".stablehlo") or name.endswith(".bin"):
            assert result["code"] == 0, (name, result["stderr"])
    return Path(EXPORTS)


def exported(folder: Path, name: str) -> Path:
    if not (folder / name).exists():
        pytest.importorskip("jax2onnx")
        pytest.fail(f"{name} was not exported")
    return folder / name


def test_stablehlo_files_run_in_a_fresh_process_at_sizes_never_traced(exported_files,
                                                                       tmp_path):
    metadata = json.loads((exported_files / "p.stablehlo.json").read_text())
    assert metadata["styles"] == ["starry_night", "shipwreck", "woman_with_hat"]
    assert metadata["inputs"] == {"photos": "n, h, w, 3", "style_weights": "3"}
    params, header, _ = load_resolved("paintings")
    small, tall = photo_at(45, 67), photo_at(80, 52)
    blend = np.array([0.2, 0.5, 0.3], np.float32)
    out = run_fresh(exported_files / "p.stablehlo", {
        "one": [small[None], np.array([0, 1, 0], np.float32)],
        "blend": [np.stack([tall, tall]), blend * 4]}, tmp_path)  # normalised inside
    assert out["one"].shape == (1, 45, 67, 3) and out["blend"].shape == (2, 80, 52, 3)
    expected = apply_model(params, header, small, style="shipwreck")
    assert np.abs(out["one"][0] - expected).max() <= 1e-5
    assert np.abs(out["blend"][1] - apply_model(params, header, tall, blend=blend)).max() <= 1e-5
    decoder, decoder_header = load_builtin_decoder()
    painting = load_image(PAINTING, 64)
    out = run_fresh(exported_files / "any.bin", {"any": [small[None], painting[None]]},
                    tmp_path)
    expected = apply_any(None, decoder, decoder_header, small, [painting])
    # `apply` runs a landscape photo transposed (faster on XLA CPU); the file runs it as it is.
    assert np.abs(out["any"][0] - expected).max() <= 2e-5


def onnx_session(path: Path):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_engine_2_equals_apply_at_two_sizes_for_a_style_and_a_blend(exported_files):
    every = onnx_session(exported(exported_files, "p.onnx"))
    assert [i.name for i in every.get_inputs()] == ["photos", "style_weights"]
    metadata = every.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["styles"]) == ["starry_night", "shipwreck", "woman_with_hat"]
    params, header, _ = load_resolved("paintings")
    for (height, width), blend in (((333, 500), [0.6, 0.0, 0.4]), ((1024, 768), [0, 0, 1])):
        photo = photo_at(height, width)
        out = every.run(None, {"photos": photo[None],
                               "style_weights": np.asarray(blend, np.float32)})[0][0]
        assert out.shape == photo.shape
        assert np.abs(out - apply_model(params, header, photo, blend=blend)).max() <= 2 / 255


def test_onnx_engine_3_with_the_painting_as_input_or_baked_in(exported_files):
    decoder, header = load_builtin_decoder()
    painting = load_image(PAINTING, 64)
    photo = photo_at(333, 500)
    either = onnx_session(exported(exported_files, "any.onnx"))
    out = either.run(None, {"photos": photo[None], "style": painting[None]})[0][0]
    assert np.abs(out - apply_any(None, decoder, header, photo, [painting])).max() <= 2 / 255
    baked = onnx_session(exported(exported_files, "baked.onnx"))
    out = baked.run(None, {"photos": photo[None]})[0][0]
    expected = apply_any(None, decoder, header, photo, [painting], alpha=0.7)
    assert np.abs(out - expected).max() <= 2 / 255
    assert np.abs(out - photo).mean() > 0.02  # it painted


def test_bad_exports_are_one_line_and_leave_no_file(tmp_path, capsys, monkeypatch):
    cases = [(("paintings", "--style", "sunflowers"), "sunflowers"),
             (("paintings", "--style-blend", "1", "2"), "3"),
             (("paintings", "--style-image", "x.png"), "--style or --style-blend"),
             (("any", "--style", "starry_night"), "--style-image"),
             (("wct",), "baked in (--style-image)"),
             (("paintings", "--whitening", "eigh"), "--style or --style-blend"),
             (("paintings", "--strength", "2"), "strength")]
    out = tmp_path / "m.stablehlo"
    for args, message in cases:
        code, err = export(tmp_path, *args, "-o", out)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, err)
        assert message in lines[0], (args, lines[0])
        assert not out.exists() and not list(tmp_path.glob(".*.part"))
    corrupt = tmp_path / "corrupt.jxs"
    corrupt.write_bytes(b"JXS not really a model" * 10)
    code, err = export(tmp_path, corrupt, "-o", out)
    assert code == 2 and err.startswith("error: ") and not out.exists()
    code, err = export(tmp_path, "paintings", "-o", tmp_path / "m.png")
    assert code == 2 and "--format" in err
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # the export extra not installed
    code, err = export(tmp_path, "paintings", "-o", tmp_path / "m.onnx")
    assert code == 2 and 'pip install "jaxstyle[export]"' in err
    assert not (tmp_path / "m.onnx").exists()


def test_an_existing_output_is_replaced_whole_by_a_fixed_style(tmp_path, rng):
    import jax

    out = tmp_path / "m.stablehlo"
    out.write_bytes(b"old")
    code, err = export(tmp_path, "starry_night", "-o", out, "--strength", 0.8)
    assert code == 0, err
    assert not list(tmp_path.glob(".*.part"))
    exported = jax.export.deserialize(out.read_bytes())  # the style and strength are inside
    photo = rng.uniform(size=(37, 50, 3)).astype(np.float32)
    params, header, _ = load_resolved("paintings")
    expected = apply_model(params, header, photo, style="starry_night", strength=0.8)
    assert np.abs(np.asarray(exported.call(photo[None]))[0] - expected).max() <= 1e-5


@pytest.mark.integration
def test_any_vgg_and_wct_export_with_the_real_vgg19(tmp_path, real_params):
    import jax

    from jaxstyle.arbitrary.decoderfile import load_decoder
    from jaxstyle.feedforward.apply import resolve_model
    out = tmp_path / "any-vgg.stablehlo"
    code, err = export(tmp_path, "any-vgg", "-o", out)
    assert code == 0, err
    params, header = load_decoder(resolve_model("any-vgg")[0])
    photo, painting = photo_at(40, 56), load_image(PAINTING, 64)
    got = np.asarray(jax.export.deserialize(out.read_bytes()).call(photo[None],
                                                                    painting[None]))[0]
    expected = apply_any(real_params, params, header, photo, [painting])  # as `apply` does
    assert np.abs(got - expected).max() <= 2e-5
    # WCT, its painting baked in: StableHLO whitens by eigendecomposition, as apply does.
    code, err = export(tmp_path, "wct", "-o", tmp_path / "wct.onnx", "--whitening", "eigh",
                       "--style-image", PAINTING)
    assert code == 2 and "StableHLO only" in err
    out = tmp_path / "wct.stablehlo"
    code, err = export(tmp_path, "wct", "-o", out, "--style-image", PAINTING, "--style-size", 64)
    assert code == 0, err
    params, header = load_decoder(resolve_model("wct")[0])
    # WCT's whitening (an eigendecomposition of each photo's covariance) magnifies float
    # rounding: the file's convs (XLA's default CPU path) against apply's give, on a portrait
    # photo, 2e-4 on an AVX-512 EPYC and 1.003e-3 on an AVX2 one (other conv kernels), and on
    # a landscape photo, which apply runs transposed, 3e-3. The bound, 2e-3, is about half of
    # 1/255 and a tenth of the 0.02 the picture moves from the photo.
    portrait = photo_at(56, 40)
    got = np.asarray(jax.export.deserialize(out.read_bytes()).call(portrait[None]))[0]
    expected = apply_any(real_params, params, header, portrait, [painting])
    assert np.abs(got - expected).max() <= 2e-3 and np.abs(got - portrait).mean() > 0.02
    # ONNX whitens by Newton-Schulz iterations (matrix products): within 2/255 of apply's
    # float32 eigendecomposition at the sizes, both orientations (0.3/255 measured;
    # against a float64 one, 0.05/255, where apply's is 0.26/255). On maps of a few dozen
    # positions (photos under ~64 px) the two part by up to 3/255: BENCHMARKS.md, "Export".
    import onnxruntime

    out = tmp_path / "wct.onnx"
    code, err = export(tmp_path, "wct", "-o", out, "--style-image", PAINTING, "--style-size", 64)
    assert code == 0, err
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["levels"]) == [4, 1]
    for size in ((333, 500), (500, 333)):
        photo = photo_at(*size)
        got = session.run(None, {"photos": photo[None]})[0][0]
        expected = apply_any(real_params, params, header, photo, [painting])
        assert np.abs(got - expected).max() <= 2 / 255 and np.abs(got - photo).mean() > 0.02
