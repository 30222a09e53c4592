"""The gradient of the seed's loss with respect to VGG19's weights, not the image.

The step asks only for the image's gradient (XLA prunes the weights'), but `loss_fn` is a
plain function of the params, so `jax.grad` gives their true gradient: the start of
fine-tuning the network for style, or of asking which filters a painting's loss leans on.

    python examples/weight_gradient.py          # real VGG19 weights, 256 px
    python examples/weight_gradient.py --tiny   # random weights, 32 px: seconds

Prints each layer's gradient norm, checks the gradient against a central finite difference
along a random direction, and checks that params prepared by `prepare_params` (with their
ready-made backward kernels, as the step uses them) and `remat` give the same gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np

import jaxstyle
from _common import check, photo_and_painting

args, params, cfg, photo, painting = photo_and_painting(__doc__)
targets = jaxstyle.make_targets(params, photo, painting, cfg)
# An image halfway between the photo and the painting, so the content, style and TV terms
# all have something to say. The targets stay fixed: this is the loss of this image as a
# function of the network that judges it.
halfway = 0.5 * (photo + painting)


# `jax.grad` differentiates with respect to the first argument, the params. The targets and
# the image are arguments too, not closed over: a jitted function's closure becomes constants
# of its program.
def loss_of_weights(p, targets, image, run_cfg=cfg):
    return jaxstyle.loss_fn(p, targets, image, run_cfg)[0]


loss = jax.jit(loss_of_weights)
gradient = jax.jit(jax.grad(loss_of_weights))
grads = gradient(params, targets, halfway)
# Only the layers the loss reaches get a gradient; deeper ones get zeros.
for name in params:
    print(f"{name:14s} |dL/dkernel| {float(jnp.linalg.norm(grads[name]['kernel'])):.4g}  "
          f"|dL/dbias| {float(jnp.linalg.norm(grads[name]['bias'])):.4g}")
total = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads))))
print(f"loss {float(loss(params, targets, halfway)):.6g}, |dL/dparams| {total:.4g}")

# A central finite difference along a random direction d, each layer's part scaled like its
# kernel, against the directional derivative <grad, d>. float32 limits the agreement to a
# few digits: the step is large enough that rounding the loss does not dominate.
rng = np.random.default_rng(0)
direction = {name: {"kernel": jnp.asarray(rng.standard_normal(layer["kernel"].shape),
                                          jnp.float32) * jnp.std(layer["kernel"]),
                    "bias": jnp.zeros_like(layer["bias"])}
             for name, layer in params.items()}
eps = 1e-2
moved = lambda sign: jax.tree.map(lambda p, d: p + sign * eps * d, params, direction)
finite_difference = (float(loss(moved(1), targets, halfway))
                     - float(loss(moved(-1), targets, halfway))) / (2 * eps)
analytic = float(sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grads),
                                                     jax.tree.leaves(direction))))
print(f"along d: finite difference {finite_difference:.6g}, <grad, d> {analytic:.6g}")
check("finite difference vs gradient, relative", abs(finite_difference - analytic)
      / abs(analytic), 1e-2)

# The step's own params carry a backward kernel per layer (`prepare_params`), behind a
# custom VJP; `remat` recomputes activations in the backward pass. Neither may change the
# weights' gradient.
prepared = jaxstyle.prepare_params(params)
via_prepared = gradient(prepared, targets, halfway)
remat_cfg = cfg.replace(remat=True)
via_remat = jax.jit(jax.grad(lambda p, t, x: loss_of_weights(p, t, x, remat_cfg)))(
    params, targets, halfway)


def relative(other):
    return max(float(jnp.max(jnp.abs(other[name][key] - grads[name][key]))
                     / (float(jnp.max(jnp.abs(grads[name][key]))) or 1.0))
               for name in params for key in ("kernel", "bias"))


check("prepared params' gradient vs plain, relative", relative(via_prepared), 1e-5)
check("remat's gradient vs plain, relative", relative(via_remat), 1e-5)
