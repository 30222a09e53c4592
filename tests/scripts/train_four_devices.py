"""Run in a subprocess with JAX_NUM_CPU_DEVICES=4 (tests/conftest.py starts it early): the
feed-forward training step on four devices equals it on one. Prints "same" when it does."""

import sys
from pathlib import Path

import jax
import numpy as np
from flax import traverse_util

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import random_image, random_params  # noqa: E402
from jaxstyle.config import StyleConfig  # noqa: E402
from jaxstyle.feedforward.config import FeedForwardConfig, init_train_state  # noqa: E402
from jaxstyle.feedforward.step import make_train_step, style_grams  # noqa: E402
from jaxstyle.training import training_mesh  # noqa: E402
from jaxstyle.vgg import prepare_params  # noqa: E402

assert jax.device_count() == 4, jax.devices()
vgg = random_params(0)
vgg["block1_conv1"]["kernel"] = vgg["block1_conv1"]["kernel"] / 64
vgg = prepare_params(vgg)
loss = StyleConfig(content_layers=("block1_conv2",), style_layers=("block1_conv1",),
                   content_weight=1.0, style_weight=1.0, tv_weight=1e-3)
cfg = FeedForwardConfig(loss=loss, size=32, batch=4, width=0.125, num_styles=3,
                        learning_rate=1e-2, stability_weight=0.5)
rng = np.random.default_rng(0)
grams = style_grams(vgg, [random_image(rng, 32, 32)[0] for _ in range(3)], cfg)
batches = [(rng.uniform(size=(4, 32, 32, 3)) * 255).astype(np.uint8) for _ in range(2)]

def run(devices):
    step = make_train_step(cfg, training_mesh(devices))
    whole = step.replicated
    state = jax.device_put(init_train_state(cfg), whole)
    constants = jax.device_put((vgg, grams), whole)
    history = []
    for batch in batches:
        state, metrics = step(*constants, state, jax.device_put(batch, step.batch_sharding))
        history.append({k: float(v) for k, v in metrics.items()})
    assert len(state.params["output"]["kernel"].sharding.device_set) == len(devices)
    return history, traverse_util.flatten_dict(jax.device_get(state.params))

one, params_one = run(jax.devices()[:1])
four, params_four = run(jax.devices())
for a, b in zip(one, four):
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-7, err_msg=name)
assert one[-1]["stability"] > 0 and one[-1]["grad_norm"] > 0
for path, value in params_one.items():
    # The shift of each residual block's second norm adds a per-channel constant that the
    # next instance norm removes: its true gradient is zero, so Adam moves it by +-lr on
    # rounding noise alone, differently for any change of summation order. (Adam's
    # normalised steps amplify rounding in any near-zero gradient, hence atol 1e-3 * lr.)
    if path[0].startswith("residual") and path[1:] == ("second", "norm", "shift"):
        continue
    # Adam's first steps are about lr * sign(g): where a gradient is near zero, float
    # rounding of a different summation order can flip the sign and move that one weight
    # by up to 2 lr per step, and Adam's normalisation magnifies rounding wherever the
    # gradient is small. So: the losses agree to 1e-5 (above), nearly every weight to 1% of
    # one step, and none beyond Adam's bound.
    diff = np.abs(params_four[path] - value)
    assert diff.max() <= 2 * 1e-2 * len(batches), "/".join(path)
    assert np.mean(diff <= 1e-4) >= 0.9, "/".join(path)  # 1% of one Adam step
print("same", one[-1]["loss"], four[-1]["loss"])
