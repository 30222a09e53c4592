import jax
import numpy as np
import pytest

from jaxstyle import losses


def np_gram(f):
    n, h, w, c = f.shape
    flat = f.reshape(n, h * w, c).astype(np.float64)
    return np.einsum("npc,npd->ncd", flat, flat) / (h * w)


def test_gram_matrix_matches_numpy(rng):
    features = rng.standard_normal((2, 5, 7, 4)).astype(np.float32)
    got = jax.jit(losses.gram_matrix)(features)
    np.testing.assert_allclose(got, np_gram(features), rtol=1e-5, atol=1e-6)
    assert got.shape == (2, 4, 4)


def test_gram_matrix_rejects_wrong_rank():
    with pytest.raises(ValueError, match="N, H, W, C"):
        losses.gram_matrix(np.zeros((5, 7, 4), np.float32))


def test_masked_gram_with_ones_equals_gram(rng):
    features = rng.standard_normal((1, 6, 8, 3)).astype(np.float32)
    masks = np.ones((2, 6, 8), np.float32)
    got = jax.jit(losses.masked_gram_matrix)(features, masks)
    np.testing.assert_allclose(got[0, 1], np_gram(features)[0], rtol=1e-5, atol=1e-6)


def test_masked_gram_matches_numpy(rng):
    features = rng.standard_normal((1, 6, 8, 3)).astype(np.float32)
    masks = rng.uniform(size=(2, 6, 8)).astype(np.float32)
    got = jax.jit(losses.masked_gram_matrix)(features, masks)
    f = features[0].reshape(-1, 3).astype(np.float64)
    for s in range(2):
        m = masks[s].reshape(-1, 1)
        expected = (f * m).T @ f / m.sum()
        np.testing.assert_allclose(got[0, s], expected, rtol=1e-5, atol=1e-6)


def test_masked_gram_rejects_mask_of_wrong_size():
    with pytest.raises(ValueError, match="masks must be"):
        losses.masked_gram_matrix(np.zeros((1, 6, 8, 3), np.float32), np.ones((1, 5, 8)))


def test_mean_squared_error_and_content_loss(rng):
    a, b = rng.standard_normal((2, 1, 4, 4, 3)).astype(np.float32)
    expected = np.mean((a.astype(np.float64) - b) ** 2)
    np.testing.assert_allclose(jax.jit(losses.mean_squared_error)(a, b), expected, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(losses.content_loss)(a, b), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        losses.content_loss(a, b[:, :2])


def test_style_loss_matches_numpy(rng):
    features = rng.standard_normal((1, 5, 5, 3)).astype(np.float32)
    target = rng.standard_normal((1, 3, 3)).astype(np.float32)
    expected = np.mean((np_gram(features) - target) ** 2)
    np.testing.assert_allclose(jax.jit(losses.style_loss)(features, target), expected, rtol=1e-5)


def test_total_variation_matches_numpy(rng):
    images = rng.uniform(size=(2, 6, 9, 3)).astype(np.float32)
    expected = (np.abs(np.diff(images, axis=1)).sum(axis=(1, 2, 3))
                + np.abs(np.diff(images, axis=2)).sum(axis=(1, 2, 3)))
    got = jax.jit(losses.total_variation)(images)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_total_variation_of_constant_image_is_zero():
    assert float(losses.total_variation(np.full((1, 8, 8, 3), 0.3, np.float32))[0]) == 0.0


def test_weighted_mean(rng):
    values = [np.float32(1.0), np.float32(3.0)]
    assert float(losses.weighted_mean(values)) == pytest.approx(2.0)
    assert float(losses.weighted_mean(values, (3.0, 1.0))) == pytest.approx(1.5)


def test_gram_matrix_gradient_matches_numpy(rng):
    features = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    weights = rng.standard_normal((2, 4, 4)).astype(np.float32)
    grad = jax.jit(jax.grad(lambda f: (losses.gram_matrix(f) * weights).sum()))(features)
    flat = features.reshape(2, 15, 4).astype(np.float64)
    expected = np.einsum("npc,ncd->npd", flat, weights + weights.transpose(0, 2, 1)) / 15
    np.testing.assert_allclose(grad, expected.reshape(features.shape), rtol=1e-5, atol=1e-6)


def test_layout_loss_matches_numpy_and_ignores_texture(rng):
    from jaxstyle.losses import layout_loss

    photos = rng.random((2, 20, 27, 3)).astype(np.float32)
    images = rng.random((2, 20, 27, 3)).astype(np.float32)
    luma = lambda x: x @ np.array([0.299, 0.587, 0.114], np.float32)  # noqa: E731
    pooled = lambda x: luma(x)[:, :16, :24].reshape(2, 2, 8, 3, 8).mean(axis=(2, 4))  # noqa: E731
    want = np.square(pooled(images) - pooled(photos)).mean(axis=(1, 2))
    np.testing.assert_allclose(jax.jit(layout_loss)(images, photos), want, rtol=1e-5)
    # Texture inside each 8 px block that averages out (a +-0.1 checkerboard) costs nothing;
    # the same brightness moved to another block does.
    y, x = np.mgrid[:16, :24]
    board = np.where((x + y) % 2, 0.1, -0.1)[None, ..., None].astype(np.float32)
    flat = np.full((1, 16, 24, 3), 0.5, np.float32)
    assert float(layout_loss(flat + board, flat)[0]) < 1e-10
    brighter = flat.copy()
    brighter[:, :8, :8] += 0.1
    assert float(layout_loss(brighter, flat)[0]) > 1e-4
    with pytest.raises(ValueError, match="shapes differ"):
        layout_loss(flat, flat[:, :8])


def test_layout_decorrelation_keeps_shapes_and_frees_the_light(rng):
    from jaxstyle.losses import layout_decorrelation
    from jaxstyle.quality import layout_score

    photos = rng.random((2, 64, 96, 3)).astype(np.float32)
    # With 8 px blocks on a 256 px short side it is 1 - the quality score (box-averaged to
    # a 32 px short side).
    big = np.kron(photos[:1], np.ones((1, 4, 4, 1), np.float32))
    noise = (big + 0.3 * rng.standard_normal(big.shape)).clip(0, 1).astype(np.float32)
    got = float(jax.jit(layout_decorrelation)(noise, big)[0])
    assert got == pytest.approx(1 - layout_score(noise[0], big[0]), abs=1e-4)
    assert got > 0.01
    # Darker and flatter light keeps the shapes: (almost) nothing to pay. The same light
    # with the shapes moved costs.
    assert float(layout_decorrelation(0.4 * photos + 0.1, photos).max()) < 1e-5
    assert float(layout_decorrelation(photos[:, ::-1], photos).min()) > 0.3
    grad = jax.grad(lambda x: layout_decorrelation(x, photos).sum())(np.full_like(photos, 0.5))
    assert np.isfinite(np.asarray(grad)).all()  # a flat output still gets a gradient


def test_grid_loss_is_the_quality_grid_and_catches_a_checkerboard(rng):
    from jaxstyle.losses import grid_loss
    from jaxstyle.quality import grid_excess

    photos = rng.random((2, 48, 64, 3)).astype(np.float32)
    images = (photos + 0.2 * rng.random(photos.shape)).astype(np.float32)
    want = [max(grid_excess(i, p), 0.0) for i, p in zip(images, photos)]
    np.testing.assert_allclose(jax.jit(grid_loss)(images, photos), want, rtol=1e-4, atol=1e-6)
    # An 8 px checkerboard over the photo is a grid: far above the 0.05 target.
    y, x = np.mgrid[:48, :64]
    board = np.where((x // 8 + y // 8) % 2, 0.2, -0.2)[None, ..., None].astype(np.float32)
    assert float(grid_loss((0.6 * photos + 0.2 + board), photos).min()) > 0.3
    assert float(grid_loss(photos, photos).max()) == 0.0
    grad = jax.grad(lambda i: grid_loss(i, photos).sum())(0.6 * photos + 0.2 + board)
    assert np.isfinite(np.asarray(grad)).all() and float(np.abs(grad).max()) > 0
    with pytest.raises(ValueError, match="too small"):
        grid_loss(photos[:, :16], photos[:, :16])
