"""Property tests (hypothesis) of the library's conventions (issue 35, item 12).

- Ranks: an (H, W, 3) image gives what the batch of one (1, H, W, 3) gives (per_image_loss,
  loss_fn, make_targets, init_state, vgg19_features, total_variation; preprocess over any
  leading axes), and each image of an (N, H, W, 3) batch gets what it gets alone (those, and
  the losses, whose one-image path differs from the batched one).
- Dtypes: uint8 is x / 255 everywhere, vgg19_features, preprocess and total_variation
  included; other integer types, bool and complex are refused naming the argument;
  float16, bfloat16, float32 and float64 in [0, 1] run as float32.
- Ranges: a float image is accepted exactly when every value lies in [-tol, 1 + tol]; NaN, inf
  and 0-255 images are refused by every public function, naming the argument.
- StyleConfig: Python, NumPy and JAX scalars (and 0-d arrays) are stored as Python numbers of
  the field's type; sequences as tuples of them; equal configs hash equal; bad numbers are
  refused naming the field; a comma-separated layer string equals the tuple, and an unknown
  layer is refused by name; targets made under another config name the missing layer.

Shapes come from a small fixed set, so JAX compiles each program a few times, not once per
example; bulk pixel values come from a drawn seed.
"""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import jaxstyle
from jaxstyle import ConfigError, StyleConfig
from jaxstyle.losses import content_loss, gram_matrix, per_image_mse, style_loss, total_variation
from jaxstyle.objective import RANGE_TOLERANCE, Targets, as_image_batch, check_targets_match
from jaxstyle.vgg import BGR_MEAN, LAYER_NAMES, preprocess, vgg19_features

TOL = RANGE_TOLERANCE
FEW = settings(max_examples=6, deadline=None)
SOME = settings(max_examples=25, deadline=None)
MANY = settings(max_examples=100, deadline=None)

SHAPE = (32, 40)  # the targets' content size: images given to the loss have it
SHAPES = ((32, 32), SHAPE)
SHALLOW = tuple(name for name in LAYER_NAMES if name.startswith(("block1", "block2")))
LAYERS = dict(content_layers=("block2_conv2",), style_layers=("block1_conv1", "block2_conv1"))
CFG = StyleConfig(steps=2, max_dim=64, **LAYERS)

FLOAT_DTYPES = (np.float16, jnp.bfloat16, np.float32, np.float64)
REFUSED_DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint32, np.uint64,
                  np.bool_, np.complex64)


class Net:
    """Tiny VGG19 params (blocks 1-2) and targets made with them at SHAPE, in one fixture
    argument with a short repr (hypothesis prints a failing example's arguments)."""

    def __init__(self, params, targets):
        self.params, self.targets = params, targets

    def __repr__(self):
        return f"<tiny VGG19 blocks 1-2, targets at {SHAPE}>"


@pytest.fixture(scope="module")
def net(tiny_params):
    params = jax.device_put({k: v for k, v in tiny_params.items()
                             if k.startswith(("block1", "block2"))})
    rng = np.random.default_rng(0)
    photo, painting = rng.uniform(size=(*SHAPE, 3)), rng.uniform(size=(32, 32, 3))
    return Net(params, jaxstyle.make_targets(params, photo.astype(np.float32),
                                             painting.astype(np.float32), CFG))


seeds = st.integers(0, 2**32 - 1)


class Drawn:
    """An array hypothesis drew, shown by how it was made rather than by its values (a failing
    example is printed, and 4000 pixel values would say nothing)."""

    def __init__(self, array: np.ndarray, recipe: str):
        self.array, self.recipe = array, recipe

    def __repr__(self):
        return f"<{self.recipe}>"


@st.composite
def unit_images(draw, shape=None, lead=()):
    """Float32 RGB in [0, 1] (`Drawn`): (*lead, H, W, 3), values uniform in a drawn
    [low, high], with an exact 0 and 1 sometimes."""
    height, width = draw(st.sampled_from(SHAPES)) if shape is None else shape
    low = draw(st.floats(0, 1))
    high = draw(st.floats(low, 1))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    image = rng.uniform(low, high, (*lead, height, width, 3))
    edges = draw(st.booleans())
    if edges:
        image.reshape(-1)[rng.integers(image.size, size=2)] = (0.0, 1.0)
    return Drawn(image.astype(np.float32), f"{image.shape} in [{low}, {high}], seed {seed}"
                 f"{', with a 0 and a 1' if edges else ''}")


def byte_images(seed, shape=SHAPE, lead=()):
    return np.random.default_rng(seed).integers(0, 256, (*lead, *shape, 3)).astype(np.uint8)


def close(a, b, rtol=1e-5, atol=1e-6):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x, np.float64),
                                                         np.asarray(y, np.float64),
                                                         rtol=rtol, atol=atol), a, b)


# --- Ranks ---------------------------------------------------------------------------------


@FEW
@given(images=st.integers(1, 3).flatmap(lambda n: unit_images(SHAPE, lead=(n,))))
def test_per_image_loss_gives_each_image_what_it_gets_alone(net, images):
    images = images.array
    params, targets = net.params, net.targets
    alone = [jaxstyle.per_image_loss(params, targets, image, CFG) for image in images]
    for (totals, parts), image in zip(alone, images):
        batch_of_one = jaxstyle.per_image_loss(params, targets, image[None], CFG)
        assert totals.shape == (1,) and set(parts) == {"content", "style", "tv"}
        close((totals, parts), batch_of_one, rtol=0, atol=0)
    totals, parts = jaxstyle.per_image_loss(params, targets, images, CFG)
    assert totals.shape == (len(images),)
    close(totals, np.concatenate([t for t, _ in alone]))
    close(parts, {k: np.concatenate([p[k] for _, p in alone]) for k in parts})
    total, mean_parts = jaxstyle.loss_fn(params, targets, images, CFG)
    assert total.shape == () and all(v.shape == () for v in mean_parts.values())
    close(total, np.mean([t[0] for t, _ in alone]))
    one, _ = jaxstyle.loss_fn(params, targets, images[0], CFG)
    close(one, alone[0][0][0], rtol=0, atol=0)


@FEW
@given(image=unit_images(SHAPE), copies=st.integers(2, 3))
def test_copies_of_one_image_each_get_its_loss_and_the_mean_is_its_loss(net, image, copies):
    image = image.array
    params, targets = net.params, net.targets
    one, one_parts = jaxstyle.loss_fn(params, targets, image, CFG)
    totals, _ = jaxstyle.per_image_loss(params, targets, np.stack([image] * copies), CFG)
    close(totals, np.full(copies, float(one)))
    close(jaxstyle.loss_fn(params, targets, np.stack([image] * copies), CFG), (one, one_parts))


@FEW
@given(content=unit_images(), style=unit_images())
def test_make_targets_and_init_state_take_one_image_or_a_batch_of_one(net, content, style):
    content, style = content.array, style.array
    params = net.params
    single = jaxstyle.make_targets(params, content, style, CFG)
    batched = jaxstyle.make_targets(params, content[None], style[None], CFG)
    assert single.content["block2_conv2"].shape[0] == 1
    close(single, batched, rtol=0, atol=0)
    state = jaxstyle.init_state(content, CFG)
    assert state.image.shape == (1, *content.shape)
    close(state.image, jaxstyle.init_state(content[None], CFG).image, rtol=0, atol=0)
    close(state.image[0], content, rtol=0, atol=0)


@FEW
@given(images=st.integers(1, 3).flatmap(lambda n: unit_images(lead=(n,))))
def test_vgg19_features_of_a_batch_are_each_images_own(net, images):
    images = images.array
    params = net.params
    batch = vgg19_features(params, images, SHALLOW)
    assert list(batch) == list(SHALLOW)
    for i, image in enumerate(images):
        alone = vgg19_features(params, image[None], SHALLOW)
        close({k: v[i:i + 1] for k, v in batch.items()}, alone, rtol=1e-4, atol=1e-5)
        # One (H, W, 3) image is a batch of one, as in every public function.
        close(vgg19_features(params, image, SHALLOW), alone, rtol=0, atol=0)


@SOME
@given(lead=st.sampled_from([(), (1,), (2,), (2, 1)]), data=st.data())
def test_preprocess_is_elementwise_over_any_leading_axes(lead, data):
    image = data.draw(unit_images((4, 5), lead=lead)).array
    got = np.asarray(preprocess(jnp.asarray(image)))
    assert got.shape == image.shape
    np.testing.assert_allclose(got, image[..., ::-1] * 255.0 - np.asarray(BGR_MEAN), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(preprocess(jnp.asarray(image[None])))[0], got)


@st.composite
def feature_batches(draw):
    """(N, h, w, C) features >= 0 (post-ReLU) from a small fixed set of shapes (`Drawn`)."""
    n = draw(st.integers(1, 3))
    h, w = draw(st.sampled_from([(4, 4), (4, 6)]))
    scale = draw(st.floats(1e-3, 1e3))
    rng = np.random.default_rng(draw(seeds))
    features = np.maximum(rng.standard_normal((n, h, w, 8)), 0) * scale
    return Drawn(features.astype(np.float32), f"{features.shape} relu(normal) x {scale}, seed "
                 f"{rng.bit_generator.seed_seq.entropy}")


@SOME
@given(features=feature_batches())
def test_grams_and_total_variation_of_a_batch_are_each_images_own(features):
    features = features.array
    grams = np.asarray(gram_matrix(jnp.asarray(features)))
    _, h, w, _ = features.shape
    reference = np.einsum("nhwc,nhwd->ncd", features.astype(np.float64),
                          features.astype(np.float64)) / (h * w)
    np.testing.assert_allclose(grams, reference, rtol=1e-5, atol=1e-6 * reference.max())
    tv = np.asarray(total_variation(jnp.asarray(features)))
    reference_tv = (np.abs(np.diff(features.astype(np.float64), axis=1)).sum(axis=(1, 2, 3))
                    + np.abs(np.diff(features.astype(np.float64), axis=2)).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(tv, reference_tv, rtol=1e-5)
    for i in range(len(features)):  # one image takes the 2-D matmul path; a batch does not
        alone = jnp.asarray(features[i:i + 1])
        np.testing.assert_allclose(grams[i], gram_matrix(alone)[0], rtol=1e-5,
                                   atol=1e-6 * reference.max())
        np.testing.assert_allclose(tv[i], total_variation(alone)[0], rtol=1e-5)
        np.testing.assert_array_equal(total_variation(jnp.asarray(features[i])),
                                      total_variation(alone))


@SOME
@given(features=feature_batches(), data=st.data())
def test_losses_broadcast_one_target_and_copies_give_the_single_loss(features, data):
    features = features.array
    target = data.draw(feature_batches().filter(
        lambda t: t.array.shape[1:] == features.shape[1:])).array[:1]
    n = len(features)
    shared = np.asarray(per_image_mse(jnp.asarray(features), jnp.asarray(target)))
    repeated = np.asarray(per_image_mse(jnp.asarray(features),
                                        jnp.asarray(np.repeat(target, n, axis=0))))
    np.testing.assert_allclose(shared, repeated, rtol=0)
    np.testing.assert_allclose(
        shared, ((features.astype(np.float64) - target) ** 2).mean(axis=(1, 2, 3)), rtol=1e-4)
    copies = jnp.asarray(np.repeat(features[:1], 3, axis=0))
    np.testing.assert_allclose(content_loss(copies, jnp.repeat(target, 3, axis=0)),
                               content_loss(jnp.asarray(features[:1]), jnp.asarray(target)),
                               rtol=1e-5)
    gram = gram_matrix(jnp.asarray(target))
    np.testing.assert_allclose(style_loss(copies, jnp.repeat(gram, 3, axis=0)),
                               style_loss(jnp.asarray(features[:1]), gram), rtol=1e-4)


# --- Dtypes --------------------------------------------------------------------------------


@FEW
@given(seed=seeds)
def test_uint8_images_are_divided_by_255_everywhere(net, seed):
    params, targets = net.params, net.targets
    as_bytes = byte_images(seed)
    as_floats = as_bytes.astype(np.float32) / 255.0
    assert as_image_batch(as_bytes, "x").dtype == jnp.float32
    close(as_image_batch(as_bytes, "x"), as_floats[None], rtol=0, atol=1e-7)
    close(preprocess(jnp.asarray(as_bytes)), preprocess(jnp.asarray(as_floats)), atol=1e-4)
    close(vgg19_features(params, as_bytes[None], SHALLOW),
          vgg19_features(params, as_floats[None], SHALLOW), rtol=1e-5, atol=1e-5)
    close(jaxstyle.loss_fn(params, targets, as_bytes, CFG),
          jaxstyle.loss_fn(params, targets, as_floats, CFG), rtol=1e-5, atol=1e-5)
    close(jaxstyle.init_state(as_bytes, CFG).image, as_floats[None], rtol=0, atol=1e-7)
    close(total_variation(jnp.asarray(as_bytes)), total_variation(jnp.asarray(as_floats)),
          rtol=1e-5, atol=1e-4)


def public_calls(net):
    """(call(bad_image), the argument's name in the error) for each public way in."""
    params, targets = net.params, net.targets
    good = np.full((*SHAPE, 3), 0.5, np.float32)
    return [
        (lambda x: as_image_batch(x, "my photo"), "my photo"),
        (lambda x: jaxstyle.make_targets(params, x, good, CFG), "content image"),
        (lambda x: jaxstyle.make_targets(params, good, x, CFG), "style image 1"),
        (lambda x: jaxstyle.make_targets(params, good, [good, x], CFG), "style image 2"),
        (lambda x: jaxstyle.init_state(x, CFG), "content image"),
        (lambda x: jaxstyle.init_state(good, CFG, init_image=x), "init image"),
        (lambda x: jaxstyle.loss_fn(params, targets, x, CFG), "images"),
        (lambda x: jaxstyle.per_image_loss(params, targets, x, CFG), "images"),
        (lambda x: jaxstyle.stylize(params, x, good, CFG), "content image"),
        (lambda x: jaxstyle.stylize(params, good, x, CFG), "style image 1"),
    ]


@FEW
@given(dtype=st.sampled_from(REFUSED_DTYPES), batched=st.booleans(), seed=seeds)
def test_integer_bool_and_complex_images_are_refused_naming_the_argument(net, dtype, batched,
                                                                         seed):
    # Values 0 and 1 only: it is the dtype that is refused, not the values.
    image = np.random.default_rng(seed).integers(0, 2, (*SHAPE, 3)).astype(dtype)
    image = image[None] if batched else image
    calls = public_calls(net) + [
        (preprocess, "images"),
        (lambda x: vgg19_features(net.params, x if batched else x[None], SHALLOW), "images")]
    for call, name in calls:
        with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be float RGB in "
                                             rf"\[0, 1\] or uint8, got dtype {np.dtype(dtype)}"):
            call(image)


@SOME
@given(image=unit_images(), dtype=st.sampled_from(FLOAT_DTYPES), batched=st.booleans())
def test_float_images_in_range_of_any_float_dtype_run_as_float32(image, dtype, batched):
    image = image.array
    typed = (image[None] if batched else image).astype(dtype)
    got = as_image_batch(typed, "image")
    assert got.dtype == jnp.float32 and got.shape == (1, *image.shape)
    np.testing.assert_array_equal(np.asarray(got), typed.astype(np.float32).reshape(got.shape))


# --- Ranges --------------------------------------------------------------------------------

odd_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-3 * TOL, 3 * TOL), st.floats(1 - 3 * TOL, 1 + 3 * TOL),
    st.sampled_from([-TOL / 2, 1 + TOL / 2, 1 + 2 * TOL, 255.0, 1.5, -1.0]))
names = st.text(st.characters(codec="ascii", categories=("L", "N", "Zs")), min_size=1,
                max_size=16)


@MANY
@given(image=unit_images(), value=odd_values, dtype=st.sampled_from(FLOAT_DTYPES),
       where=st.integers(0, 32 * 32 * 3 - 1), name=names)
def test_a_float_image_is_accepted_exactly_when_all_values_are_within_tolerance(
        image, value, dtype, where, name):
    image = image.array
    typed = image.astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        typed.reshape(-1)[where] = value  # rounded to what the dtype holds
    held = float(np.asarray(typed.reshape(-1)[where], np.float32))
    # Away from the two limits by more than float32 rounding, the answer is clear.
    assume(not any(abs(held - limit) < 1e-6 for limit in (-TOL, 1 + TOL)))
    if -TOL <= held <= 1 + TOL:
        got = as_image_batch(typed, name)
        np.testing.assert_array_equal(np.asarray(got)[0], typed.astype(np.float32))
    else:
        with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be RGB floats in "
                                             r"\[0, 1\], got values in") as error:
            as_image_batch(typed, name)
        assert ("divide by 255" in str(error.value)) == (held > 1.5)


@FEW
@given(kind=st.sampled_from(["0-255", "nan", "inf", "-inf", "over", "under"]),
       image=unit_images(SHAPE), batched=st.booleans(), seed=seeds)
def test_every_public_function_refuses_out_of_range_images_by_name(net, kind, image, batched,
                                                                   seed):
    rng, image = np.random.default_rng(seed), image.array
    bad = {"0-255": lambda x: x * 255.0 + 2.0, "nan": lambda x: x * np.nan,
           "inf": lambda x: x + np.inf, "-inf": lambda x: x - np.inf,
           "over": lambda x: x + 1 + 2 * TOL, "under": lambda x: x - 1 - 2 * TOL}[kind]
    mask = np.zeros(image.shape, bool)
    mask.reshape(-1)[rng.integers(image.size, size=rng.integers(1, 4))] = True
    image = np.where(mask, bad(image), image).astype(np.float32)
    hint = not np.isnan(image).any() and image.max() > 1.5  # NaN: no max to judge by
    for call, name in public_calls(net):
        with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be RGB floats in "
                                             r"\[0, 1\]") as error:
            call(image[None] if batched else image)
        assert ("divide by 255" in str(error.value)) == hint


# --- StyleConfig ---------------------------------------------------------------------------

FLOAT_WRAPPERS = {"float": float, "np.float32": np.float32, "np.float64": np.float64,
                  "0-d ndarray": np.asarray, "jnp.float32": jnp.float32, "0-d jax": jnp.asarray}
INT_WRAPPERS = {"int": int, "np.int16": np.int16, "np.int32": np.int32, "np.int64": np.int64,
                "np.uint16": np.uint16, "0-d ndarray": np.asarray, "jnp.int32": jnp.int32,
                "0-d jax": jnp.asarray}
BOOL_WRAPPERS = {"bool": bool, "np.bool_": np.bool_, "0-d ndarray": np.asarray,
                 "jnp.bool_": jnp.bool_, "0-d jax": jnp.asarray}
SEQUENCE_WRAPPERS = {"tuple": tuple, "list": list, "ndarray": np.asarray, "jax": jnp.asarray,
                     "tuple of jax": lambda v: tuple(jnp.asarray(x) for x in v),
                     "list of numpy": lambda v: [np.float32(x) for x in v]}

# Valid values of each numeric field (beyond these, check_config refuses them).
FLOAT_FIELDS = {"content_weight": st.floats(0, 1e6), "style_weight": st.floats(0, 1e6),
                "tv_weight": st.floats(0, 1e6), "learning_rate": st.floats(1e-6, 10),
                "beta1": st.floats(0, 0.999), "beta2": st.floats(0, 0.999),
                "epsilon": st.floats(0, 10), "ema": st.floats(0, 0.999),
                "style_scale": st.floats(0.01, 10), "scale_factor": st.floats(1.01, 4)}
INT_FIELDS = {"epochs": st.integers(1, 10_000), "steps_per_epoch": st.integers(1, 10_000),
              "steps": st.integers(1, 10_000), "scales": st.integers(1, 8),
              "max_dim": st.integers(32, 8192), "style_max_dim": st.integers(32, 8192),
              "seed": st.integers(0, 30_000)}
BOOL_FIELDS = ("carry_optimizer", "remat")


def same_config(a: StyleConfig, b: StyleConfig) -> None:
    assert a == b and hash(a) == hash(b)
    for field in dataclasses.fields(StyleConfig):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert type(x) is type(y), field.name
        if isinstance(x, tuple):
            assert [type(v) for v in x] == [type(v) for v in y], field.name


@MANY
@given(data=st.data())
def test_numeric_fields_store_python_numbers_from_any_scalar_type(data):
    kind = data.draw(st.sampled_from(["float", "int", "bool"]))
    if kind == "float":
        field = data.draw(st.sampled_from(sorted(FLOAT_FIELDS)))
        wrapper = data.draw(st.sampled_from(sorted(FLOAT_WRAPPERS)))
        value = FLOAT_WRAPPERS[wrapper](data.draw(FLOAT_FIELDS[field]))
        plain = float(value)
    elif kind == "int":
        field = data.draw(st.sampled_from(sorted(INT_FIELDS)))
        wrapper = data.draw(st.sampled_from(sorted(INT_WRAPPERS)))
        value = INT_WRAPPERS[wrapper](data.draw(INT_FIELDS[field]))
        plain = int(value)
    else:
        field = data.draw(st.sampled_from(BOOL_FIELDS))
        wrapper = data.draw(st.sampled_from(sorted(BOOL_WRAPPERS)))
        value = BOOL_WRAPPERS[wrapper](data.draw(st.booleans()))
        plain = bool(value)
    cfg = StyleConfig(**{field: value})
    stored = getattr(cfg, field)
    assert type(stored) is type(plain) and stored == plain, (field, wrapper)
    same_config(cfg, StyleConfig(**{field: plain}))
    same_config(cfg, StyleConfig(**dataclasses.asdict(cfg)))
    same_config(cfg, cfg.replace())
    assert {cfg: 1}[StyleConfig(**{field: plain})] == 1  # usable as a cache key


@SOME
@given(data=st.data())
def test_sequence_fields_take_tuples_lists_and_1d_numpy_or_jax_arrays(data):
    field = data.draw(st.sampled_from(["style_blend", "content_layer_weights",
                                       "style_layer_weights", "scale_steps"]))
    wrapper = data.draw(st.sampled_from(sorted(SEQUENCE_WRAPPERS)))
    extra = {}
    if field == "scale_steps":
        scales = data.draw(st.integers(1, 4))
        values = data.draw(st.lists(st.integers(0, 1000), min_size=scales, max_size=scales))
        extra["scales"] = scales
        convert = {"list of numpy": lambda v: [np.int64(x) for x in v]}.get(
            wrapper, SEQUENCE_WRAPPERS[wrapper])
        given_values = convert(values)
        plain = tuple(int(v) for v in given_values)
    else:
        length = {"content_layer_weights": 1, "style_layer_weights": 5}.get(
            field, data.draw(st.integers(1, 4)))
        values = data.draw(st.lists(st.floats(0, 100), min_size=length, max_size=length)
                           .filter(lambda v: sum(np.float32(v)) > 0))
        given_values = SEQUENCE_WRAPPERS[wrapper](values)
        plain = tuple(float(v) for v in given_values)  # as the container holds them
    cfg = StyleConfig(**{field: given_values}, **extra)
    assert type(getattr(cfg, field)) is tuple
    assert getattr(cfg, field) == plain, (field, wrapper)
    same_config(cfg, StyleConfig(**{field: plain}, **extra))


BAD_FLOATS = {
    "content_weight": st.floats(max_value=-1e-6), "style_weight": st.floats(max_value=-1e-6),
    "tv_weight": st.floats(max_value=-1e-6), "learning_rate": st.floats(max_value=0),
    "epsilon": st.floats(max_value=-1e-6), "beta1": st.floats(min_value=1),
    "beta2": st.floats(max_value=-1e-6) | st.floats(min_value=1), "ema": st.floats(min_value=1),
    "style_scale": st.floats(max_value=0), "scale_factor": st.floats(max_value=1)}
BAD_INTS = {"epochs": st.integers(max_value=0), "steps_per_epoch": st.integers(max_value=0),
            "steps": st.integers(max_value=0), "scales": st.integers(max_value=0),
            "max_dim": st.integers(max_value=31), "style_max_dim": st.integers(max_value=31)}


@MANY
@given(data=st.data())
def test_bad_numbers_are_refused_naming_the_field(data):
    kind = data.draw(st.sampled_from(["range", "non-finite", "float for an int"]))
    if kind == "range":
        field = data.draw(st.sampled_from(sorted(BAD_FLOATS) + sorted(BAD_INTS)))
        if field in BAD_FLOATS:
            value = data.draw(BAD_FLOATS[field].filter(lambda v: v > -1e30 and v < 1e30))
            wrapper = FLOAT_WRAPPERS[data.draw(st.sampled_from(sorted(FLOAT_WRAPPERS)))]
        else:
            value = data.draw(BAD_INTS[field].filter(lambda v: v > -30_000))
            wrapper = INT_WRAPPERS[data.draw(st.sampled_from(["int", "np.int32", "np.int64",
                                                              "0-d ndarray", "jnp.int32"]))]
        value = wrapper(value)
    elif kind == "non-finite":
        field = data.draw(st.sampled_from(sorted(FLOAT_FIELDS)))
        wrapper = FLOAT_WRAPPERS[data.draw(st.sampled_from(sorted(FLOAT_WRAPPERS)))]
        value = wrapper(data.draw(st.sampled_from([np.nan, np.inf, -np.inf])))
    else:
        field = data.draw(st.sampled_from(sorted(INT_FIELDS.keys() - {"seed"})))
        wrapper = FLOAT_WRAPPERS[data.draw(st.sampled_from(sorted(FLOAT_WRAPPERS)))]
        value = wrapper(float(data.draw(INT_FIELDS[field])))
    with pytest.raises(ConfigError, match=rf"^{field} ") as error:
        StyleConfig(**{field: value})
    if kind == "float for an int":
        assert "must be an integer" in str(error.value)


layer_lists = st.lists(st.sampled_from(LAYER_NAMES), min_size=1, max_size=6, unique=True)
spaces = st.sampled_from(["", " ", "  ", "\t", "\n "])


@st.composite
def layer_strings(draw, layers):
    """"a, b,c": the layers comma-separated, whitespace around each, maybe a trailing comma."""
    text = ",".join(draw(spaces) + name + draw(spaces) for name in layers)
    return text + draw(st.sampled_from(["", ",", ", "]))


@SOME
@given(field=st.sampled_from(["content_layers", "style_layers"]), data=st.data())
def test_a_comma_separated_layer_string_equals_the_tuple(field, data):
    layers = data.draw(layer_lists)
    text = data.draw(layer_strings(layers))
    cfg = StyleConfig(**{field: text})
    assert getattr(cfg, field) == tuple(layers)
    same_config(cfg, StyleConfig(**{field: tuple(layers)}))
    same_config(cfg, StyleConfig(**{field: list(layers)}))
    same_config(cfg, StyleConfig(**{field: np.asarray(layers)}))


@SOME
@given(field=st.sampled_from(["content_layers", "style_layers"]), layers=layer_lists,
       unknown=st.text(st.characters(codec="ascii", categories=("L", "N"),
                                     include_characters="_"), min_size=1, max_size=14)
       .filter(lambda name: name not in LAYER_NAMES),
       data=st.data())
def test_an_unknown_layer_is_refused_by_name(field, layers, unknown, data):
    with_unknown = list(layers)
    with_unknown.insert(data.draw(st.integers(0, len(layers))), unknown)
    for value in (tuple(with_unknown), data.draw(layer_strings(with_unknown))):
        with pytest.raises(ConfigError, match=re.escape(f"{field}: unknown layer {unknown!r}")):
            StyleConfig(**{field: value})
    twice = data.draw(st.permutations(layers + [data.draw(st.sampled_from(layers))]))
    with pytest.raises(ConfigError, match=f"{field}: a layer is listed twice"):
        StyleConfig(**{field: data.draw(layer_strings(twice))})
    with pytest.raises(ConfigError, match=f"{field}: at least one layer"):
        StyleConfig(**{field: data.draw(st.sampled_from(["", ",", " , ", ()]))})


@SOME
@given(made=st.lists(st.sampled_from(SHALLOW), min_size=1, max_size=4, unique=True),
       used=st.lists(st.sampled_from(SHALLOW), min_size=1, max_size=4, unique=True),
       kind=st.sampled_from(["content", "style"]))
def test_targets_made_under_another_config_name_the_first_missing_layer(made, used, kind):
    zeros = jnp.zeros((1, 1))
    held = {layer: zeros for layer in made}
    other = {layer: zeros for layer in SHALLOW}
    targets = Targets(held, other) if kind == "content" else Targets(other, held)
    other_kind = "style" if kind == "content" else "content"
    cfg = StyleConfig(**{f"{kind}_layers": tuple(used), f"{other_kind}_layers": SHALLOW[:1]})
    missing = [layer for layer in used if layer not in made]
    if not missing:
        check_targets_match(targets, cfg)
        return
    with pytest.raises(ConfigError, match=f"no {kind} target for layer {missing[0]!r}"):
        check_targets_match(targets, cfg)
