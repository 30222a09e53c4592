"""An optax learning-rate schedule driving the library's compiled step.

`make_step` and `init_state` take any optax transformation in place of the config's. Here it
is the seed's own Adam (`jaxstyle.keras_adam`, TensorFlow's semantics, the config's betas and
epsilon) with a warm-up and cosine decay instead of a constant 0.02. `inject_hyperparams`
keeps the rate in the optimiser state, so the state says which rate each step used.

    python examples/optax_schedule.py          # real VGG19 weights, 256 px, 20 steps
    python examples/optax_schedule.py --tiny   # random weights, 32 px: seconds

Prints the step, the learning rate it used and the loss; checks that the rates are the
schedule's, step for step, and that the loss fell.
"""

import numpy as np
import optax

import jaxstyle
from _common import check, photo_and_painting

args, params, cfg, photo, painting = photo_and_painting(__doc__)
targets = jaxstyle.make_targets(params, photo, painting, cfg)

# A quarter of the run warming up from a tenth of the seed's rate, then a cosine down to a
# tenth again: large strokes early, fine ones at the end.
peak = cfg.learning_rate
schedule = optax.warmup_cosine_decay_schedule(
    init_value=peak / 10, peak_value=peak, warmup_steps=max(1, args.steps // 4),
    decay_steps=args.steps, end_value=peak / 10)
optimizer = optax.inject_hyperparams(jaxstyle.keras_adam)(
    learning_rate=schedule, b1=cfg.beta1, b2=cfg.beta2, eps=cfg.epsilon)

# The same transformation for the state and the step: the state holds its moments and count.
state = jaxstyle.init_state(photo, cfg, optimizer=optimizer)
step = jaxstyle.make_step(cfg, optimizer=optimizer)
start = float(jaxstyle.loss_fn(params, targets, photo, cfg)[0])
print(f"step  learning rate  loss (before the step)   [loss of the photo: {start:.6g}]")
used = []
for i in range(args.steps):
    state, metrics = step(params, targets, state)
    # The rate this step used, read back from the state (a host sync per step: fine here).
    used.append(float(state.opt_state.hyperparams["learning_rate"]))
    if i % max(1, args.steps // 10) == 0 or i == args.steps - 1:
        print(f"{i + 1:4d}  {used[-1]:.6f}       {float(metrics['loss']):.6g}")
end = float(jaxstyle.loss_fn(params, targets, state.image, cfg)[0])
print(f"loss of the photo {start:.6g}, of the image after {args.steps} steps {end:.6g}")

wanted = np.array([float(schedule(i)) for i in range(args.steps)])
check("rates used vs the schedule, max |diff|", np.max(np.abs(np.array(used) - wanted)), 1e-7)
check("loss after / before", end / start, 0.99)
