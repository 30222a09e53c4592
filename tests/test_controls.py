"""The artistic controls: each is shown to have the effect it promises."""

import jax
import numpy as np
import pytest

from conftest import random_image
from jaxstyle import StyleConfig, color
from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.gatys import pipeline
from jaxstyle.gatys.pipeline import normalise_masks, scale_sizes, style_size, stylize
from jaxstyle.losses import gram_matrix, masked_gram_matrix
from jaxstyle.objective import downsample_masks
from jaxstyle.vgg import vgg19_features

# eps=1e-8 makes every step move pixels by about lr, so tiny random weights show effects fast.
FEW = StyleConfig(steps=4, steps_per_epoch=4, epsilon=1e-8)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(11)
    return random_image(rng, 32, 48), random_image(rng, 40, 40), random_image(rng, 48, 32)


def test_luminance_mode_keeps_content_chroma(tiny_params, images):
    content, style, _ = images
    cfg = FEW.replace(preserve_color="luminance", style_weight=1.0)
    image, history = stylize(tiny_params, content, style, cfg)
    out, ref = np.asarray(color.rgb_to_yiq(image)), np.asarray(color.rgb_to_yiq(content))
    assert np.abs(out[..., 1:] - ref[..., 1:]).mean() <= 2 / 255
    # ... while the luminance did change, so something was stylized.
    assert np.abs(out[..., 0] - ref[..., 0]).mean() > 1e-4
    plain, _ = stylize(tiny_params, content, style, cfg.replace(preserve_color=None))
    plain_yiq = np.asarray(color.rgb_to_yiq(plain))
    kept = np.abs(out[..., 1:] - ref[..., 1:]).mean()
    assert np.abs(plain_yiq[..., 1:] - ref[..., 1:]).mean() > kept


def test_yiq_round_trip(rng):
    rgb = rng.uniform(size=(5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(rgb)), rgb, atol=1e-5)


def test_histogram_matching_moves_style_to_content_colours(rng):
    content = rng.uniform(0.2, 0.6, size=(1, 40, 40, 3)).astype(np.float32)
    content[..., 0] *= 1.5
    style = rng.uniform(0.0, 1.0, size=(1, 30, 50, 3)).astype(np.float32) ** 2
    matched = np.asarray(jax.jit(color.match_color_histogram)(style, content))
    assert matched.shape == style.shape
    np.testing.assert_allclose(matched.reshape(-1, 3).mean(0), content.reshape(-1, 3).mean(0),
                               atol=0.02)
    np.testing.assert_allclose(np.cov(matched.reshape(-1, 3), rowvar=False),
                               np.cov(content.reshape(-1, 3), rowvar=False), atol=0.003)


def test_style_scale_sizes_the_style_relative_to_output():
    cfg = StyleConfig()
    assert style_size((400, 600), (200, 300), cfg) == (200, 300)
    assert style_size((400, 600), (200, 300), cfg.replace(style_scale=0.5)) == (100, 150)
    assert style_size((400, 600), (200, 300), cfg.replace(style_scale=4.0)) == (400, 600)
    assert style_size((400, 600), (200, 300), cfg.replace(style_max_dim=120)) == (80, 120)
    with pytest.raises(ConfigError, match="style image would be"):
        style_size((400, 600), (200, 300), cfg.replace(style_scale=0.05))


def test_style_scale_changes_the_style_targets(tiny_params, images):
    content, style, _ = images
    seen = {}
    for scale in (1.0, 0.8):
        cfg = FEW.replace(style_scale=scale)
        size = style_size(style.shape[1:3], content.shape[1:3], cfg)
        resized = pipeline.resize_images(style, size)
        seen[scale] = np.asarray(gram_matrix(vgg19_features(tiny_params, resized,
                                                            ("block1_conv1",))["block1_conv1"]))
    assert np.abs(seen[1.0] - seen[0.8]).max() > 1e-4


def test_multiscale_sizes_and_one_compile_per_scale(tiny_params, images, monkeypatch):
    content, style, _ = images
    cfg = FEW.replace(scales=2, scale_steps=(3, 2))
    assert scale_sizes(64, 96, cfg) == [(32, 48), (64, 96)]
    with pytest.raises(ConfigError, match="coarsest image"):
        scale_sizes(64, 96, cfg.replace(scales=3, scale_steps=None))
    made = []
    original = pipeline.make_step
    monkeypatch.setattr(pipeline, "make_step", lambda c: made.append(original(c)) or made[-1])
    big = pipeline.resize_images(content, (64, 96))
    image, history = stylize(tiny_params, big, style, cfg)
    assert image.shape == (64, 96, 3)
    assert len(history) == 5 and made[0].trace_count == 2


def test_carrying_the_optimizer_changes_the_fine_scale(tiny_params, images):
    content, style, _ = images
    big = pipeline.resize_images(content, (64, 96))
    cfg = FEW.replace(scales=2, scale_steps=(3, 2), style_weight=1.0)
    reset, _ = stylize(tiny_params, big, style, cfg)
    carried, _ = stylize(tiny_params, big, style, cfg.replace(carry_optimizer=True))
    assert np.abs(np.asarray(reset) - np.asarray(carried)).max() > 1e-5


@pytest.mark.parametrize("box", ["sigmoid", "reflect"])
def test_lbfgs_lowers_the_loss_and_stays_in_the_box(tiny_params, images, box):
    content, style, _ = images
    cfg = FEW.replace(optimizer="lbfgs", steps=6, lbfgs_box=box)
    image, history = stylize(tiny_params, content, style, cfg)
    assert history[-1]["loss"] < history[0]["loss"]
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_reflect_box_moves_the_pixels_a_sigmoid_holds_at_white(tiny_params, rng):
    # A photo whose top half is clipped white: under the sigmoid those pixels start where its
    # slope is 0.001 and stay put; folded back, they move about as freely as the rest.
    from jaxstyle.gatys import image_of_latent, latent_of_image

    content, style = rng.random((2, 48, 32, 3), np.float32)
    content[:24] = 1.0
    share = {}
    for box in ("sigmoid", "reflect"):
        cfg = FEW.replace(optimizer="lbfgs", steps=2, lbfgs_box=box, style_weight=1.0)
        start = np.asarray(image_of_latent(latent_of_image(content, box), box))
        image, _ = stylize(tiny_params, content, style, cfg)
        moved = np.abs(np.asarray(image) - start)
        share[box] = float(moved[:24].mean() / moved[24:].mean())
    assert share["reflect"] > 0.3 and share["sigmoid"] < 0.05 * share["reflect"], share


def test_lbfgs_step_reuses_the_line_searchs_evaluation(tiny_params, images):
    # The loss and gradient at a step's start come from the line search that ended the step
    # before: one evaluation per accepted step, not two. Shown by planting a zero gradient
    # in the state: a step that reused it leaves the image where it was; one that evaluated
    # afresh would move it.
    import optax

    from jaxstyle import init_state, loss_fn, make_step, make_targets

    content, style, _ = images
    cfg = FEW.replace(optimizer="lbfgs")
    targets = make_targets(tiny_params, content, style, cfg)
    step = make_step(cfg, donate=False)
    state, _ = step(tiny_params, targets, init_state(content, cfg))
    stored = optax.tree.get(state.opt_state, "value")
    # What was stored is the loss of the image the step ended at (the next step's start).
    np.testing.assert_allclose(float(stored), float(loss_fn(tiny_params, targets, state.image,
                                                            cfg)[0]), rtol=1e-4)
    next_state, metrics = step(tiny_params, targets, state)
    assert float(metrics["loss"]) == pytest.approx(float(stored), rel=1e-6)
    assert sorted(metrics) == ["finite", "loss"]  # no parts: the line search has none
    zero = optax.tree.set(state.opt_state, grad=jax.tree.map(np.zeros_like, optax.tree.get(
        state.opt_state, "grad")))
    still, _ = step(tiny_params, targets, state._replace(opt_state=zero))
    assert np.abs(np.asarray(next_state.image) - np.asarray(state.image)).max() > 1e-6
    np.testing.assert_array_equal(np.asarray(still.image), np.asarray(state.image))


def test_content_layer_weights(tiny_params, images):
    from jaxstyle import loss_fn, make_targets

    content, style, other = images
    cfg = FEW.replace(content_layers=("block2_conv1", "block4_conv1"))
    noisy = np.clip(content + 0.1, 0, 1)
    targets = make_targets(tiny_params, content, style, cfg)
    first = loss_fn(tiny_params, targets, noisy, cfg.replace(content_layer_weights=(1, 0)))[1]
    alone_cfg = cfg.replace(content_layers=("block2_conv1",))
    alone = loss_fn(tiny_params, make_targets(tiny_params, content, style, alone_cfg), noisy,
                    alone_cfg)[1]
    np.testing.assert_allclose(first["content"], alone["content"], rtol=1e-5)


def test_masks_normalise_to_one_per_pixel():
    one = np.zeros((4, 6), np.float32)
    one[:, 3:] = 1.0
    two = np.asarray(normalise_masks(one, 2))
    np.testing.assert_array_equal(two[0, :, :3], 1.0)
    np.testing.assert_array_equal(two[1, :, 3:], 1.0)
    three = np.asarray(normalise_masks(np.stack([one, one, 0 * one]), 3))
    np.testing.assert_allclose(three.sum(0), 1.0)
    np.testing.assert_allclose(three[:, 0, 0], 1 / 3)  # uncovered pixels are shared
    with pytest.raises(ConfigError, match="2 masks for 3 styles"):
        normalise_masks(np.stack([one, one]), 3)


@pytest.mark.integration
def test_regional_style_puts_each_style_in_its_half(real_params):
    """Half/half mask, two very different styles: each half's Gram is nearer its own style."""
    size = 64
    y, x = np.mgrid[0:size, 0:size] / size
    stripes = np.stack([0.5 + 0.5 * np.sin(40 * x), 0.2 * np.ones_like(x), 0.1 + 0 * x], -1)
    blobs = np.stack([0.1 + 0 * x, 0.5 + 0.5 * np.cos(9 * (x + y)) * np.sin(9 * (x - y)),
                      0.9 + 0 * x], -1)
    styles = [stripes[None].astype(np.float32), blobs[None].astype(np.float32)]
    content = np.full((1, size, size, 3), 0.5, np.float32)
    mask = np.zeros((size, size), np.float32)
    mask[:, size // 2:] = 1.0  # left: first style, right: second
    cfg = StyleConfig(steps=60, steps_per_epoch=60, content_weight=0.0, style_weight=1.0)
    image, _ = stylize(real_params, content, styles, cfg, masks=mask)
    halves = np.asarray(normalise_masks(mask, 2))
    layer = "block2_conv1"
    features = vgg19_features(real_params, image[None], (layer,))[layer]
    small = downsample_masks(halves, (layer,))[layer]
    region_grams = np.asarray(masked_gram_matrix(features, small))[0]
    targets = [np.asarray(gram_matrix(vgg19_features(real_params, s, (layer,))[layer]))[0]
               for s in styles]
    for region in range(2):
        own = np.abs(region_grams[region] - targets[region]).mean()
        other = np.abs(region_grams[region] - targets[1 - region]).mean()
        assert own < other, (region, own, other)


def test_a_multiscale_run_resumed_at_any_scale_equals_the_unbroken_run(tiny_params, images,
                                                                       tmp_path):
    from jaxstyle.gatys import StylizeInterrupted, load_state, save_state
    from jaxstyle.gatys.loop import saved_image_size
    from jaxstyle.gatys.pipeline import resume_template

    content, style, _ = images
    big = pipeline.resize_images(content, (64, 96))
    # EMA and the carried optimiser: every leaf of the state must survive the checkpoint.
    cfg = FEW.replace(scales=2, scale_steps=(3, 4), style_weight=1.0, carry_optimizer=True,
                      ema=0.9)
    unbroken, history = stylize(tiny_params, big, style, cfg)
    # Stopped (as Ctrl-C stops it) inside scale 1, at its last step (saved before moving up
    # a scale), and inside scale 2.
    for stop_at, saved_size in ((2, (32, 48)), (3, (32, 48)), (5, (64, 96))):
        def interrupt(step, metrics, state, stop_at=stop_at):
            if step == stop_at:
                raise KeyboardInterrupt

        with pytest.raises(StylizeInterrupted) as stopped:
            stylize(tiny_params, big, style, cfg, callback=interrupt)
        path = tmp_path / f"at{stop_at}.ckpt"
        save_state(path, stopped.value.state)
        assert saved_image_size(path) == saved_size
        state = load_state(path, resume_template(saved_size, big, cfg))
        assert int(state.step) == stop_at
        resumed, rest = stylize(tiny_params, big, style, cfg, state=state)
        np.testing.assert_array_equal(np.asarray(resumed), np.asarray(unbroken))
        assert rest == history[stop_at:]
    # A checkpoint of another run is refused in one line, before any step: a coarse scale's
    # size no scale of this run has, or a step outside its scale's.
    coarse = tmp_path / "at2.ckpt"
    state = load_state(coarse, resume_template((32, 48), big, cfg))
    with pytest.raises(JaxstyleError, match="another size or scales"):
        stylize(tiny_params, big, style, cfg.replace(scale_factor=1.5), state=state)
    state = load_state(path, resume_template((64, 96), big, cfg))  # step 5, at scale 2
    with pytest.raises(JaxstyleError, match="other steps per scale"):
        stylize(tiny_params, big, style, cfg.replace(scale_steps=(6, 4)), state=state)
    assert np.abs(np.asarray(stopped.value.image) - np.asarray(unbroken)).max() > 0
