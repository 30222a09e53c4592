"""Run in a subprocess with JAX_NUM_CPU_DEVICES=4: sharded runs against single-device runs.

Prints one JSON line of measured differences; the test asserts on them.
"""

import json
import re
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import random_image, random_params  # noqa: E402
from jaxstyle import StyleConfig, init_state, make_targets, stylize  # noqa: E402
from jaxstyle.export import cpu_only_custom_calls, custom_call_targets, lowered_texts  # noqa
from jaxstyle.gatys.batch import stylize_many  # noqa: E402
from jaxstyle.gatys.spatial import spatial_shardings  # noqa: E402
from jaxstyle.gatys.state import make_step  # noqa: E402
from jaxstyle.mesh import data_mesh, spatial_mesh  # noqa: E402
from jaxstyle.vgg import prepare_params  # noqa: E402

assert jax.device_count() == 4, jax.devices()
params = random_params(0)
params["block1_conv1"]["kernel"] = params["block1_conv1"]["kernel"] / 64.0
rng = np.random.default_rng(5)
contents = [random_image(rng, 32, 40)[0] for _ in range(3)]
style = random_image(rng, 36, 36)[0]
result = {}

# Data parallel: 3 jobs filled up to 4, one per device, 10 steps.
cfg = StyleConfig(steps=10, steps_per_epoch=10)
sharded = stylize_many(params, contents, [style], cfg, mesh=data_mesh())
result["data_max_abs"] = max(
    float(np.abs(stylize(params, c, style, cfg)[0] - s).max())
    for c, s in zip(contents, sharded))

# Spatial: one 64x64 image split 4x1 and 2x2, 5 steps.
cfg = StyleConfig(steps=5, steps_per_epoch=5)
image = random_image(rng, 64, 64)
reference, history = stylize(params, image, style, cfg)
for rows, cols in ((4, 1), (2, 2)):
    mesh = spatial_mesh(rows, cols)
    out, sharded_history = stylize(params, image, style, cfg, mesh=mesh)
    key = f"spatial_{rows}x{cols}"
    result[key + "_max_abs"] = float(np.abs(np.asarray(out) - np.asarray(reference)).max())
    # Step 1 scores the same image on both sides: the sharded loss itself. Later steps also
    # carry the images' float32 drift, which the image comparison bounds.
    result[key + "_loss_rel"] = abs(history[0]["loss"] - sharded_history[0]["loss"]) / \
        abs(history[0]["loss"])
    result[key + "_last_loss_rel"] = abs(history[-1]["loss"] - sharded_history[-1]["loss"]) / \
        abs(history[-1]["loss"])
    prepared = prepare_params(params)
    targets, state = make_targets(prepared, image, style, cfg), init_state(image, cfg)
    shardings = spatial_shardings(mesh, targets, state)
    step = make_step(cfg, shardings=shardings)
    hlo = step.lower(prepared, targets, state).compile().as_text()
    result[key + "_all_gathers"] = [line.strip()[:120] for line in hlo.splitlines()
                                    if "all-gather" in line and "=" in line]
    result[key + "_halo_exchanges"] = hlo.count("collective-permute")
    # The same sharded step lowered for CUDA and TPU (no such device here): its custom calls,
    # and that it is still the program partitioned over 4 devices with the image split.
    for platform, text in lowered_texts(
            lambda p, step=step, args=(prepared, targets, state): step.lower(
                *args, platforms=(p,))).items():
        result[f"{key}_{platform}"] = {
            "targets": custom_call_targets(text), "cpu_only": cpu_only_custom_calls(text),
            "partitions": re.findall(r"mhlo\.num_partitions = (\d+)", text),
            "image_split": '{"rows"}, {"cols"}' in text}

# Engine 3 (arbitrary style): 3 photos split over 4 devices (filled up to 4), against 1 device.
from jaxstyle.arbitrary.decoder import init_decoder  # noqa: E402
from jaxstyle.arbitrary.transfer import ArbitraryStylizer  # noqa: E402

decoder = jax.tree.map(np.asarray, init_decoder(0, 0.125))
decoder["conv0"]["kernel"] = decoder["conv0"]["kernel"] * 600.0  # tiny VGG: O(1) features
photos = np.concatenate([random_image(rng, 40, 48) for _ in range(3)])
single_device = ArbitraryStylizer(params, decoder, 0.125)
stats = single_device.style_stats([style])
reference = np.asarray(single_device(photos, stats, alpha=0.8))
sharded_stylizer = ArbitraryStylizer(params, decoder, 0.125, mesh=data_mesh())
sharded_out = sharded_stylizer(photos, stats, alpha=0.8)
result["arbitrary_devices"] = len(sharded_out.sharding.device_set)
result["arbitrary_shape"] = list(sharded_out.shape)
result["arbitrary_spread"] = float(reference.std())  # the outputs are not a constant
result["arbitrary_max_abs"] = float(np.abs(np.asarray(sharded_out) - reference).max())
# The tiled path (photos over (2 x tile)^2 px), sharded the same way.
big = np.concatenate([random_image(rng, 120, 136) for _ in range(3)])
tiled = ArbitraryStylizer(params, decoder, 0.125, mesh=data_mesh(), tile=56)
result["arbitrary_tiled_max_abs"] = float(np.abs(
    np.asarray(tiled(big, stats, alpha=0.8)) - np.asarray(single_device(big, stats, alpha=0.8))
).max())
result["arbitrary_tiled_ran_tiles"] = tiled.trace_count == 0 and tiled.runs_tiled(120, 136)

# Engine 3's encoder distillation: one data-parallel step over 4 devices against 1 device.
import jax.numpy as jnp  # noqa: E402

from jaxstyle.arbitrary.encoder import (  # noqa: E402
    EncoderConfig,
    EncoderState,
    initial_encoder,
    make_encoder_step_fn,
    make_optimizer,
)
from jaxstyle.training import ParallelStep  # noqa: E402

unscaled = random_params(0)  # features of O(100), like the real VGG's
crops = np.concatenate([random_image(rng, 32, 32) for _ in range(4)])
encoder_cfg = EncoderConfig(size=32, batch=4, learning_rate=1e-5)
start = jax.tree.map(jnp.asarray, initial_encoder(unscaled, crops, 0.25))
batch = jnp.asarray(np.round(crops * 255).astype(np.uint8))
after = {}
for name, mesh in (("single", None), ("sharded", data_mesh())):
    step = ParallelStep(make_encoder_step_fn(encoder_cfg), 4, mesh)
    params = jax.tree.map(jnp.copy, start)
    state = EncoderState(params, make_optimizer(encoder_cfg).init(params),
                         jnp.zeros([], jnp.int32))
    split = batch if mesh is None else jax.device_put(batch, step.batch_sharding)
    state, metrics = step(unscaled, state, split)
    after[name] = (state.params, float(metrics["loss"]), float(metrics["grad_norm"]))


def mean_abs(first, second):
    """Mean absolute difference over every param."""
    pairs = list(zip(jax.tree.leaves(first), jax.tree.leaves(second)))
    return float(sum(jnp.abs(a - b).sum() for a, b in pairs) / sum(a.size for a, _ in pairs))


# Adam's first step is about lr * sign(gradient), so a parameter whose gradient is ~0 may step
# either way under another summation order: compare the mean change, the loss and the norm.
result["encoder_step_mean_abs"] = mean_abs(after["single"][0], after["sharded"][0])
result["encoder_step_moved"] = mean_abs(after["single"][0], start)
result["encoder_loss_rel"] = abs(after["single"][1] / after["sharded"][1] - 1)
result["encoder_grad_norm_rel"] = abs(after["single"][2] / after["sharded"][2] - 1)
print(json.dumps(result))
