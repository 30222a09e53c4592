"""Batch-ready objective and many-image runs: a batch is exactly its images run one by one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_image
from jaxstyle import (
    StyleConfig,
    init_state,
    loss_fn,
    make_step,
    make_targets,
    per_image_loss,
    stack_targets,
    stylize,
)
from jaxstyle.color import match_color_histogram, match_luminance
from jaxstyle.errors import ConfigError
from jaxstyle.gatys.batch import make_jobs, plan_batches, stylize_many
from jaxstyle.gatys.state import make_step_fn
from jaxstyle.images import to_uint8
from jaxstyle.losses import masked_gram_matrix, total_variation

CFG = StyleConfig(steps=10, steps_per_epoch=5, max_dim=64, style_weight=1.0)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(11)
    return (random_image(rng, 32, 40), random_image(rng, 32, 40), random_image(rng, 36, 36),
            random_image(rng, 40, 32))


def test_batch_loss_is_the_mean_of_single_losses(tiny_params, images):
    a, b, style, _ = images
    batch = np.concatenate([a, b])
    image = batch * 0.9 + 0.05  # not the content, so every part is well above rounding
    targets = make_targets(tiny_params, batch, style, CFG)
    assert targets.content["block5_conv2"].shape[0] == 2  # one content target per image
    assert targets.style["block1_conv1"].shape[:2] == (1, 1)  # one shared style
    total, parts = loss_fn(tiny_params, targets, image, CFG)
    singles = [loss_fn(tiny_params, make_targets(tiny_params, x, style, CFG), image[i:i + 1], CFG)
               for i, x in enumerate((a, b))]
    np.testing.assert_allclose(total, np.mean([float(s[0]) for s in singles]), rtol=1e-6)
    for name in parts:
        np.testing.assert_allclose(parts[name], np.mean([float(s[1][name]) for s in singles]),
                                   rtol=1e-6)
    totals, per_parts = per_image_loss(tiny_params, targets, image, CFG)
    assert totals.shape == (2,) and per_parts["tv"].shape == (2,)
    np.testing.assert_allclose(per_parts["tv"], 4e-4 * np.asarray(total_variation(image)),
                               rtol=1e-6)


def test_batch_gradient_is_the_stacked_single_gradients(tiny_params, images):
    a, b, style, _ = images
    batch = np.concatenate([a, b])
    image = batch * 0.9 + 0.05  # not the content, so the content term has a gradient too
    targets = make_targets(tiny_params, batch, style, CFG)
    grad = jax.grad(lambda x: per_image_loss(tiny_params, targets, x, CFG)[0].sum())(image)
    for i, x in enumerate((a, b)):
        single_targets = make_targets(tiny_params, x, style, CFG)
        single = jax.grad(lambda y, t=single_targets: loss_fn(tiny_params, t, y, CFG)[0])(
            image[i:i + 1])
        # float32 convolutions of a batch of 2 and of 1 round differently: compare to the
        # gradient's scale.
        np.testing.assert_allclose(grad[i:i + 1], single, rtol=1e-3,
                                   atol=1e-4 * float(np.abs(single).max()))


def test_vmapped_step_equals_separate_steps(tiny_params, images):
    a, b, style, _ = images
    singles = [(make_targets(tiny_params, x, style, CFG), init_state(x, CFG)) for x in (a, b)]
    step = make_step(CFG)
    expected = []
    for targets, state in singles:
        for _ in range(3):
            state, _ = step(tiny_params, targets, state)
        expected.append(np.asarray(state.image))
    targets = stack_targets([t for t, _ in singles])
    states = jax.tree.map(lambda *x: jnp.stack(x), *[init_state(x, CFG) for x in (a, b)])
    vmapped = jax.jit(jax.vmap(make_step_fn(CFG), in_axes=(None, 0, 0)))
    for _ in range(3):
        states, metrics = vmapped(tiny_params, targets, states)
    assert metrics["loss"].shape == (2,)
    for i in range(2):
        np.testing.assert_allclose(states.image[i], expected[i], atol=1e-6)


def test_noise_init_differs_per_image_and_follows_the_key(images):
    a, b, _, _ = images
    cfg = CFG.replace(init="noise")
    state = init_state(np.concatenate([a, b]), cfg, key=jax.random.key(3))
    assert not np.allclose(state.image[0], state.image[1])
    again = init_state(np.concatenate([a, b]), cfg, key=jax.random.key(3))
    np.testing.assert_array_equal(state.image, again.image)
    other = init_state(a, cfg, key=jax.random.key(4))
    assert not np.allclose(other.image[0], state.image[0])


def test_masks_work_per_image(tiny_params, images):
    a, b, style, _ = images
    features = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8, 10, 4)), jnp.float32)
    masks = np.zeros((2, 2, 8, 10), np.float32)
    masks[0, 0, :, :5] = masks[0, 1, :, 5:] = 1  # image 0: left / right
    masks[1, 0, :4] = masks[1, 1, 4:] = 1  # image 1: top / bottom
    grams = masked_gram_matrix(features, masks)
    for i in range(2):
        for s in range(2):
            region = np.asarray(features[i])[masks[i, s] > 0]
            np.testing.assert_allclose(grams[i, s], region.T @ region / len(region), rtol=1e-5)
    # A batch with per-image masks has each image's own regional loss.
    batch = np.concatenate([a, b])
    full = np.stack([np.ones((32, 40)), np.zeros((32, 40))])
    per_image = np.stack([full, full[::-1]]).astype(np.float32)
    targets = make_targets(tiny_params, batch, [style, style[:, ::-1]], CFG, masks=per_image)
    totals, _ = per_image_loss(tiny_params, targets, batch, CFG)
    for i, x in enumerate((a, b)):
        single = make_targets(tiny_params, x, [style, style[:, ::-1]], CFG, masks=per_image[i])
        np.testing.assert_allclose(totals[i], loss_fn(tiny_params, single, x, CFG)[0], rtol=1e-5)


def test_colour_statistics_are_per_image(images):
    a, b, style, _ = images
    dark = np.clip(b * 0.3, 0, 1)
    batch = np.concatenate([a, dark])
    for match in (match_luminance, match_color_histogram):
        matched = np.asarray(match(style, batch))
        assert matched.shape == (2, 36, 36, 3)
        for i, content in enumerate((a, dark)):
            np.testing.assert_allclose(matched[i], np.asarray(match(style[0], content[0])),
                                       atol=1e-5)
        assert matched[1].mean() < matched[0].mean()  # each follows its own content


def test_to_uint8_keeps_every_image(images):
    a, b, _, _ = images
    out = to_uint8(np.concatenate([a, b]))
    assert out.shape == (2, 32, 40, 3) and out.dtype == np.uint8
    assert to_uint8(a).shape == (32, 40, 3)


def test_stylize_many_equals_single_runs(tiny_params, images):
    a, b, style, tall = images
    outputs = stylize_many(tiny_params, [a[0], b[0], tall[0]], [style[0]], CFG, batch_size=2)
    assert [o.shape for o in outputs] == [(32, 40, 3), (32, 40, 3), (40, 32, 3)]
    for content, output in zip((a, b, tall), outputs):
        single, _ = stylize(tiny_params, content, style, CFG)
        # One convention for both: (H, W, 3) float32 NumPy.
        assert type(single) is type(output) is np.ndarray
        assert single.shape == output.shape and single.dtype == output.dtype == np.float32
        np.testing.assert_allclose(output, single, atol=1e-5)


def test_sweep_compiles_once_and_matches_single_settings(tiny_params, images, monkeypatch):
    a, _, style, _ = images
    from jaxstyle.gatys import batch

    runners = []
    original = batch.BatchRunner.__init__

    def remember(self, *args, **kwargs):
        original(self, *args, **kwargs)
        runners.append(self)

    monkeypatch.setattr(batch.BatchRunner, "__init__", remember)
    values = [0.1, 1.0, 10.0]
    outputs = stylize_many(tiny_params, [a[0]], [style[0]], CFG, sweep=("style_weight", values))
    assert runners[0].step.trace_count == 1  # three weights, one compiled program
    for value, output in zip(values, outputs):
        single, _ = stylize(tiny_params, a, style, CFG.replace(style_weight=value))
        np.testing.assert_allclose(output, single, atol=1e-5)
    assert np.abs(outputs[0] - outputs[2]).max() > 1e-3


def test_jobs_are_bucketed_by_shape_without_padding():
    shapes = [(32, 40), (40, 32), (32, 40), (32, 40), (40, 32)]
    assert plan_batches(shapes, None) == [[0, 2, 3], [1, 4]]
    assert plan_batches(shapes, 2) == [[0, 2], [3], [1, 4]]
    jobs = make_jobs([np.zeros((32, 32, 3))] * 2, [np.ones((32, 32, 3))] * 3)
    assert len(jobs) == 6
    with pytest.raises(ConfigError, match="cannot sweep"):
        make_jobs([np.zeros((32, 32, 3))], [np.ones((32, 32, 3))], ("max_dim", [64]))
    with pytest.raises(ConfigError):
        make_jobs([np.zeros((32, 32, 3))], [np.ones((32, 32, 3))], ("beta1", [1.5]))
