"""The library as a researcher imports it (issue 35): image conventions, StyleConfig's
scalars and layer strings, clear errors for mismatched targets, any optax optimiser driving
the step, donation off, and the step exported with `jax.export` (and read back elsewhere)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxstyle
from conftest import random_image
from jaxstyle import ConfigError, StyleConfig
from jaxstyle.gatys.batch import stylize_many

LAYERS = dict(content_layers=("block2_conv2",), style_layers=("block1_conv1", "block2_conv1"))
CFG = StyleConfig(steps=2, max_dim=64, **LAYERS)


@pytest.fixture(scope="module")
def pair(rng):
    return random_image(rng, 32, 40)[0], random_image(rng, 32, 32)[0]


@pytest.fixture(scope="module")
def params(tiny_params):
    return jax.device_put({k: v for k, v in tiny_params.items() if k.startswith(("block1",
                                                                                  "block2"))})


def test_images_outside_unit_range_are_refused_by_name_and_uint8_is_converted(params, pair):
    photo, painting = pair
    with pytest.raises(ValueError, match=r"content image must be RGB floats in \[0, 1\].*255"):
        jaxstyle.make_targets(params, photo * 255, painting, CFG)
    with pytest.raises(ValueError, match="init image must be RGB floats"):
        jaxstyle.init_state(photo, CFG, init_image=photo + 0.5)
    with pytest.raises(ValueError, match="images must be RGB floats"):
        targets = jaxstyle.make_targets(params, photo, painting, CFG)
        jaxstyle.loss_fn(params, targets, np.full_like(photo, np.nan), CFG)
    with pytest.raises(ValueError, match="dtype int32"):
        jaxstyle.init_state(np.zeros((32, 32, 3), np.int32), CFG)
    as_bytes = np.round(photo * 255).astype(np.uint8)
    state = jaxstyle.init_state(as_bytes, CFG)
    np.testing.assert_allclose(state.image[0], as_bytes / 255.0, atol=1e-6)


def test_loss_fn_takes_one_image_or_a_batch_alike(params, pair):
    photo, painting = pair
    targets = jaxstyle.make_targets(params, photo, painting, CFG)
    one, parts = jaxstyle.loss_fn(params, targets, photo * 0.9, CFG)
    batch, _ = jaxstyle.loss_fn(params, targets, (photo * 0.9)[None], CFG)
    assert float(one) > 0 and set(parts) == {"content", "style", "tv"}
    np.testing.assert_allclose(one, batch, rtol=1e-6)
    totals, _ = jaxstyle.per_image_loss(params, targets, photo * 0.9, CFG)
    assert totals.shape == (1,)


def test_style_config_takes_numpy_and_jax_scalars_and_comma_separated_layers():
    cfg = StyleConfig(content_weight=np.float32(1e4), style_weight=np.float64(1e-2),
                      tv_weight=jnp.asarray(4e-4, jnp.float64) if jax.config.x64_enabled
                      else 4e-4, steps=np.int64(5),
                      style_layers="block1_conv1, block2_conv1", style_blend=np.array([1, 2.0]))
    plain = StyleConfig(steps=5, style_layers=("block1_conv1", "block2_conv1"),
                        style_blend=(1.0, 2.0))
    assert cfg == plain and hash(cfg) == hash(plain)
    assert type(cfg.content_weight) is float and type(cfg.steps) is int
    assert all(type(w) is float for w in cfg.style_blend)
    with pytest.raises(ConfigError, match="unknown layer 'block9_conv1'"):
        StyleConfig(style_layers="block1_conv1,block9_conv1")


def test_stylize_honours_max_dim_as_the_cli_does(params, rng):
    big = random_image(rng, 64, 80)[0]
    image, history = jaxstyle.stylize(params, big, big[:48, :48], CFG.replace(max_dim=40,
                                                                              steps=1))
    assert image.shape == (32, 40, 3) and len(history) == 1


def test_targets_made_under_another_config_name_the_missing_layer(params, pair):
    photo, painting = pair
    targets = jaxstyle.make_targets(params, photo, painting, CFG)
    other = CFG.replace(style_layers=("block1_conv1", "block2_conv2"))
    with pytest.raises(ConfigError, match="no style target for layer 'block2_conv2'"):
        jaxstyle.loss_fn(params, targets, photo, other)
    with pytest.raises(ConfigError, match="block2_conv2"):
        jaxstyle.make_step(other)(params, targets, jaxstyle.init_state(photo, other))


def test_stylize_many_takes_numpy_images_and_numpy_sweep_values(params, pair):
    photo, painting = pair
    images = stylize_many(params, [np.asarray(photo)], [np.asarray(painting)],
                          CFG.replace(steps=1), sweep=("style_weight", np.array([1e-3, 1e-1])))
    assert len(images) == 2 and not np.array_equal(images[0], images[1])


def test_any_optax_transformation_drives_the_step_and_donation_can_be_off(params, pair):
    photo, painting = pair
    targets = jaxstyle.make_targets(params, photo, painting, CFG)
    # Small clipped gradient steps on a schedule: each one must lower the loss (the content
    # term, weighted 1e4, is steep around the photo: larger steps overshoot it).
    schedule = optax.linear_schedule(1e-4, 2e-5, 4)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(schedule))
    state = jaxstyle.init_state(photo, CFG, optimizer=tx)
    step = jaxstyle.make_step(CFG, donate=False, optimizer=tx)
    losses = []
    current = state
    for _ in range(4):
        current, metrics = step(params, targets, current)
        losses.append(float(metrics["loss"]))
    # The old state is still readable (not donated) and unchanged; the optimiser moved on.
    np.testing.assert_array_equal(state.image[0], np.clip(photo, 0, 1))
    assert int(current.step) == 4 and losses == sorted(losses, reverse=True), losses
    default = jaxstyle.make_step(CFG, donate=False)(params, targets,
                                                    jaxstyle.init_state(photo, CFG))[0]
    first = step(params, targets, state)[0]
    assert not np.allclose(first.image, default.image)


def test_the_step_exports_serialises_and_equals_the_compiled_step(params, pair):
    photo, painting = pair
    targets = jaxstyle.make_targets(params, photo, painting, CFG)
    state = jaxstyle.init_state(photo, CFG)
    step = jaxstyle.make_step(CFG, donate=False)
    # Lowered for every platform: a custom call that only the CPU has would fail here.
    exported = step.export(params, targets, state, platforms=("cpu", "cuda", "tpu"))
    assert exported.platforms == ("cpu", "cuda", "tpu")
    restored = jax.export.deserialize(exported.serialize())
    got_state, got_metrics = restored.call(jaxstyle.prepare_params(params), targets, state)
    want_state, want_metrics = step(params, targets, state)
    assert type(got_state) is type(want_state)
    np.testing.assert_allclose(got_state.image, want_state.image, atol=1e-6)
    np.testing.assert_allclose(got_metrics["loss"], want_metrics["loss"], rtol=1e-5)


READ_BACK = textwrap.dedent("""
    import sys

    import jax
    import numpy as np

    blob = bytearray(open(sys.argv[1], "rb").read())
    try:
        jax.export.deserialize(blob)
    except ValueError as error:
        print("without jaxstyle:", error)
    import jaxstyle  # noqa: F401  (registers the NamedTuples of a step's arguments)

    exported = jax.export.deserialize(blob)
    leaves = np.load(sys.argv[2])
    args, kwargs = exported.in_tree.unflatten([leaves[f"leaf{i}"]
                                               for i in range(len(leaves.files))])
    state, metrics = exported.call(*args, **kwargs)
    print("state:", type(state).__name__)
    np.save(sys.argv[3], np.asarray(state.image))
""")


def test_an_exported_step_is_read_back_and_run_by_another_process(params, pair, tmp_path):
    """Registering the NamedTuples only at export (in the exporting process) left a file no
    other process could deserialize, jaxstyle imported or not (examples/export_step.py)."""
    photo, painting = pair
    targets = jaxstyle.make_targets(params, photo, painting, CFG)
    state = jaxstyle.init_state(photo, CFG)
    step = jaxstyle.make_step(CFG, donate=False)
    (tmp_path / "step.bin").write_bytes(step.export(params, targets, state).serialize())
    leaves = jax.tree.leaves((jaxstyle.prepare_params(params), targets, state))
    np.savez(tmp_path / "args.npz", **{f"leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, "step.bin", "args.npz", "image.npy"], cwd=tmp_path,
        env={**os.environ, "JAX_PLATFORMS": "cpu",
             "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # Without jaxstyle the names are unknown (what every reader met before the fix)...
    assert "without jaxstyle: Cannot deserialize a PyTreeDef containing an unregistered type" \
        in done.stdout, done.stdout
    # ... and after `import jaxstyle` the file runs and gives the step's image.
    assert "state: StyleState" in done.stdout, done.stdout
    want, _ = step(params, targets, state)
    np.testing.assert_allclose(np.load(tmp_path / "image.npy"), want.image, atol=1e-6)


def test_the_seed_path_asks_for_full_float32_precision_and_an_option_trades_it(params, pair):
    photo, painting = pair
    targets = jaxstyle.make_targets(params, photo, painting, CFG)
    state = jaxstyle.init_state(photo, CFG)

    def cuda_text(cfg):
        step = jaxstyle.make_step(cfg, donate=False)
        return step.export(params, targets, state, platforms=("cuda",)).mlir_module()

    assert "HIGHEST" in cuda_text(CFG)
    assert "HIGHEST" not in cuda_text(CFG.replace(matmul_precision="default"))
    with pytest.raises(ConfigError, match="matmul_precision"):
        CFG.replace(matmul_precision="fast")
