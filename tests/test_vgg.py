import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_image
from jaxstyle.vgg import VGG19, pool2x2, preprocess, vgg19_features
from reference import np_pool, np_preprocess, np_vgg


def test_preprocess_matches_keras_caffe_mode(rng):
    images = rng.uniform(size=(1, 4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(jax.jit(preprocess)(images), np_preprocess(images), rtol=1e-5,
                               atol=1e-3)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool2x2_matches_numpy_and_drops_odd_edge(rng, kind):
    x = rng.standard_normal((1, 7, 9, 2)).astype(np.float32)
    got = jax.jit(pool2x2, static_argnums=1)(x, kind)
    assert got.shape == (1, 3, 4, 2)
    np.testing.assert_allclose(got, np_pool(x, kind), rtol=1e-6)


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_features_match_numpy_reference(tiny_params, rng, pooling):
    images = random_image(rng, 36, 44)
    layers = ("block1_conv1", "block2_conv2", "block3_conv1", "block4_conv1", "block5_conv2")
    got = jax.jit(lambda p, x: vgg19_features(p, x, layers, pooling))(tiny_params, images)
    expected = np_vgg(tiny_params, images, layers, pooling)
    for name in layers:
        assert got[name].shape == expected[name].shape
        rel = np.linalg.norm(got[name] - expected[name]) / np.linalg.norm(expected[name])
        assert rel < 1e-4, (name, rel)


def test_network_stops_at_deepest_requested_layer(tiny_params):
    model = VGG19(layers=("block2_conv1",))
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    assert sorted(variables["params"]) == ["block1_conv1", "block1_conv2", "block2_conv1"]
    jaxpr = jax.make_jaxpr(lambda p, x: vgg19_features(p, x, ("block2_conv1",)))(
        tiny_params, jnp.zeros((1, 32, 32, 3)))
    assert str(jaxpr).count("conv_general_dilated") == 3


def test_remat_and_bf16_give_the_same_features(tiny_params, rng):
    images = random_image(rng, 32, 32)
    layers = ("block3_conv1", "block5_conv1")
    plain = vgg19_features(tiny_params, images, layers)
    remat = vgg19_features(tiny_params, images, layers, remat=True)
    half = vgg19_features(tiny_params, images, layers, dtype=jnp.bfloat16)
    for name in layers:
        np.testing.assert_allclose(remat[name], plain[name], rtol=1e-5, atol=1e-5)
        assert half[name].dtype == jnp.float32
        rel = np.linalg.norm(half[name] - plain[name]) / np.linalg.norm(plain[name])
        assert rel < 0.05, (name, rel)


def test_remat_gradients_match(tiny_params, rng):
    images = random_image(rng, 32, 32)

    def loss(x, remat):
        return vgg19_features(tiny_params, x, ("block4_conv1",), remat=remat)["block4_conv1"].sum()

    np.testing.assert_allclose(jax.grad(loss)(images, True), jax.grad(loss)(images, False),
                               rtol=1e-4, atol=1e-6)


def test_remat_gives_the_weights_their_gradients(tiny_params, rng):
    """remat's custom VJP takes the weights as arguments: jax.grad with respect to them
    matches the plain forward pass's (once an error: a custom VJP's closed-over values)."""
    from jaxstyle.vgg import prepare_params

    images = random_image(rng, 32, 32)
    layers = ("block1_conv2", "block3_conv1")

    def energy(params, remat):
        features = vgg19_features(params, images, layers, remat=remat)
        return sum(jnp.sum(jnp.square(f)) for f in features.values())

    plain = jax.grad(energy)(tiny_params, False)
    for params in (tiny_params, prepare_params(tiny_params)):
        remat = jax.grad(energy)(params, True)
        for name in ("block1_conv1", "block2_conv2", "block3_conv1"):
            scale = float(jnp.abs(plain[name]["kernel"]).max())
            assert scale > 0
            np.testing.assert_allclose(remat[name]["kernel"], plain[name]["kernel"],
                                       atol=1e-4 * scale)
            np.testing.assert_allclose(remat[name]["bias"], plain[name]["bias"],
                                       atol=1e-4 * float(jnp.abs(plain[name]["bias"]).max()))


@pytest.mark.parametrize("shape", [(1, 31, 40, 3), (1, 40, 40, 4), (40, 40, 4), (40, 40)])
def test_bad_input_shapes_raise(tiny_params, shape):
    with pytest.raises(ValueError):
        vgg19_features(tiny_params, jnp.zeros(shape), ("block1_conv1",))


def test_prepared_params_give_identical_features_and_image_gradients(tiny_params, rng):
    from jaxstyle.vgg import prepare_params

    prepared = prepare_params(tiny_params)
    assert set(prepared["block3_conv2"]) == {"kernel", "bias", "grad_kernel"}
    images = random_image(rng, 32, 40)
    layers = ("block2_conv1", "block4_conv2")

    def loss(x, p):
        features = vgg19_features(p, x, layers)
        return sum(jnp.square(f).mean() for f in features.values())

    np.testing.assert_array_equal(loss(images, prepared), loss(images, tiny_params))
    np.testing.assert_allclose(jax.grad(loss)(images, prepared),
                               jax.grad(loss)(images, tiny_params),
                               rtol=1e-5, atol=1e-7)


def test_max_pool_gradient_goes_to_the_window_maximum(rng):
    x = rng.standard_normal((1, 6, 8, 3)).astype(np.float32)  # continuous: no ties
    weights = rng.standard_normal((1, 3, 4, 3)).astype(np.float32)
    grad = jax.jit(jax.grad(lambda v: (pool2x2(v) * weights).sum()))(x)
    windows = x.reshape(1, 3, 2, 4, 2, 3)
    at_max = windows == windows.max(axis=(2, 4), keepdims=True)
    expected = (at_max * weights[:, :, None, :, None, :]).reshape(x.shape)
    np.testing.assert_array_equal(grad, expected)


def test_weight_gradients_through_prepared_params_match_plain_and_stale_kernels_are_refused():
    import jax
    import jax.numpy as jnp
    import numpy as np
    import pytest

    from jaxstyle.vgg import VGG19_CONV_LAYERS, prepare_params, vgg19_features

    rng = np.random.default_rng(7)
    params = {name: {"kernel": jnp.asarray(rng.normal(0, np.sqrt(2 / (9 * cin)),
                                                      (3, 3, cin, cout)), jnp.float32),
                     "bias": jnp.zeros(cout, jnp.float32)}
              for name, cin, cout in VGG19_CONV_LAYERS[:4]}
    images = jnp.asarray(rng.uniform(size=(1, 32, 32, 3)), jnp.float32)

    def energy(p):
        features = vgg19_features(p, images, ("block1_conv1", "block2_conv2"))
        return sum(jnp.sum(jnp.square(f)) for f in features.values())

    plain, prepared = jax.grad(energy)(params), jax.grad(energy)(prepare_params(params))
    for name in params:
        scale = float(jnp.abs(plain[name]["kernel"]).max())
        assert scale > 0
        np.testing.assert_allclose(prepared[name]["kernel"], plain[name]["kernel"],
                                   atol=1e-4 * scale)
    ready = prepare_params(params)
    edited = {**ready, "block1_conv1": {**ready["block1_conv1"],
                                        "kernel": ready["block1_conv1"]["kernel"] * 2}}
    with pytest.raises(ValueError, match="block1_conv1.*grad_kernel"):
        prepare_params(edited)
