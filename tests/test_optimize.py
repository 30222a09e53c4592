import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import random_image
from jaxstyle import (
    NonFiniteLossError,
    StyleConfig,
    init_state,
    keras_adam,
    load_state,
    loss_fn,
    make_step,
    make_targets,
    output_image,
    save_state,
    stylize,
)
from jaxstyle.errors import ConfigError, JaxstyleError

SMALL = StyleConfig(epochs=1, steps_per_epoch=4, max_dim=64)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(7)
    return random_image(rng, 32, 40), random_image(rng, 36, 32), random_image(rng, 32, 32)


def np_keras_adam(grads, lr, b1, b2, eps, x0):
    """Keras, transcribed: alpha_t = lr sqrt(1-b2^t)/(1-b1^t); x -= alpha_t m/(sqrt(v)+eps)."""
    x, m, v = x0.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        x = x - alpha * m / (np.sqrt(v) + eps)
    return x


def test_keras_adam_matches_numpy_transcription(rng):
    x0 = rng.standard_normal(6).astype(np.float32)
    grads = [rng.standard_normal(6).astype(np.float32) for _ in range(5)]
    tx = keras_adam(0.02, 0.99, 0.999, 0.1)
    x, state = jnp.asarray(x0), tx.init(jnp.asarray(x0))
    update = jax.jit(tx.update)
    for g in grads:
        updates, state = update(jnp.asarray(g), state, x)
        x = optax.apply_updates(x, updates)
    expected = np_keras_adam(grads, 0.02, 0.99, 0.999, 0.1, x0)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)
    # ... and it is not optax.adam, whose eps is added to the bias-corrected sqrt(v).
    y, ostate = jnp.asarray(x0), optax.adam(0.02, 0.99, 0.999, 0.1).init(jnp.asarray(x0))
    for g in grads:
        updates, ostate = optax.adam(0.02, 0.99, 0.999, 0.1).update(jnp.asarray(g), ostate)
        y = optax.apply_updates(y, updates)
    assert np.abs(np.asarray(y) - expected).max() > 1e-3


def test_loss_parts_are_weighted_and_sum_to_total(tiny_params, images):
    content, style, _ = images
    cfg = SMALL
    targets = make_targets(tiny_params, content, style, cfg)
    total, parts = jax.jit(lambda p, t, x: loss_fn(p, t, x, cfg))(tiny_params, targets, content)
    assert set(parts) == {"content", "style", "tv"}
    np.testing.assert_allclose(total, sum(parts.values()), rtol=1e-6)
    assert float(parts["content"]) == pytest.approx(0.0, abs=1e-6)  # image == content
    tv = np.abs(np.diff(content, axis=1)).sum() + np.abs(np.diff(content, axis=2)).sum()
    np.testing.assert_allclose(parts["tv"], 4e-4 * tv, rtol=1e-5)
    doubled = cfg.replace(style_weight=2 * cfg.style_weight)
    _, parts2 = loss_fn(tiny_params, targets, content, doubled)
    np.testing.assert_allclose(parts2["style"], 2 * parts["style"], rtol=1e-5)


def test_layer_weights_change_the_average(tiny_params, images):
    content, style, noise = images
    cfg = SMALL
    targets = make_targets(tiny_params, content, style, cfg)
    equal = loss_fn(tiny_params, targets, noise, cfg)[1]["style"]
    first_only = cfg.replace(style_layer_weights=(1, 0, 0, 0, 0))
    only = loss_fn(tiny_params, targets, noise, first_only)[1]["style"]
    single = cfg.replace(style_layers=("block1_conv1",))
    single_targets = make_targets(tiny_params, content, style, single)
    expected = loss_fn(tiny_params, single_targets, noise, single)[1]["style"]
    np.testing.assert_allclose(only, expected,
                               rtol=1e-5)
    assert abs(float(only) - float(equal)) > 1e-6 * abs(float(equal))


def test_step_compiles_once_and_lowers_the_loss(tiny_params, images):
    content, style, _ = images
    cfg = SMALL
    targets = make_targets(tiny_params, content, style, cfg)
    state = init_state(content, cfg)
    step = make_step(cfg)
    losses = []
    for _ in range(8):
        state, metrics = step(tiny_params, targets, state)
        losses.append(float(metrics["loss"]))
    assert step.trace_count == 1
    assert int(state.step) == 8
    assert losses[-1] < losses[0]
    assert float(state.image.min()) >= 0.0 and float(state.image.max()) <= 1.0
    # A new image shape is the only thing that compiles again.
    other = init_state(style, cfg)
    step(tiny_params, make_targets(tiny_params, style, style, cfg), other)
    assert step.trace_count == 2


def test_step_donates_state_but_not_caller_arrays(tiny_params, images):
    content, style, _ = images
    content = jnp.asarray(content)
    cfg = SMALL
    state = init_state(content, cfg)
    step = make_step(cfg)
    step(tiny_params, make_targets(tiny_params, content, style, cfg), state)
    assert not content.is_deleted()
    assert state.image.is_deleted() or jax.default_backend() == "cpu"


def test_state_round_trips_through_save_and_load(tmp_path, tiny_params, images):
    content, style, _ = images
    cfg = SMALL.replace(ema=0.9)
    step = make_step(cfg)
    targets = make_targets(tiny_params, content, style, cfg)
    state = init_state(content, cfg)
    for _ in range(3):
        state, _ = step(tiny_params, targets, state)
    save_state(tmp_path / "run.ckpt", state)
    restored = load_state(tmp_path / "run.ckpt", init_state(content, cfg))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Continuing from the restored state gives the same next step as continuing the original.
    expected, _ = step(tiny_params, targets, state)
    got, _ = step(tiny_params, targets, restored)
    np.testing.assert_allclose(got.image, expected.image, rtol=1e-6)


def test_load_state_rejects_other_shapes(tmp_path, tiny_params, images):
    content, _, square = images
    save_state(tmp_path / "a.ckpt", init_state(content, SMALL))
    with pytest.raises(JaxstyleError, match="another size"):
        load_state(tmp_path / "a.ckpt", init_state(square, SMALL))
    (tmp_path / "junk.ckpt").write_bytes(b"\x00\x01garbage")
    with pytest.raises(JaxstyleError, match="checkpoint"):
        load_state(tmp_path / "junk.ckpt", init_state(content, SMALL))


def test_stylize_runs_all_steps_and_calls_back(tiny_params, images):
    content, style, _ = images
    seen = []
    image, history = stylize(tiny_params, content, style, SMALL.replace(epochs=2),
                             callback=lambda step, metrics, state: seen.append(step))
    assert image.shape == content.shape[1:] and isinstance(image, np.ndarray)
    assert seen == list(range(1, 9))
    assert len(history) == 8 and set(history[0]) == {"loss", "content", "style", "tv"}
    assert history[-1]["loss"] < history[0]["loss"]


def test_noise_init_is_seeded(tiny_params, images):
    content, _, _ = images
    a = init_state(content, SMALL.replace(init="noise", seed=1)).image
    b = init_state(content, SMALL.replace(init="noise", seed=1)).image
    c = init_state(content, SMALL.replace(init="noise", seed=2)).image
    np.testing.assert_array_equal(a, b)
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 0.1


def test_non_finite_loss_stops_and_keeps_last_finite_image(tiny_params, images):
    content, style, _ = images
    cfg = SMALL.replace(content_weight=1e38, style_weight=1e38, tv_weight=1e38)
    with pytest.raises(NonFiniteLossError) as caught:
        stylize(tiny_params, content, style, cfg)
    assert np.isfinite(np.asarray(caught.value.image)).all()
    assert "non-finite" in str(caught.value)


def test_blend_one_zero_equals_first_style_alone(tiny_params, images):
    content, style_a, style_b = images
    cfg = SMALL.replace(steps=3)
    alone, _ = stylize(tiny_params, content, style_a, cfg)
    blended, _ = stylize(tiny_params, content, [style_a, style_b], cfg.replace(style_blend=(1, 0)))
    np.testing.assert_array_equal(np.asarray(alone), np.asarray(blended))
    # Equal blending mixes the Gram targets half and half.
    layer = cfg.style_layers[0]
    mixed = make_targets(tiny_params, content, [style_a, style_b], cfg).style[layer]
    gram_a = make_targets(tiny_params, content, style_a, cfg).style[layer]
    gram_b = make_targets(tiny_params, content, style_b, cfg).style[layer]
    np.testing.assert_allclose(mixed, 0.5 * (gram_a + gram_b), rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(gram_a - gram_b)).max() > 1e-3


def test_ema_output_is_bias_corrected_average(tiny_params, images):
    content, style, _ = images
    cfg = SMALL.replace(ema=0.5)
    step = make_step(cfg)
    targets = make_targets(tiny_params, content, style, cfg)
    state = init_state(content, cfg)
    images_seen = []
    for _ in range(3):
        state, _ = step(tiny_params, targets, state)
        images_seen.append(np.asarray(state.image, np.float64))
    weights = np.array([0.25, 0.5, 1.0]) * 0.5  # (1-d) d^(T-t)
    expected = sum(w * im for w, im in zip(weights, images_seen)) / (1 - 0.5**3)
    np.testing.assert_allclose(output_image(state, cfg), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("changes, message", [
    (dict(content_layers=("block9_conv1",)), "unknown layer"),
    (dict(style_weight=-1.0), "style_weight"),
    (dict(tv_weight=float("nan")), "tv_weight"),
    (dict(beta1=1.0), "beta1"),
    (dict(style_layer_weights=(1, 2)), "2 weights for 5 layers"),
    (dict(optimizer="sgd"), "optimizer"),
    (dict(max_dim=8), "max_dim"),
])
def test_bad_config_raises(changes, message):
    with pytest.raises(ConfigError, match=message):
        StyleConfig(**changes)


def test_blend_count_must_match_styles(tiny_params, images):
    content, style, _ = images
    with pytest.raises(ConfigError, match="2 weights for 1 style"):
        make_targets(tiny_params, content, style, SMALL.replace(style_blend=(1, 1)))
