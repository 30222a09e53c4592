"""Feed-forward network: shapes at any size, width scaling, conditional instance norm, and the
model file's round trip and its refusal of every kind of damaged file."""

from __future__ import annotations

import functools
import json
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from PIL import Image

from conftest import random_image
from jaxstyle.errors import JaxstyleError
from jaxstyle.feedforward import (
                                  ModelError,
                                  TransformerNet,
                                  channel_counts,
                                  count_params,
                                  describe,
                                  flops_per_pixel,
                                  init_params,
                                  instance_norm,
                                  load_model,
                                  param_shapes,
                                  save_model,
                                  select_styles,
                                  style_index,
                                  style_params_paths,
                                  style_record,
)
from jaxstyle.feedforward.apply import make_stylizer
from jaxstyle.feedforward.modelfile import MAGIC
from jaxstyle.feedforward.network import IDENTITY_CLIP

WIDTH = 0.125


@functools.lru_cache
def jitted_apply(num_styles, width, dtype):
    return jax.jit(TransformerNet(num_styles=num_styles, width=width, dtype=dtype).apply)


def run_net(params, images, weights, width=WIDTH, dtype=jnp.float32):
    """Apply a TransformerNet whose S is read from the weights: (N,H,W,3), (N,S) -> (N,H,W,3)."""
    weights = jnp.asarray(weights, jnp.float32)
    apply = jitted_apply(weights.shape[1], width, dtype)
    return np.asarray(apply({"params": params}, jnp.asarray(images), weights))


def randomize_style_params(params, seed=0):
    """Every norm's scale and shift replaced by distinct random values, so styles differ."""
    rng = np.random.default_rng(seed)
    flat = traverse_util.flatten_dict(params)
    for path in style_params_paths(params):
        center = 1.0 if path[-1] == "scale" else 0.0
        flat[path] = (center + 0.5 * rng.standard_normal(flat[path].shape)).astype(np.float32)
    return traverse_util.unflatten_dict(flat)


@pytest.fixture(scope="module")
def three_style_params():
    return randomize_style_params(init_params(0, 3, WIDTH, size=32))


# --- network ---------------------------------------------------------------------------------

@pytest.mark.parametrize("height, width", [(33, 47), (32, 32), (50, 61)])
def test_output_has_input_size_and_range(rng, height, width):
    params = init_params(1, 1, WIDTH, size=32)
    out = run_net(params, random_image(rng, height, width), [[1.0]])
    assert out.shape == (1, height, width, 3)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.std() > 1e-4  # not a constant image


def test_too_small_input_is_refused(rng):
    params = init_params(1, 1, WIDTH, size=32)
    with pytest.raises(ValueError, match="at least 32x32"):
        run_net(params, random_image(rng, 31, 40), [[1.0]])


def test_odd_size_crop_matches_the_padding(rng):
    """The net pads 34x41 to 36x44 by reflection (rows 1+1, columns 1+2) and crops the same
    margins off: running it on that padded image and cropping by hand must agree exactly."""
    params = init_params(2, 1, WIDTH, size=32)
    image = random_image(rng, 34, 41)
    padded = np.pad(image, ((0, 0), (1, 1), (1, 2), (0, 0)), mode="reflect")
    by_hand = run_net(params, padded, [[1.0]])[:, 1:35, 1:42]
    np.testing.assert_allclose(run_net(params, image, [[1.0]]), by_hand, rtol=1e-6, atol=1e-6)


def test_width_scales_channels():
    assert channel_counts(0.25) == (8, 16, 32)
    assert channel_counts(1.0) == (32, 64, 128)
    assert channel_counts(0.125) == (8, 8, 16)  # floored at 8
    params = traverse_util.flatten_dict(param_shapes(2, 0.25))
    assert params[("encode0", "conv", "kernel")].shape == (9, 9, 3, 8)
    assert params[("encode1", "conv", "kernel")].shape == (3, 3, 8, 16)
    assert params[("encode2", "conv", "kernel")].shape == (3, 3, 16, 32)
    assert params[("residual4", "second", "norm", "scale")].shape == (2, 32)
    assert params[("decode1", "conv", "kernel")].shape == (3, 3, 16, 8)
    assert params[("output", "kernel")].shape == (9, 9, 8, 3)


def test_param_count_and_layout():
    params = param_shapes(1, 1.0)
    # Johnson et al.'s network has about 1.68M parameters (ours: no conv biases before norms).
    assert count_params(params) == 1_677_635
    paths = style_params_paths(params)
    assert len(paths) == 2 * (3 + 2 * 5 + 2)  # scale and shift of every norm
    assert all(path[-1] in ("scale", "shift") and path[-2] == "norm" for path in paths)


def test_initial_values():
    params = init_params(0, 2, WIDTH, size=32)
    norm = params["residual2"]["first"]["norm"]
    np.testing.assert_array_equal(norm["scale"], 1.0)
    np.testing.assert_array_equal(norm["shift"], 0.0)
    np.testing.assert_array_equal(params["output"]["bias"], 0.0)
    kernel = np.asarray(params["residual2"]["first"]["conv"]["kernel"])  # fan-in 3*3*16
    assert np.std(kernel) == pytest.approx(np.sqrt(1 / 144), rel=0.2)
    assert np.abs(kernel.mean()) < 0.01
    again = init_params(0, 2, WIDTH, size=32)["residual2"]["first"]["conv"]["kernel"]
    np.testing.assert_array_equal(again, kernel)


def test_identity_start_returns_the_photo_before_training(rng):
    params = init_params(0, 2, WIDTH, size=32, identity_start=True)
    np.testing.assert_array_equal(params["output"]["kernel"], 0.0)
    image = random_image(rng, 33, 42)  # odd sizes: the padding must line up with the photo
    apply = jax.jit(TransformerNet(2, WIDTH, identity_start=True).apply)
    want = np.clip(image, IDENTITY_CLIP, 1 - IDENTITY_CLIP)
    for weights in ([[1.0, 0.0]], [[0.3, 0.7]]):
        out = np.asarray(apply({"params": params}, image, jnp.asarray(weights)))
        np.testing.assert_allclose(out, want, atol=1e-5)
    # The same params in a plain network are a sigmoid of zero: grey, not the photo.
    plain = np.asarray(jax.jit(TransformerNet(2, WIDTH).apply)(
        {"params": params}, image, jnp.asarray([[1.0, 0.0]])))
    np.testing.assert_allclose(plain, 0.5, atol=1e-6)
    # Training can still move every layer: the output conv has a gradient at step 0.
    loss = lambda p: apply({"params": p}, image, jnp.asarray([[1.0, 0.0]])).mean()
    assert float(jnp.abs(jax.grad(loss)(params)["output"]["kernel"]).max()) > 0


def test_flops_match_xla_cost_analysis():
    size = 64
    params = init_params(0, 1, WIDTH, size=32)
    compiled = jax.jit(TransformerNet(1, WIDTH).apply).lower(
        {"params": params}, jnp.zeros((1, size, size, 3)), jnp.ones((1, 1))).compile()
    cost = compiled.cost_analysis()
    xla_flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    # XLA also counts norms and activations, a few percent on top of the convs, and the 9x9
    # convs run as 5x5 convs over 2x2 blocks (fastconv), which multiply-add about 23% more.
    model = flops_per_pixel(WIDTH) * size * size
    assert 0.95 * model <= xla_flops <= 1.35 * model
    # Width 1 by hand: 9x9 3->32 full size, 3x3 32->64 at 1/4 of the pixels, 64->128 at 1/16,
    # ten 128->128 at 1/16, 128->64 at 1/4, 64->32 full size, 9x9 32->3 full size.
    by_hand = 2 * (81 * 3 * 32 + 9 * 32 * 64 / 4 + 9 * 64 * 128 / 16 + 10 * 9 * 128 * 128 / 16
                   + 9 * 128 * 64 / 4 + 9 * 64 * 32 + 81 * 32 * 3)
    assert flops_per_pixel(1.0) == by_hand == 307_584


def test_instance_norm_matches_numpy():
    rng = np.random.default_rng(3)
    x = (3.0 + 2.0 * rng.standard_normal((2, 5, 7, 4))).astype(np.float32)
    scale = rng.standard_normal((2, 4)).astype(np.float32)
    shift = rng.standard_normal((2, 4)).astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * scale[:, None, None] + shift[:, None, None]
    got = jax.jit(instance_norm)(x, scale, shift)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_one_hot_weights_equal_the_selected_style(rng, three_style_params):
    image = random_image(rng, 32, 36)
    mixed = run_net(three_style_params, image, [[0.0, 1.0, 0.0]])
    alone = run_net(select_styles(three_style_params, [1]), image, [[1.0]])
    np.testing.assert_allclose(mixed, alone, rtol=1e-6, atol=1e-6)
    first = run_net(three_style_params, image, [[1.0, 0.0, 0.0]])
    assert np.abs(first - mixed).max() > 1e-3  # the styles really differ


def test_half_mix_differs_from_both_styles(rng, three_style_params):
    image = random_image(rng, 32, 36)
    batch = np.concatenate([image] * 3)
    weights = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]
    style0, style1, half = run_net(three_style_params, batch, weights)
    assert np.abs(half - style0).max() > 1e-3
    assert np.abs(half - style1).max() > 1e-3


def test_select_styles_reorders_and_checks(three_style_params):
    picked = select_styles(three_style_params, [2, 0])
    scale = three_style_params["encode0"]["norm"]["scale"]
    np.testing.assert_array_equal(picked["encode0"]["norm"]["scale"], scale[[2, 0]])
    np.testing.assert_array_equal(picked["output"]["kernel"],
                                  three_style_params["output"]["kernel"])
    with pytest.raises(ValueError, match="style indices"):
        select_styles(three_style_params, [3])


def test_gradients_reach_only_the_used_styles(rng, three_style_params):
    image = jnp.asarray(random_image(rng, 32, 32))
    model = TransformerNet(3, WIDTH)
    weights = jnp.asarray([[0.3, 0.7, 0.0]])
    loss = lambda params: model.apply({"params": params}, image, weights).mean()
    grads = jax.jit(jax.grad(loss))(three_style_params)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(grads))
    scale_grad = np.asarray(grads["encode0"]["norm"]["scale"])
    assert np.abs(scale_grad[:2]).max() > 0
    np.testing.assert_array_equal(scale_grad[2], 0.0)
    assert np.abs(np.asarray(grads["encode0"]["conv"]["kernel"])).max() > 0


def test_bfloat16_compute_stays_close(rng, three_style_params):
    image = random_image(rng, 32, 32)
    full = run_net(three_style_params, image, [[0.0, 0.0, 1.0]])
    half = run_net(three_style_params, image, [[0.0, 0.0, 1.0]], dtype=jnp.bfloat16)
    assert half.dtype == np.float32
    assert np.abs(half - full).mean() < 0.02


# --- model file ------------------------------------------------------------------------------

def header_for(num_styles=2, width=WIDTH):
    styles = [{"name": name, "sha256": "0" * 64, "size": [32, 32]}
              for name in ("Starry Night", "Wave", "Scream")[:num_styles]]
    return {"width": width, "num_styles": num_styles, "styles": styles,
            "training": {"steps": 10, "lr": 1e-3}, "data_count": 7}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """(path, params) of a valid 2-style model file; tests copy it before damaging it."""
    params = randomize_style_params(init_params(4, 2, WIDTH, size=32), seed=5)
    path = save_model(tmp_path_factory.mktemp("model") / "two.jxs", params, header_for())
    return path, params


@pytest.fixture
def model_copy(saved_model, tmp_path):
    path = tmp_path / "damaged.jxs"
    path.write_bytes(saved_model[0].read_bytes())
    return path


def split_file(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    return json.loads(data[start:start + length]), data[start + length:]


def write_with_header(path, header_bytes: bytes, payload: bytes) -> None:
    path.write_bytes(MAGIC + struct.pack("<I", len(header_bytes)) + header_bytes + payload)


def rewrite_header(path, **changes) -> None:
    """Change header fields in place, keeping the payload (and so its checksum) valid."""
    header, payload = split_file(path.read_bytes())
    write_with_header(path, json.dumps({**header, **changes}).encode(), payload)


def test_round_trip(saved_model):
    path, params = saved_model
    loaded, header = load_model(path)
    flat, flat_loaded = (traverse_util.flatten_dict(tree) for tree in (params, loaded))
    assert flat.keys() == flat_loaded.keys()
    for key in flat:
        np.testing.assert_array_equal(flat_loaded[key], flat[key])
    assert header["format"] == 1
    assert header["architecture"] == "johnson2016-cin"
    assert header["width"] == WIDTH and header["num_styles"] == 2
    assert [style["name"] for style in header["styles"]] == ["Starry Night", "Wave"]
    assert header["training"] == {"steps": 10, "lr": 1e-3} and header["data_count"] == 7
    assert header["params_bytes"] == len(split_file(path.read_bytes())[1])
    assert len(header["params_sha256"]) == 64 and header["jaxstyle_version"]
    assert "Starry Night" in describe(header) and "width 0.125" in describe(header)


def test_loaded_model_runs_like_the_saved_one(rng, saved_model):
    path, params = saved_model
    loaded, _ = load_model(path)
    image = random_image(rng, 32, 32)
    np.testing.assert_array_equal(run_net(loaded, image, [[0.2, 0.8]]),
                                  run_net(params, image, [[0.2, 0.8]]))


def test_stylizer_reads_the_identity_start_from_the_header(rng, tmp_path):
    params = init_params(0, 1, WIDTH, size=32, identity_start=True)
    path = save_model(tmp_path / "id.jxs", params, {"width": WIDTH, "identity_start": True})
    loaded, header = load_model(path)
    image = random_image(rng, 32, 40)
    out = np.asarray(make_stylizer(loaded, header)(image, [[1.0]]))
    np.testing.assert_allclose(out, np.clip(image, IDENTITY_CLIP, 1 - IDENTITY_CLIP), atol=1e-5)
    header.pop("identity_start")  # a model saved before the option: a plain network
    np.testing.assert_allclose(np.asarray(make_stylizer(loaded, header)(image, [[1.0]])), 0.5,
                               atol=1e-6)


def expect_model_error(path, match):
    with pytest.raises(ModelError, match=match) as info:
        load_model(path)
    assert path.name in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, JaxstyleError)


def test_missing_file_and_folder(tmp_path):
    expect_model_error(tmp_path / "absent.jxs", "not found")
    (tmp_path / "folder.jxs").mkdir()
    expect_model_error(tmp_path / "folder.jxs", "is a folder")


@pytest.mark.parametrize("keep", [3, 20, 200, -1])
def test_truncated_file(model_copy, keep):
    data = model_copy.read_bytes()
    model_copy.write_bytes(data[:keep])
    expect_model_error(model_copy, "truncated")


def test_flipped_payload_byte(model_copy):
    data = bytearray(model_copy.read_bytes())
    data[-100] ^= 0x01
    model_copy.write_bytes(bytes(data))
    expect_model_error(model_copy, "checksum mismatch")


def test_trailing_bytes(model_copy):
    model_copy.write_bytes(model_copy.read_bytes() + b"\0")
    expect_model_error(model_copy, "unexpected bytes")


def test_text_and_png_are_not_models(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a model\n")
    expect_model_error(text, "not a jaxstyle model file")
    png = tmp_path / "picture.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png)
    expect_model_error(png, "not a jaxstyle model file")


def test_newer_layout_byte(model_copy):
    data = model_copy.read_bytes()
    model_copy.write_bytes(MAGIC[:-1] + b"\x02" + data[len(MAGIC):])
    expect_model_error(model_copy, "unsupported model layout 2")


def test_bad_header_json(model_copy):
    _, payload = split_file(model_copy.read_bytes())
    write_with_header(model_copy, b'{"format": 1, "width": ', payload)
    expect_model_error(model_copy, "not valid JSON")


@pytest.mark.parametrize("changes, match", [
    ({"format": 2}, "unsupported format version 2"),
    ({"architecture": "johnson2016-bn"}, "unsupported architecture"),
    ({"width": 0.25}, r"do not fit width 0.25 .*decode0/conv/kernel has shape \(3, 3, 16, 8\)"),
    ({"num_styles": 3}, "header lists 2 styles"),
    ({"num_styles": 3, "styles": []}, r"decode0/norm/scale has shape \(2, 8\), expected \(3, 8\)"),
    ({"width": "wide"}, "width must be a positive number"),
])
def test_header_that_does_not_fit(model_copy, changes, match):
    rewrite_header(model_copy, **changes)
    expect_model_error(model_copy, match)


def test_save_refuses_params_of_another_width(tmp_path, saved_model):
    _, params = saved_model
    with pytest.raises(ModelError, match="do not fit width 0.25"):
        save_model(tmp_path / "wrong.jxs", params, header_for(width=0.25))
    assert not (tmp_path / "wrong.jxs").exists()


def test_style_index():
    header = header_for(num_styles=3)
    assert style_index(header, "wave") == 1
    assert style_index(header, "STARRY night") == 0
    assert style_index(header, "2") == 2
    assert style_index(header, 2) == 2
    with pytest.raises(ModelError, match="available: 0 'Starry Night', 1 'Wave', 2 'Scream'"):
        style_index(header, "monet")
    with pytest.raises(ModelError, match="no style '3'"):
        style_index(header, 3)


def test_style_record_hashes_file_or_array(tmp_path):
    image = np.zeros((1, 40, 30, 3), np.float32)
    from_array = style_record("flat", image)
    assert from_array["size"] == [40, 30] and len(from_array["sha256"]) == 64
    assert style_record("flat", image + 0.5)["sha256"] != from_array["sha256"]
    file = tmp_path / "style.bin"
    file.write_bytes(b"abc")
    from_file = style_record("flat", image, file)
    assert from_file["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
