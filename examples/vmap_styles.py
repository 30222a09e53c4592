"""One photo against several paintings at once: `jax.vmap` over the style targets.

Targets are a pytree, so the targets of several styles stack into one (`stack_targets`) and
any function of them vmaps: first the pure loss, then whole optimisation steps
(`make_step(cfg, batched=True)`, the step under `jax.vmap`, one compiled program for every
style). Each style keeps its own image and optimiser state; nothing is shared but the
weights, so the batch must give exactly what a loop over the styles gives.

    python examples/vmap_styles.py           # real VGG19 weights, 256 px, 20 steps
    python examples/vmap_styles.py --tiny    # random weights, 32 px: seconds

Prints each style's loss, vmapped and looped, and checks that the two agree to 1e-5 (the
losses, relative) and that the images after the steps agree to 1e-5.
"""

import jax
import jax.numpy as jnp
import numpy as np

import jaxstyle
from _common import arguments, check, config, image, settle, vgg_params

args = settle(arguments(__doc__.splitlines()[0]).parse_args())
params = vgg_params(args)
cfg = config(args)
photo = image(args, "chelsea.jpg", seed=0)
names = ("starry_night.jpg", "shipwreck.jpg", "woman_with_hat.jpg")
paintings = [image(args, name, seed=1 + i) for i, name in enumerate(names)]

# One Targets per painting, then one Targets whose every leaf has a leading style axis.
per_style = [jaxstyle.make_targets(params, photo, painting, cfg) for painting in paintings]
stacked = jaxstyle.stack_targets(per_style)

# 1. The pure loss of the photo under each painting's targets: vmap over the targets only
# (params and the image are shared, in_axes None). The params and the photo are arguments,
# not closed over: a jitted function's closure becomes constants of its program, 80 MB of
# weights that XLA would then try to fold through the whole network at compile time.
loss = lambda params, targets, image: jaxstyle.loss_fn(params, targets, image, cfg)[0]
vmapped = np.asarray(jax.jit(jax.vmap(loss, in_axes=(None, 0, None)))(params, stacked, photo))
looped = np.array([float(jax.jit(loss)(params, targets, photo)) for targets in per_style])
numbers = lambda values: " ".join(f"{float(v):.6g}" for v in values)
print(f"loss of the photo per style, vmapped: {numbers(vmapped)}")
print(f"loss of the photo per style, looped:  {numbers(looped)}")
check("vmapped loss vs loop, relative", np.max(np.abs(vmapped - looped) / np.abs(looped)), 1e-5)

# 2. Whole steps. The batched step vmaps the single step over a leading job axis of the
# targets and of the state (a pytree too, so states stack the same way).
states = [jaxstyle.init_state(photo, cfg) for _ in paintings]
batch_state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
batched_step = jaxstyle.make_step(cfg, batched=True)
for _ in range(args.steps):
    batch_state, batch_metrics = batched_step(params, stacked, batch_state)

single_step = jaxstyle.make_step(cfg)
loop_images, loop_losses = [], []
for targets, state in zip(per_style, states):
    for _ in range(args.steps):
        state, metrics = single_step(params, targets, state)
    loop_images.append(state.image)
    loop_losses.append(float(metrics["loss"]))

print(f"loss at step {args.steps} per style, batched: {numbers(batch_metrics['loss'])}")
print(f"loss at step {args.steps} per style, looped:  {numbers(loop_losses)}")
difference = float(jnp.max(jnp.abs(batch_state.image - jnp.stack(loop_images))))
check(f"batched images vs loop after {args.steps} steps, max |diff|", difference, 1e-5)
