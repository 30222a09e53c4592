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
