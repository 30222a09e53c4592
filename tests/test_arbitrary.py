"""Engine 3 (arbitrary style, AdaIN): statistics, controls, decoder, file, training, CLI."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from conftest import random_image, random_params
from jaxstyle.arbitrary.adain import StyleStats, adain, adain_target, channel_stats, stack_stats
from jaxstyle.arbitrary.apply import apply_any, region_masks
from jaxstyle.arbitrary.config import RECONSTRUCTION, DecoderConfig
from jaxstyle.arbitrary.decoder import (
    ENCODER_LAYER,
    FEATURE_MEANS,
    Decoder,
    decoder_channels,
    decoder_flops_per_pixel,
    init_decoder,
)
from jaxstyle.arbitrary.decoderfile import load_decoder, save_decoder
from jaxstyle.arbitrary.step import decoder_loss, gram_loss
from jaxstyle.arbitrary.train import train_decoder
from jaxstyle.arbitrary.transfer import (
    ArbitraryStylizer,
    encode,
    pad_for_encoder,
    runs_transposed,
    style_statistics,
    stylize_arrays,
    tile_windows,
)
from jaxstyle.errors import ConfigError
from jaxstyle.paramfile import ModelError
from jaxstyle.training import read_log

WIDTH = 0.125  # 32/16/8 channels: a decoder that runs in well under a second on a CPU


@pytest.fixture(scope="module")
def decoder():
    params = jax.tree.map(np.asarray, init_decoder(0, WIDTH))
    # The decoder divides its input by relu4_1's mean over real photos (~600); the tiny random
    # VGG gives O(1) features, so scale the first conv back up for the output to depend on them.
    params["conv0"]["kernel"] = params["conv0"]["kernel"] * FEATURE_MEANS[ENCODER_LAYER]
    return params, {"width": WIDTH}


# --- AdaIN against NumPy ------------------------------------------------------------------------

def test_channel_stats_match_numpy(rng):
    x = rng.normal(3.0, 2.0, size=(2, 5, 7, 4)).astype(np.float32)
    mean, std = channel_stats(jnp.asarray(x), eps=0.0)
    np.testing.assert_allclose(mean, x.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(std, x.std(axis=(1, 2)), rtol=1e-5)
    mask = (rng.uniform(size=(2, 5, 7)) > 0.5).astype(np.float32)
    masked_mean, masked_std = channel_stats(jnp.asarray(x), jnp.asarray(mask), eps=0.0)
    for i in range(2):
        picked = x[i][mask[i] > 0]
        np.testing.assert_allclose(masked_mean[i], picked.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(masked_std[i], picked.std(axis=0), rtol=1e-4)


def test_adain_output_has_the_style_statistics(rng):
    content = rng.normal(1.0, 3.0, size=(2, 6, 6, 8)).astype(np.float32)
    mean = rng.normal(size=(2, 8)).astype(np.float32)
    std = rng.uniform(0.5, 2.0, size=(2, 8)).astype(np.float32)
    out = np.asarray(adain(jnp.asarray(content), jnp.asarray(mean), jnp.asarray(std), eps=0.0))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), mean, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), std, rtol=1e-4)
    # The spatial pattern is the content's, per channel up to an affine map.
    expected = (content - content.mean(axis=(1, 2), keepdims=True)) / \
        content.std(axis=(1, 2), keepdims=True) * std[:, None, None] + mean[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_alpha_zero_keeps_the_content_and_one_is_the_style(rng):
    content = jnp.asarray(rng.normal(size=(1, 4, 4, 3)), jnp.float32)
    stats = StyleStats(jnp.array([[5.0, 6.0, 7.0]]), jnp.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(adain_target(content, stats, alpha=0.0), content, atol=1e-6)
    full = adain_target(content, stats, alpha=1.0)
    half = adain_target(content, stats, alpha=0.5)
    np.testing.assert_allclose(half, 0.5 * full + 0.5 * content, atol=1e-5)


def test_one_hot_blend_and_full_mask_equal_that_single_style(rng):
    content = jnp.asarray(rng.normal(size=(2, 4, 6, 3)), jnp.float32)
    stats = StyleStats(jnp.asarray(rng.normal(size=(3, 3)), jnp.float32),
                       jnp.asarray(rng.uniform(0.5, 2, size=(3, 3)), jnp.float32))
    single = adain_target(content, StyleStats(stats.mean[1:2], stats.std[1:2]))
    one_hot = jnp.tile(jnp.array([[0.0, 1.0, 0.0]]), (2, 1))
    np.testing.assert_allclose(adain_target(content, stats, weights=one_hot), single,
                               atol=1e-5)
    masks = jnp.zeros((2, 4, 6, 3)).at[..., 1].set(1.0)
    np.testing.assert_allclose(adain_target(content, stats, masks=masks), single, atol=1e-5)


def test_two_regions_each_get_their_style(rng):
    content = jnp.asarray(rng.normal(size=(1, 8, 8, 4)), jnp.float32)
    stats = StyleStats(jnp.array([[0.0] * 4, [10.0] * 4]), jnp.array([[1.0] * 4, [0.1] * 4]))
    left = np.zeros((1, 8, 8), np.float32)
    left[:, :, :4] = 1.0
    masks = jnp.asarray(np.stack([left, 1 - left], axis=-1))
    out = np.asarray(adain_target(content, stats, masks=masks))
    np.testing.assert_allclose(out[0, :, :4].mean(axis=(0, 1)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out[0, :, 4:].mean(axis=(0, 1)), 10.0, atol=1e-4)
    np.testing.assert_allclose(out[0, :, 4:].std(axis=(0, 1)), 0.1, rtol=1e-3)


def test_region_masks_normalise_and_check_counts():
    one = np.zeros((1, 4, 4), np.float32)
    one[0, :2] = 1.0
    weights = region_masks(one, 2)
    assert weights.shape == (4, 4, 2)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert weights[0, 0, 1] > 0.99 and weights[3, 3, 0] > 0.99
    with pytest.raises(ConfigError, match="3 masks for 2 style images"):
        region_masks(np.zeros((3, 4, 4)), 2)


# --- Decoder --------------------------------------------------------------------------------------

def test_decoder_channels_and_flops_scale_with_width():
    assert decoder_channels(1.0) == (256, 128, 64)
    assert decoder_channels(0.5) == (128, 64, 32)
    assert decoder_channels(0.01) == (8, 8, 8)
    ratio = decoder_flops_per_pixel(1.0) / decoder_flops_per_pixel(0.5)
    assert 3.0 < ratio < 4.0  # the first conv's 512 inputs do not shrink


@pytest.mark.parametrize("height,width", [(32, 32), (33, 47), (41, 64)])
def test_stylize_keeps_any_size(tiny_params, decoder, rng, height, width):
    params, _ = decoder
    images = jnp.asarray(random_image(rng, height, width))
    stats = style_statistics(tiny_params, random_image(rng, 40, 36))
    out = stylize_arrays(tiny_params, params, WIDTH, images, stats, alpha=0.7)
    assert out.shape == (1, height, width, 3)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_alpha_zero_is_the_decoders_reconstruction(tiny_params, decoder, rng):
    params, _ = decoder
    image = jnp.asarray(random_image(rng, 40, 48))
    stats = style_statistics(tiny_params, random_image(rng, 32, 32))
    out = stylize_arrays(tiny_params, params, WIDTH, image, stats, alpha=0.0)
    padded, rows, cols = pad_for_encoder(image)
    features = encode(tiny_params, padded)[ENCODER_LAYER]
    reconstruction = Decoder(width=WIDTH).apply({"params": params}, features)
    np.testing.assert_allclose(out, reconstruction[:, rows[0]:rows[0] + 40, cols[0]:cols[0] + 48],
                               atol=1e-5)
    styled = stylize_arrays(tiny_params, params, WIDTH, image, stats, alpha=1.0)
    assert float(jnp.abs(styled - out).max()) > 1e-3  # and the style does change it


def test_landscape_runs_transposed_with_the_same_result(tiny_params, decoder, rng):
    params, _ = decoder
    assert runs_transposed(33, 47) and not runs_transposed(47, 33)
    image = jnp.asarray(random_image(rng, 33, 47))
    left = np.zeros((1, 33, 47, 2), np.float32)
    left[:, :, :20, 0] = 1.0
    left[..., 1] = 1.0 - left[..., 0]
    masks = jnp.asarray(left)
    painting = random_image(rng, 36, 52)  # landscape too: its statistics also run transposed
    stats = style_statistics(tiny_params, painting)
    mean, std = channel_stats(encode(tiny_params, pad_for_encoder(painting)[0])[ENCODER_LAYER])
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.std, std, rtol=1e-5, atol=1e-6)
    two = stack_stats([stats, StyleStats(stats.mean * 2, stats.std * 0.5)])
    transposed = stylize_arrays(tiny_params, params, WIDTH, image, two, masks=masks, alpha=0.9)
    plain = stylize_arrays(tiny_params, params, WIDTH, image, two, masks=masks, alpha=0.9,
                           transpose_landscape=False)
    assert transposed.shape == plain.shape == (1, 33, 47, 3)
    np.testing.assert_allclose(transposed, plain, atol=1e-5)


def test_tile_windows_cover_with_one_shape_and_real_margins():
    for size, core in [(5, 7), (19, 7), (38, 7), (30, 7), (128, 32), (129, 32)]:
        length, windows = tile_windows(size, core, halo=6)
        covered = np.zeros(size, bool)
        for start, core_start, count in windows:
            assert 0 <= start and start + length <= size
            assert start <= core_start and core_start + count <= start + length
            # a margin of 6 real neighbours, or all there are up to the photo's edge
            assert core_start - start >= min(6, core_start)
            end = core_start + count
            assert start + length - end >= min(6, size - end)
            covered[core_start:core_start + count] = True
        assert covered.all()


def test_tiled_pass_equals_the_whole_photo(tiny_params, decoder, rng):
    params, _ = decoder
    # 160x200 px = 20x25 relu4_1 positions: windows of 19 (7 + 6 each side) are clamped in
    # both directions, so cores sit at the windows' edges and in their middles.
    photos = random_image(rng, 160, 200)
    left = np.zeros((1, 160, 200, 2), np.float32)
    left[:, :, :130, 0] = 1.0
    left[..., 1] = 1.0 - left[..., 0]
    paintings = [random_image(rng, 48, 40)[0], random_image(rng, 40, 56)[0]]
    whole = ArbitraryStylizer(tiny_params, params, WIDTH, tile=None)
    tiled = ArbitraryStylizer(tiny_params, params, WIDTH, tile=56)  # 7 positions + 6 each side
    assert tiled.runs_tiled(160, 200) and not whole.runs_tiled(160, 200)
    stats = whole.style_stats(paintings)
    for options in ({"masks": left, "alpha": 0.8}, {"weights": np.array([[0.3, 0.7]])}):
        expected = whole(photos, stats, **options)
        got = tiled(photos, stats, **options)
        assert got.shape == expected.shape == (1, 160, 200, 3)
        np.testing.assert_allclose(got, expected, atol=2e-5)
    assert tiled.trace_count == 0  # the tiled path never ran the whole-photo program
    with pytest.raises(ValueError, match="multiple of 8"):
        ArbitraryStylizer(tiny_params, params, WIDTH, tile=100)
    from jaxstyle.arbitrary.apply import make_any_stylizer
    from jaxstyle.arbitrary.multilevel import WCT_TILE
    from jaxstyle.arbitrary.transfer import DEFAULT_TILE
    from jaxstyle.cli import build_parser

    # The CLI leaves the tile to the model: 1024 px for AdaIN, 512 for WCT.
    assert build_parser().parse_args(["apply", "any", "p.jpg"]).tile is None
    assert make_any_stylizer(tiny_params, params, {"width": WIDTH}).tile == DEFAULT_TILE
    wct = {"relu1_1": jax.tree.map(np.asarray, init_decoder(0, WIDTH, level=1))}
    assert make_any_stylizer(tiny_params, wct, {"width": WIDTH, "architecture": "wct-vgg19",
                                                "levels": [1]}).tile == WCT_TILE


def test_apply_any_controls(tiny_params, decoder, rng):
    params, header = decoder
    photos = random_image(rng, 32, 40)[0]
    styles = [random_image(rng, 32, 32)[0], random_image(rng, 48, 40)[0]]
    stylizer = ArbitraryStylizer(tiny_params, params, WIDTH)
    first = apply_any(None, params, header, photos, styles[:1], stylizer=stylizer)
    assert first.shape == photos.shape
    blend = apply_any(None, params, header, photos, styles, blend=[1, 0], stylizer=stylizer)
    np.testing.assert_allclose(blend, first, atol=1e-5)
    mask = np.zeros((1, 32, 40), np.float32)
    masked = apply_any(None, params, header, photos, styles, masks=mask, stylizer=stylizer)
    np.testing.assert_allclose(masked, first, atol=1e-4)  # black: the first style everywhere
    same = apply_any(None, params, header, photos, styles[:1], strength=0.0, stylizer=stylizer)
    np.testing.assert_allclose(same, photos, atol=1e-6)
    kept = apply_any(None, params, header, photos, styles[:1], preserve_color="luminance",
                     stylizer=stylizer)
    assert not np.allclose(kept, first, atol=1e-3)
    with pytest.raises(ConfigError, match="alpha"):
        apply_any(None, params, header, photos, styles[:1], alpha=1.5, stylizer=stylizer)
    with pytest.raises(ConfigError, match="not both"):
        apply_any(None, params, header, photos, styles, blend=[1, 1], masks=mask,
                  stylizer=stylizer)
    assert stylizer.trace_count == 3  # one shape: plain, with weights, with masks


# --- Decoder file ---------------------------------------------------------------------------------

def test_decoder_file_round_trip_and_damage(tmp_path, decoder):
    params, _ = decoder
    path = save_decoder(tmp_path / "d.jxs", params, {"width": WIDTH})
    loaded, header = load_decoder(path)
    assert header["architecture"] == "adain-vgg19-relu4_1" and header["width"] == WIDTH
    np.testing.assert_array_equal(loaded["conv0"]["kernel"], np.asarray(params["conv0"]["kernel"]))
    data = path.read_bytes()
    (tmp_path / "cut.jxs").write_bytes(data[:-10])
    with pytest.raises(ModelError, match="truncated"):
        load_decoder(tmp_path / "cut.jxs")
    with pytest.raises(ModelError, match="width 0.25"):
        save_decoder(tmp_path / "wrong.jxs", params, {"width": 0.25})
    (tmp_path / "text.jxs").write_text("hello")
    with pytest.raises(ModelError, match="not a jaxstyle model"):
        load_decoder(tmp_path / "text.jxs")


# --- Training ------------------------------------------------------------------------------------

def _folder(path, rng, count, size=48):
    path.mkdir()
    for i in range(count):
        image = (random_image(rng, size, size)[0] * 255).astype(np.uint8)
        Image.fromarray(image).save(path / f"{i}.png")
    return sorted(path.iterdir())


def test_a_short_training_lowers_the_loss_and_saves_a_decoder(tmp_path, rng):
    # Unscaled random VGG weights: their features are O(100) like the real VGG's, which the
    # decoder's fixed input scale and the loss's layer normalisation assume.
    vgg_params = random_params(0)
    photos = _folder(tmp_path / "photos", rng, 6)
    styles = _folder(tmp_path / "styles", rng, 6)
    cfg = DecoderConfig(size=32, batch=2, steps=20, learning_rate=2e-3, width=WIDTH,
                        checkpoint_every=0, preview_every=0, log_every=5)
    output = tmp_path / "d.jxs"
    result = train_decoder(vgg_params, photos, styles, output, cfg, worker_count=0)
    assert result.steps == 20
    losses = [r["loss"] for r in read_log(tmp_path / "d.log.jsonl")]
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    params, header = load_decoder(output)
    assert header["data_count"] == 6 and header["style_count"] == 6
    assert header["training"]["steps"] == 20


def test_gram_term_matches_numpy_and_is_absent_at_weight_zero(decoder, rng):
    features = {"a": rng.normal(size=(2, 3, 4, 5)).astype(np.float32),
                "b": rng.normal(size=(2, 2, 2, 6)).astype(np.float32)}
    targets = {name: rng.normal(size=(2, f.shape[-1], f.shape[-1])).astype(np.float32)
               for name, f in features.items()}
    expected = 0.0
    for name, f in features.items():
        flat = f.reshape(2, -1, f.shape[-1])
        grams = np.einsum("npc,npd->ncd", flat, flat) / flat.shape[1]
        expected = expected + np.square(grams - targets[name]).mean(axis=(1, 2))
    np.testing.assert_allclose(gram_loss(features, targets), expected, rtol=1e-5)

    vgg_params = random_params(0)
    photos, styles = (jnp.asarray(np.concatenate([random_image(rng, 32, 32) for _ in "ab"]))
                      for _ in "ps")
    params, _ = decoder
    cfg = DecoderConfig(size=32, width=WIDTH)
    plain_total, plain = decoder_loss(params, vgg_params, photos, styles, cfg)
    total, parts = decoder_loss(params, vgg_params, photos, styles, cfg.replace(gram_weight=3.0))
    assert "gram" not in plain and float(parts["gram"].min()) > 0
    np.testing.assert_allclose(parts["style"], plain["style"], rtol=1e-6)
    np.testing.assert_allclose(float(total), float(plain_total) + float(parts["gram"].mean()),
                               rtol=1e-5)


def test_layout_and_grid_terms_add_to_the_loss_and_a_step_on_layout_raises_it(decoder, rng):
    from jaxstyle.losses import grid_loss, layout_decorrelation

    vgg_params = random_params(0)
    photos, styles = (jnp.asarray(np.concatenate([random_image(rng, 32, 32) for _ in "ab"]))
                      for _ in "ps")
    params, _ = decoder
    # At alpha 0 the AdaIN target is the photo's own features, so the output the terms
    # score can be recomputed from the photo alone.
    cfg = DecoderConfig(size=32, width=WIDTH, alpha=0.0, layout_weight=2.0, grid_weight=5.0)
    total, parts = decoder_loss(params, vgg_params, photos, styles, cfg)
    assert {"layout", "grid", "content", "style"} <= set(parts)
    np.testing.assert_allclose(float(total), float(sum(parts.values()).mean()), rtol=1e-6)
    out = Decoder(width=WIDTH).apply({"params": params}, encode(vgg_params, photos)[ENCODER_LAYER])
    np.testing.assert_allclose(parts["layout"], 2.0 * layout_decorrelation(out, photos),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(parts["grid"], 5.0 * grid_loss(out, photos), rtol=1e-4,
                               atol=1e-6)
    assert float(parts["layout"].min()) > 0  # a random decoder does not give the photo back

    def layout_term(p):
        return decoder_loss(p, vgg_params, photos, styles, cfg)[1]["layout"].mean()

    grads = jax.grad(layout_term)(params)
    stepped = jax.tree.map(lambda p, g: p - 1e-3 * g / optax.tree.norm(grads), params, grads)
    assert float(layout_term(stepped)) < float(layout_term(params))


def test_reconstruction_loss_has_only_photo_terms_and_matches_numpy(decoder, rng):
    vgg_params = random_params(0)
    photos = jnp.asarray(np.concatenate([random_image(rng, 32, 32) for _ in "ab"]))
    params, _ = decoder
    cfg = DecoderConfig(size=32, width=WIDTH, **RECONSTRUCTION)
    assert not cfg.uses_style_images
    # The style images are never looked at: NaNs there change nothing.
    total, parts = decoder_loss(params, vgg_params, photos, jnp.full_like(photos, jnp.nan), cfg)
    assert set(parts) == {"content", "pixel", "perceptual"} and np.isfinite(float(total))
    features = encode(vgg_params, photos)[ENCODER_LAYER]
    out = np.asarray(Decoder(width=WIDTH).apply({"params": params}, features))
    np.testing.assert_allclose(parts["pixel"], RECONSTRUCTION["pixel_weight"] * np.square(
        out - np.asarray(photos)).mean(axis=(1, 2, 3)), rtol=1e-5)
    # A decoder that returned the photo exactly would score zero: every term compares with it.
    assert float(parts["perceptual"].min()) > 0
    with pytest.raises(ConfigError, match="alpha"):
        DecoderConfig(alpha=1.5)


def test_a_reconstruction_step_lowers_that_batchs_pixel_error(decoder, rng):
    vgg_params = random_params(0)
    photos = jnp.asarray(np.concatenate([random_image(rng, 32, 32) for _ in "ab"]))
    params, _ = decoder
    cfg = DecoderConfig(size=32, width=WIDTH, **RECONSTRUCTION)
    pixel_only = cfg.replace(perceptual_weight=0.0, content_weight=0.0)

    def pixel_loss(p):
        return decoder_loss(p, vgg_params, photos, photos, pixel_only)[0]

    grads = jax.grad(pixel_loss)(params)
    assert float(optax.tree.norm(grads)) > 0  # the pixel term reaches the decoder's weights
    stepped = jax.tree.map(lambda p, g: p - 1e-3 * g / optax.tree.norm(grads), params, grads)
    assert float(pixel_loss(stepped)) < float(pixel_loss(params))


def test_cli_reconstruct_needs_no_style_data(tmp_path, tiny_weights_file, rng):
    photos = _folder(tmp_path / "photos", rng, 4, size=40)[0].parent
    output = tmp_path / "recon.jxs"
    common = ("train-decoder", "--data", photos, "-o", output, "--size", "32", "--batch", "2",
              "--workers", "0", "--preview-every", "0", "--checkpoint-every", "0",
              "--weights", tiny_weights_file, "--width", WIDTH, "--steps", "2")
    done = _cli(*common, "--reconstruct", "--pixel-weight", "20")
    assert done.returncode == 0, done.stderr
    _, header = load_decoder(output)
    training = header["training"]
    assert training["alpha"] == 0 and training["style_weight"] == 0
    assert training["pixel_weight"] == 20 and training["perceptual_weight"] == 1  # explicit wins
    assert header["style_count"] == 0
    no_styles = _cli(*common)
    assert no_styles.returncode == 2 and "--style-data" in no_styles.stderr
    assert no_styles.stderr.count("\n") == 1


def test_resume_continues_both_data_streams_exactly(tmp_path, rng):
    photos = _folder(tmp_path / "photos", rng, 5, size=40)
    styles = _folder(tmp_path / "styles", rng, 5, size=40)
    vgg_params = random_params(0)
    cfg = DecoderConfig(size=32, batch=2, steps=4, learning_rate=1e-3, width=WIDTH,
                        checkpoint_every=2, preview_every=0, log_every=1)
    train_decoder(vgg_params, photos, styles, tmp_path / "straight.jxs", cfg, worker_count=0)
    train_decoder(vgg_params, photos, styles, tmp_path / "split.jxs", cfg.replace(steps=2),
                  worker_count=0)
    train_decoder(vgg_params, photos, styles, tmp_path / "split.jxs", cfg, worker_count=0,
                  resume=True)
    straight = [r["loss"] for r in read_log(tmp_path / "straight.log.jsonl")]
    split = [r["loss"] for r in read_log(tmp_path / "split.log.jsonl")]
    assert len(straight) == len(split) == 4
    np.testing.assert_allclose(split, straight, rtol=1e-5)
    with pytest.raises(ConfigError, match="decoder width"):
        train_decoder(vgg_params, photos, styles, tmp_path / "split.jxs",
                      cfg.replace(width=0.25, steps=6), worker_count=0, resume=True)


# --- CLI -----------------------------------------------------------------------------------------

class _Done:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def _cli(*args):
    """`jaxstyle ARGS` in this process (the CLI's own error handling, no interpreter start-up)."""
    import contextlib
    import io

    from jaxstyle.cli import main

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code
    return _Done(code, errors.getvalue())


def test_cli_train_decoder_stops_at_the_time_limit(tmp_path, tiny_weights_file, rng):
    photos = _folder(tmp_path / "photos", rng, 4, size=40)[0].parent
    styles = _folder(tmp_path / "styles", rng, 4, size=40)[0].parent
    output = tmp_path / "mine.jxs"
    done = _cli("train-decoder", "--data", photos, "--style-data", styles, "-o", output,
                "--steps", "30", "--size", "32", "--batch", "2", "--width", WIDTH,
                "--workers", "0", "--preview-every", "0", "--weights", tiny_weights_file,
                "--time-limit", "0.001s")
    assert done.returncode == 0, done.stderr
    # The limit is checked where the loop logs (every 10 steps), so it stops at step 10.
    assert f"time limit reached: saved {output} after 10 of 30 steps" in done.stderr
    _, header = load_decoder(output)
    assert header["training"]["steps"] == 10
    bad = _cli("train-decoder", "--data", photos, "--style-data", styles, "-o", output,
               "--time-limit", "later")
    assert bad.returncode == 2 and "--time-limit" in bad.stderr


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory, decoder):
    params, _ = decoder
    return save_decoder(tmp_path_factory.mktemp("dec") / "d.jxs", params, {"width": WIDTH})


def test_cli_train_decoder_fine_tunes_from_init(tmp_path, decoder_file, tiny_weights_file,
                                                rng):
    photos = _folder(tmp_path / "photos", rng, 2, size=40)[0].parent
    output = tmp_path / "tuned.jxs"
    common = ("train-decoder", "--data", photos, "--style-data", photos, "-o", output,
              "--size", "32", "--batch", "2", "--workers", "0", "--preview-every", "0",
              "--checkpoint-every", "0", "--weights", tiny_weights_file, "--init", decoder_file)
    # A learning rate of 1e-9 moves no weight more than ~1e-9 in one Adam step, so the saved
    # decoder must be the --init one (a random start would differ by O(0.1)).
    done = _cli(*common, "--width", WIDTH, "--steps", "1", "--lr", "1e-9", "--gram-weight", "2",
                "--layout-weight", "0.5", "--grid-weight", "3")
    assert done.returncode == 0, done.stderr
    tuned, header = load_decoder(output)
    start, _ = load_decoder(decoder_file)
    for got, want in zip(jax.tree.leaves(tuned), jax.tree.leaves(start)):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert header["training"]["initialised_from"] == "d.jxs"
    assert header["training"]["gram_weight"] == 2.0
    assert header["training"]["layout_weight"] == 0.5 and header["training"]["grid_weight"] == 3
    assert {"layout", "grid"} <= set(read_log(output.with_suffix(".log.jsonl"))[0])
    wrong_width = _cli(*common, "--width", "0.25", "--steps", "1")
    assert wrong_width.returncode == 2
    assert "--init" in wrong_width.stderr and "--width 0.125" in wrong_width.stderr
    missing = _cli(*common[:-1], tmp_path / "nothing.jxs", "--width", WIDTH, "--steps", "1")
    assert missing.returncode != 0 and "nothing.jxs" in missing.stderr


def test_cli_apply_any_writes_the_photo_size(tmp_path, decoder_file, tiny_weights_file, rng):
    photo = tmp_path / "photo.png"
    Image.fromarray((random_image(rng, 36, 44)[0] * 255).astype(np.uint8)).save(photo)
    style = tmp_path / "style.png"
    Image.fromarray((random_image(rng, 40, 40)[0] * 255).astype(np.uint8)).save(style)
    out = tmp_path / "out.png"
    done = _cli("apply", decoder_file, photo, "--style-image", style, "-o", out, "--alpha",
                "0.5", "--weights", tiny_weights_file, "-q")
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert image.size == (44, 36)


def test_cli_apply_any_tiles_a_large_photo_with_the_same_result(tmp_path, decoder_file,
                                                                 tiny_weights_file, rng):
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    Image.fromarray((random_image(rng, 120, 136)[0] * 255).astype(np.uint8)).save(photo)
    Image.fromarray((random_image(rng, 40, 40)[0] * 255).astype(np.uint8)).save(style)
    outputs = []
    for tile in ("56", "0"):  # 120x136 > (2 x 56)^2 px: tiled; 0: never
        outputs.append(tmp_path / f"out{tile}.png")
        done = _cli("apply", decoder_file, photo, "--style-image", style, "-o", outputs[-1],
                    "--tile", tile, "--weights", tiny_weights_file, "-q")
        assert done.returncode == 0, done.stderr
    tiled, whole = (np.asarray(Image.open(path), np.int16) for path in outputs)
    assert tiled.shape == (120, 136, 3)
    assert np.abs(tiled - whole).max() <= 1  # float rounding, then 8 bits


@pytest.mark.parametrize("extra,message", [
    ((), "give --style-image"),
    (("--style-image", "STYLE", "--alpha", "2"), "--alpha must be in"),
    (("--style-image", "STYLE", "--style", "0"), "--style picks a style"),
    (("--style-image", "STYLE", "STYLE", "--style-blend", "1"), "2 style images need 2"),
    (("--style-image", "missing.png"), "missing.png"),
    (("--style-image", "STYLE", "--tile", "100"), "multiple of 8"),
])
def test_cli_apply_any_bad_inputs(tmp_path, decoder_file, tiny_weights_file, rng, extra,
                                  message):
    photo = tmp_path / "photo.png"
    Image.fromarray((random_image(rng, 32, 32)[0] * 255).astype(np.uint8)).save(photo)
    style = tmp_path / "style.png"
    Image.fromarray((random_image(rng, 32, 32)[0] * 255).astype(np.uint8)).save(style)
    extra = [str(style) if e == "STYLE" else str(tmp_path / e) if e.endswith(".png") else e
             for e in extra]
    out = tmp_path / "out.png"
    done = _cli("apply", decoder_file, photo, "-o", out, "--weights", tiny_weights_file,
                *extra)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert not out.exists()


def test_cli_style_image_with_a_trained_model_is_refused(tmp_path, rng):
    photo = tmp_path / "photo.png"
    Image.fromarray((random_image(rng, 32, 32)[0] * 255).astype(np.uint8)).save(photo)
    done = _cli("apply", "starry_night", photo, "-o", tmp_path / "o.png", "--style-image", photo)
    assert done.returncode == 2 and "needs an arbitrary-style decoder" in done.stderr


def test_builtin_decoder_is_shipped_and_small():
    from jaxstyle.arbitrary.apply import load_builtin_decoder
    from jaxstyle.arbitrary.decoderfile import load_any_model, needs_vgg
    from jaxstyle.paramfile import MODELS_DIR

    params, header = load_builtin_decoder()
    assert (MODELS_DIR / "any.jxs").stat().st_size <= 20e6
    assert header["data_count"] > 0 and header["style_count"] > 0
    assert jax.tree.leaves(params)
    # The default carries its own small encoder; any-vgg is the decoder for VGG19 itself.
    assert not needs_vgg(header) and header["encoder_width"] == 0.25
    full = load_any_model(MODELS_DIR / "any-vgg.jxs")
    assert full.encoder is None and needs_vgg(full.header)
    assert (MODELS_DIR / "any-vgg.jxs").stat().st_size <= 20e6
