"""Feed-forward benchmark: the harness reports sane rows, the peers compute jaxstyle's network,
and fastconv's forms equal lax's convolution."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle import fastconv
from jaxstyle.bench.model_bench import flops_per_call, format_model_table, run_model_bench
from jaxstyle.errors import ConfigError
from jaxstyle.feedforward.network import TransformerNet, flops_per_pixel, init_params

NUM_STYLES, WIDTH = 3, 0.25


@pytest.fixture(scope="module")
def random_net_params():
    """Width-0.25, 3-style params with every leaf perturbed, so each style's norm differs."""
    rng = np.random.default_rng(0)
    params = init_params(0, NUM_STYLES, WIDTH)
    return jax.tree.map(
        lambda leaf: np.asarray(leaf) + 0.3 * rng.standard_normal(leaf.shape).astype(np.float32),
        params)


def jax_output(params, images, style_weights):
    forward = jax.jit(TransformerNet(NUM_STYLES, WIDTH).apply)
    return np.asarray(forward({"params": params}, images, style_weights))


def inputs(rng, batch, height, width):
    images = rng.uniform(size=(batch, height, width, 3)).astype(np.float32)
    style_weights = rng.dirichlet(np.ones(NUM_STYLES), size=batch).astype(np.float32)
    return images, style_weights


def test_model_bench_rows_are_sane():
    params = init_params(0, 1, WIDTH)
    report = run_model_bench(params, 1, WIDTH, [32], batches=[2], conv_paths=["default", "no-ynn"],
                             steps=2, warmup=1, block=1, log=lambda message: None)
    rows = report["results"]
    assert [(r["precision"], r["xla_conv"]) for r in rows] == [
        ("fp32", "default"), ("fp32", "no-ynn"), ("bf16", "default"), ("bf16", "no-ynn")]
    for row in rows:
        assert row["impl"] == "jaxstyle" and row["calls"] == 2
        assert (row["size"], row["batch"]) == (32, 2)
        assert 0 < row["min_ms"] <= row["ms_per_call"]
        assert row["ms_per_image"] == pytest.approx(row["ms_per_call"] / 2)
        assert row["images_per_s"] == pytest.approx(1e3 / row["ms_per_image"])
        flops = flops_per_pixel(WIDTH) * 32 * 32 * 2
        assert row["flops_per_call"] == flops
        assert row["gflops"] == pytest.approx(flops / row["ms_per_call"] / 1e6)
        assert row["compile_s"] > 0 and row["temp_bytes"] >= 0
    # Differences from the first row (fp32, default conv path): rounding only, bf16's larger.
    assert rows[0]["max_abs_diff"] == 0 and rows[1]["max_abs_diff"] < 1e-5
    assert max(rows[2]["max_abs_diff"], rows[3]["max_abs_diff"]) < 0.05
    assert report["config"]["precisions"] == ["fp32", "bf16"]
    assert "peak_memory_bytes" in rows[0]
    table = format_model_table(rows)
    assert "GFLOP/s" in table and len(table.splitlines()) == 2 + len(rows)


def test_flops_per_call_counts_the_padded_size():
    assert flops_per_call(0.5, 64, 64, 2) == flops_per_pixel(0.5) * 64 * 64 * 2
    assert flops_per_call(0.5, 37, 45, 1) == flops_per_pixel(0.5) * 40 * 48


def test_model_bench_rejects_bad_settings():
    params = init_params(0, 1, WIDTH)
    with pytest.raises(ConfigError, match="32 px minimum"):
        run_model_bench(params, 1, WIDTH, [16], steps=1, log=lambda message: None)
    with pytest.raises(ConfigError, match="precisions"):
        run_model_bench(params, 1, WIDTH, [32], precisions=["fp16"], steps=1)
    with pytest.raises(ConfigError, match="conv paths"):
        run_model_bench(params, 1, WIDTH, [32], conv_paths=["eigen"], steps=1)


@pytest.mark.parametrize("height,width", [(40, 52), (37, 45)])
def test_torch_and_onnx_nets_match_jaxstyle(random_net_params, tmp_path, height, width):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from jaxstyle.bench.peers import torch_net

    images, style_weights = inputs(np.random.default_rng(1), 2, height, width)
    expected = jax_output(random_net_params, images, style_weights)
    module = torch_net.build_torch_net(random_net_params, NUM_STYLES, WIDTH)
    with torch.inference_mode():
        torch_out = torch_net.to_nhwc(module(torch_net.to_nchw(images),
                                             torch.from_numpy(style_weights)))
    np.testing.assert_allclose(torch_out, expected, atol=1e-4)

    path = torch_net.export_onnx(module, tmp_path / "net.onnx", height, width, batch=2)
    session = torch_net.onnx_session(path)
    (onnx_out,) = session.run(None, {"images": np.ascontiguousarray(images.transpose(0, 3, 1, 2)),
                                     "style_weights": style_weights})
    np.testing.assert_allclose(onnx_out.transpose(0, 2, 3, 1), expected, atol=1e-4)


def test_torch_net_rejects_params_of_another_width(random_net_params):
    pytest.importorskip("torch")
    from jaxstyle.bench.peers import torch_net

    with pytest.raises(ConfigError, match="layer encode0/conv/kernel"):
        torch_net.build_torch_net(random_net_params, NUM_STYLES, 0.5)


def test_model_bench_with_peers_reports_ratios():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    params = init_params(0, 1, WIDTH)
    report = run_model_bench(params, 1, WIDTH, [32], precisions=["fp32"],
                             peers=["torch", "onnx"], steps=2, warmup=0, block=1,
                             log=lambda message: None)
    jax_row, torch_row, onnx_row = report["results"]
    assert (torch_row["impl"], onnx_row["impl"]) == ("torch", "onnx")
    assert torch_row["max_abs_diff"] < 1e-4 and onnx_row["max_abs_diff"] < 1e-4
    assert jax_row["ratio_to_peers"]["onnx"] == pytest.approx(
        jax_row["ms_per_call"] / onnx_row["ms_per_call"])
    assert "/onnx" in format_model_table(report["results"])


@pytest.mark.parametrize("cin,cout,size", [(3, 8, 16), (8, 3, 12), (5, 7, 10)])
def test_conv_space_to_depth_equals_lax_conv(cin, cout, size):
    rng = np.random.default_rng(cin)
    x = rng.standard_normal((2, size + 8, size + 10, cin)).astype(np.float32)
    kernel = (rng.standard_normal((9, 9, cin, cout)) / np.sqrt(81 * cin)).astype(np.float32)
    expected = np.asarray(jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    actual = np.asarray(jax.jit(fastconv.conv_space_to_depth)(x, kernel))
    assert actual.shape == expected.shape == (2, size, size + 2, cout)
    np.testing.assert_allclose(actual, expected, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jax.jit(fastconv.conv)(x, kernel)), expected,
                               atol=2e-5, rtol=1e-5)


def test_space_to_depth_round_trips_and_kernel_taps_are_placed():
    x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
    np.testing.assert_array_equal(fastconv.depth_to_space(fastconv.space_to_depth(x), 3), x)
    kernel = jnp.arange(3 * 3, dtype=jnp.float32).reshape(3, 3, 1, 1) + 1
    blocks = np.asarray(fastconv.space_to_depth_kernel(kernel))
    assert blocks.shape == (2, 2, 4, 4)
    # Each of the 9 kernel taps appears once per output phase (4 phases), the rest are zeros.
    assert np.count_nonzero(blocks) == 4 * 9 and blocks.sum() == 4 * kernel.sum()


def test_conv_space_to_depth_rejects_odd_outputs():
    x = jnp.zeros((1, 17, 16, 1))
    with pytest.raises(ValueError, match="even output"):
        fastconv.conv_space_to_depth(x, jnp.zeros((9, 9, 1, 1)))
    # conv() falls back to lax for odd outputs, strides and small kernels.
    assert fastconv.conv(x, jnp.zeros((9, 9, 1, 1))).shape == (1, 9, 8, 1)
    assert fastconv.conv(x, jnp.zeros((3, 3, 1, 1)), stride=2).shape == (1, 8, 7, 1)


def test_no_ynn_options_compile_an_equal_conv():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 34, 34, 16)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 16, 8)).astype(np.float32)
    conv = lambda x, k: fastconv.conv_valid(x, k)
    expected = np.asarray(jax.jit(conv)(x, kernel))
    options = fastconv.cpu_conv_compiler_options()
    compiled = jax.jit(conv, compiler_options=options or None).lower(x, kernel).compile()
    if options:
        assert "ynn_fusion" not in compiled.as_text()
    np.testing.assert_allclose(np.asarray(compiled(x, kernel)), expected, rtol=1e-5, atol=1e-5)


def test_model_bench_reports_a_missing_peer(monkeypatch):
    from jaxstyle.bench import model_bench
    from jaxstyle.bench.peers import PeerUnavailable

    def unavailable(*args):
        raise PeerUnavailable("onnxruntime is not installed")

    monkeypatch.setitem(model_bench._PEER_RUNNERS, "onnx", unavailable)
    messages = []
    report = run_model_bench(init_params(0, 1, WIDTH), 1, WIDTH, [32], precisions=["fp32"],
                             peers=["onnx"], steps=1, warmup=0, log=messages.append)
    jax_row, skipped = report["results"]
    assert jax_row["ratio_to_peers"] == {}
    assert skipped == {"size": 32, "batch": 1, "impl": "onnx",
                       "skipped": "onnxruntime is not installed"}
    assert any("peer onnx skipped" in message for message in messages)
    assert "skipped" in format_model_table(report["results"])


def test_bench_model_command_loads_a_model_file(tmp_path, random_net_params, capsys):
    from jaxstyle.cli import main
    from jaxstyle.feedforward.modelfile import save_model

    model = save_model(tmp_path / "tiny.jaxstyle", random_net_params, {"width": WIDTH})
    out = tmp_path / "bench.json"
    assert main(["bench", "model", "--model", str(model), "--sizes", "32", "--precision",
                 "fp32", "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"width {WIDTH}, {NUM_STYLES} style(s)" in printed and "ms/call" in printed
    report = json.loads(out.read_text())
    assert report["config"]["num_styles"] == NUM_STYLES and report["config"]["width"] == WIDTH
    assert [row["impl"] for row in report["results"]] == ["jaxstyle"]
