"""Engine 3's distilled small encoder: VGG19 at a width, pruning, least-squares embeddings,
distillation, its file, decoders trained for it, and the commands around it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import random_image, random_params
from jaxstyle.arbitrary.config import RECONSTRUCTION, DecoderConfig, init_decoder_state
from jaxstyle.arbitrary.decoder import (
    ENCODER_LAYER,
    FEATURE_MEANS,
    Decoder,
    decoder_param_shapes,
    init_decoder,
)
from jaxstyle.arbitrary.decoderfile import load_any_model, load_decoder, save_decoder
from jaxstyle.arbitrary.encoder import (
    EncoderConfig,
    EncoderState,
    compose_embedding,
    distill_loss,
    embed,
    encoder_shapes,
    initial_encoder,
    load_encoder,
    make_encoder_step_fn,
    make_optimizer,
    prune_decoder,
    prune_vgg,
    save_encoder,
)
from jaxstyle.arbitrary.step import decoder_loss, make_decoder_step_fn
from jaxstyle.arbitrary.transfer import (
    ArbitraryStylizer,
    conv_params,
    encode,
    style_statistics,
    stylize_arrays,
)
from jaxstyle.errors import ConfigError
from jaxstyle.paramfile import ModelError
from jaxstyle.vgg import vgg19_features

WIDTH = 0.25        # the encoder: 16/32/64/128 channels
DECODER_WIDTH = 0.125


@pytest.fixture(scope="module")
def vgg():
    # Unscaled random VGG weights: features of O(100), like the real VGG's (the decoder's
    # input scale and the losses' layer normalisation assume that).
    return random_params(0)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    return np.concatenate([random_image(rng, 32, 32) for _ in range(4)])


@pytest.fixture(scope="module")
def encoder(vgg, images):
    return jax.tree.map(np.asarray, initial_encoder(vgg, images, WIDTH))


def test_a_narrow_vgg_has_the_scaled_channels(encoder, images):
    features = vgg19_features(conv_params(encoder), jnp.asarray(images),
                              ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1"))
    assert [f.shape[-1] for f in features.values()] == [16, 32, 64, 128]
    assert features["block4_conv1"].shape[1:3] == (4, 4)
    shapes = encoder_shapes(WIDTH)
    assert shapes[("block3_conv2", "kernel")] == (3, 3, 64, 64)
    assert shapes[("embed", "block4_conv1", "kernel")] == (128, 512)


def test_pruning_keeps_the_most_active_channels_exactly(vgg, images):
    small = prune_vgg(vgg, images, WIDTH)
    full = encode(vgg, jnp.asarray(images), ("block1_conv1",))["block1_conv1"]
    kept = np.sort(np.argsort(-np.asarray(full.mean(axis=(0, 1, 2))), kind="stable")[:16])
    ours = encode(small, jnp.asarray(images), ("block1_conv1",))["block1_conv1"]
    # The first layer sees all three colours, so its kept channels are VGG19's own.
    np.testing.assert_allclose(ours, np.asarray(full)[..., kept], rtol=1e-5, atol=1e-4)
    assert small["block2_conv1"]["kernel"].shape == (3, 3, 16, 32)


def test_least_squares_embeddings_beat_the_mean_and_distillation_lowers_the_loss(
        vgg, encoder, images):
    x = jnp.asarray(images)
    fitted, parts = distill_loss(encoder, vgg, x)
    # The best constant per channel (kernel 0, bias = the target's mean) is one choice the
    # least-squares fit had, so it can only be worse.
    target = {layer: f / FEATURE_MEANS[layer] for layer, f in
              encode(vgg, x, tuple(encoder["embed"])).items()}
    constant = jax.tree.map(np.copy, encoder)
    for layer, embedding in constant["embed"].items():
        embedding["kernel"] = np.zeros_like(embedding["kernel"])
        embedding["bias"] = np.asarray(target[layer].mean(axis=(0, 1, 2)))
    worse, _ = distill_loss(constant, vgg, x)
    assert float(fitted) < 0.9 * float(worse)
    assert set(parts) == set(encoder["embed"])
    cfg = EncoderConfig(width=WIDTH, size=32, batch=4, learning_rate=1e-5)
    step = jax.jit(make_encoder_step_fn(cfg))
    params = jax.tree.map(jnp.asarray, encoder)
    state = EncoderState(params, make_optimizer(cfg).init(params), jnp.zeros([], jnp.int32))
    batch = jnp.asarray(np.round(images * 255).astype(np.uint8))
    losses = []
    for _ in range(5):
        state, metrics = step(vgg, state, batch)
        losses.append(float(metrics["loss"]))
    assert bool(metrics["finite"]) and int(state.step) == 5
    assert losses[-1] < losses[0]


def test_encoder_file_round_trip_and_wrong_shapes(tmp_path, encoder):
    path = save_encoder(tmp_path / "e.jxs", encoder, {"width": WIDTH})
    loaded, header = load_encoder(path)
    assert header["architecture"] == "distilled-vgg19-relu4_1" and header["width"] == WIDTH
    for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(encoder)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ModelError, match="width 0.5"):
        save_encoder(tmp_path / "w.jxs", encoder, {"width": 0.5})
    decoder_file = save_decoder(tmp_path / "d.jxs", init_decoder(0, DECODER_WIDTH),
                                {"width": DECODER_WIDTH})
    with pytest.raises(ModelError, match="not a distilled encoder"):
        load_encoder(decoder_file)


@pytest.fixture(scope="module")
def own_model(tmp_path_factory, encoder):
    """A decoder for the small encoder's 128-channel features, saved with the encoder."""
    decoder = jax.tree.map(np.asarray, init_decoder(0, DECODER_WIDTH, in_channels=128))
    path = save_decoder(tmp_path_factory.mktemp("own") / "small.jxs", decoder,
                        {"width": DECODER_WIDTH, "encoder_width": WIDTH}, encoder=encoder)
    return path, decoder


def test_a_model_with_its_own_encoder_runs_without_vgg(own_model, encoder, images):
    path, decoder = own_model
    params, header = load_decoder(path)
    assert header["architecture"] == "adain-distilled-relu4_1"
    model = load_any_model(path)
    assert model.encoder_width == WIDTH and model.encoder is not None
    photo, painting = images[:1], images[1]
    stylizer = ArbitraryStylizer(None, params, DECODER_WIDTH)
    stats = stylizer.style_stats([painting])
    out = np.asarray(stylizer(photo, stats, alpha=0.8))
    own = conv_params(encoder)
    expected = stylize_arrays(own, decoder, DECODER_WIDTH, jnp.asarray(photo),
                              style_statistics(own, painting), alpha=0.8)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert stats.mean.shape == (1, 128)
    vgg_decoder = init_decoder(0, DECODER_WIDTH)
    with pytest.raises(ValueError, match="VGG19's params"):
        ArbitraryStylizer(None, vgg_decoder, DECODER_WIDTH)


def test_own_encoder_loss_targets_vgg_space_through_the_embedding(vgg, encoder, own_model,
                                                                  images):
    _, decoder = own_model
    photos = jnp.asarray(images[:2])
    cfg = DecoderConfig(size=32, batch=2, width=DECODER_WIDTH, **RECONSTRUCTION)
    _, parts = decoder_loss(decoder, vgg, photos, photos, cfg, encoder)
    scale = FEATURE_MEANS[ENCODER_LAYER]
    small = encode(conv_params(encoder), photos)[ENCODER_LAYER] / scale
    target = embed(small, encoder["embed"][ENCODER_LAYER])
    out = stylize_arrays(conv_params(encoder), decoder, DECODER_WIDTH, photos,
                         style_statistics(conv_params(encoder), images[2]), alpha=0.0)
    got = encode(vgg, out)[ENCODER_LAYER] / scale
    expected = np.square(np.asarray(got) - np.asarray(target)).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(parts["content"], expected, rtol=1e-4)
    _, vgg_parts = decoder_loss(init_decoder(0, DECODER_WIDTH), vgg, photos, photos, cfg)
    assert set(vgg_parts) == set(parts)


def test_the_encoder_trains_with_the_decoder_only_when_asked(vgg, encoder, own_model, images):
    _, decoder = own_model
    photos, styles = jnp.asarray(images[:2]), jnp.asarray(images[2:])
    frozen = DecoderConfig(size=32, batch=2, width=DECODER_WIDTH, distill_weight=2.0)
    joint = frozen.replace(encoder_learning_rate=1e-3)
    assert joint.trains_encoder and not frozen.trains_encoder
    # The distillation term is encoder.distill_loss on the photos, weighted.
    _, parts = decoder_loss(decoder, vgg, photos, styles, joint, encoder)
    np.testing.assert_allclose(float(parts["distill"].mean()),
                               2.0 * float(distill_loss(encoder, vgg, photos)[0]), rtol=1e-4)

    def style_term(enc, cfg):
        return decoder_loss(decoder, vgg, photos, styles, cfg, enc)[1]["style"].mean()

    # The style term reaches the encoder through AdaIN and the decoder only when it trains.
    moving = optax_norm(jax.grad(style_term)(encoder, joint))
    still = optax_norm(jax.grad(style_term)(encoder, frozen))
    assert moving > 0 and still == 0
    # One joint step moves both parts; the state holds them as {decoder, encoder}.
    state = init_decoder_state(joint, decoder, 128, encoder)
    assert set(state.params) == {"decoder", "encoder"}
    batch = tuple(jnp.asarray(np.round(x * 255).astype(np.uint8)) for x in (photos, styles))
    new, metrics = jax.jit(make_decoder_step_fn(joint))((vgg, None), state, batch)
    assert bool(metrics["finite"]) and float(metrics["distill"]) > 0
    for part in ("decoder", "encoder"):
        assert optax_norm(jax.tree.map(jnp.subtract, new.params[part], state.params[part])) > 0
    with pytest.raises(ConfigError, match="distilled encoder"):
        init_decoder_state(joint, decoder, 128, None)


def optax_norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))))


def test_a_vgg_decoder_composed_with_the_embedding_decodes_the_small_features(encoder,
                                                                             images):
    scale = FEATURE_MEANS[ENCODER_LAYER]
    small = encode(conv_params(encoder), jnp.asarray(images))[ENCODER_LAYER]
    vgg_decoder = jax.tree.map(np.asarray, init_decoder(1, DECODER_WIDTH))
    composed = compose_embedding(vgg_decoder, encoder["embed"][ENCODER_LAYER])
    net = Decoder(width=DECODER_WIDTH)
    got = net.apply({"params": composed}, small)
    embedded = embed(small / scale, encoder["embed"][ENCODER_LAYER]) * scale
    want = net.apply({"params": vgg_decoder}, embedded)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert float(jnp.abs(want - 0.5).max()) > 1e-3  # not a flat output that any kernel gives
    narrow = prune_decoder(composed, DECODER_WIDTH, 0.0625, small)
    expected = jax.tree.map(lambda s: s.shape, decoder_param_shapes(0.0625, 128))
    assert jax.tree.map(np.shape, narrow) == expected
    assert np.isfinite(np.asarray(Decoder(width=0.0625).apply({"params": narrow}, small))).all()


def _folder(path, rng, count, size=40):
    path.mkdir()
    for i in range(count):
        Image.fromarray((random_image(rng, size, size)[0] * 255).astype(np.uint8)).save(
            path / f"{i}.png")
    return path


def test_cli_distils_trains_its_decoder_and_applies_without_weights(tmp_path,
                                                                    tiny_weights_file):
    from test_arbitrary import _cli

    rng = np.random.default_rng(3)
    photos, paintings = _folder(tmp_path / "photos", rng, 3), _folder(tmp_path / "art", rng, 2)
    encoder_file = tmp_path / "small.enc.jxs"
    done = _cli("train-encoder", "--data", photos, paintings, "-o", encoder_file, "--steps",
                "2", "--size", "32", "--batch", "2", "--workers", "0", "--checkpoint-every",
                "0", "--weights", tiny_weights_file)
    assert done.returncode == 0, done.stderr
    _, header = load_encoder(encoder_file)
    assert header["training"]["steps"] == 2 and header["data_count"] == 5
    assert header["training"]["initialised_from"] == "VGG19, pruned"
    model = tmp_path / "small.jxs"
    common = ("train-decoder", "--data", photos, "-o", model, "--reconstruct", "--size", "32",
              "--batch", "2", "--workers", "0", "--preview-every", "0", "--checkpoint-every",
              "0", "--weights", tiny_weights_file, "--width", DECODER_WIDTH, "--steps", "1")
    done = _cli(*common, "--encoder", encoder_file)
    assert done.returncode == 0, done.stderr
    # --encoder-lr: the file carries the encoder as trained, not as given.
    joint = _cli(*common, "--encoder", encoder_file, "--encoder-lr", "1e-2", "--distill-weight",
                 "1", "-o", tmp_path / "joint.jxs")
    assert joint.returncode == 0, joint.stderr
    trained = load_any_model(tmp_path / "joint.jxs")
    assert trained.header["training"]["encoder_learning_rate"] == 0.01
    assert not np.array_equal(trained.encoder["block4_conv1"]["kernel"],
                              load_encoder(encoder_file)[0]["block4_conv1"]["kernel"])
    alone = _cli(*common, "--encoder-lr", "1e-3", "-o", tmp_path / "alone.jxs")
    assert alone.returncode == 2 and "--encoder FILE" in alone.stderr
    loaded = load_any_model(model)
    assert loaded.header["encoder_width"] == WIDTH
    np.testing.assert_array_equal(loaded.encoder["block4_conv1"]["kernel"],
                                  load_encoder(encoder_file)[0]["block4_conv1"]["kernel"])
    both = _cli(*common, "--init", model, "--encoder", encoder_file, "-o", tmp_path / "x.jxs")
    assert both.returncode == 2 and "brings its own encoder" in both.stderr
    # A decoder for VGG19 carried over to the small encoder, pruned to a narrower width.
    vgg_decoder = save_decoder(tmp_path / "vgg.jxs", init_decoder(0, 0.25), {"width": 0.25})
    carried = _cli(*common, "--init", vgg_decoder, "--encoder", encoder_file, "-o",
                   tmp_path / "carried.jxs")
    assert carried.returncode == 0, carried.stderr
    header = load_any_model(tmp_path / "carried.jxs").header
    assert header["width"] == DECODER_WIDTH and header["encoder_width"] == WIDTH
    assert "pruned to width 0.125" in header["training"]["initialised_from"]
    photo = tmp_path / "photo.png"
    Image.fromarray((random_image(rng, 36, 44)[0] * 255).astype(np.uint8)).save(photo)
    out = tmp_path / "out.png"
    done = _cli("apply", model, photo, "--style-image", photos / "0.png", "-o", out,
                "--weights", tmp_path / "no-such-weights.npz")
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (44, 36)
