"""A custom loss term built from jaxstyle's pure functions, optimised in your own loop.

The seed's objective (`jaxstyle.loss_fn`: content + style + total variation) plus one term of
our own: a second painting's brushwork at the first layer only, a Gram loss made from
`vgg19_features`, `gram_matrix` and `style_loss`. The term's weight is an argument of the
jitted update, not a constant, so one compiled program runs with the term on and off.

    python examples/custom_loss.py            # real VGG19 weights, 256 px, 20 steps
    python examples/custom_loss.py --tiny     # random weights, 32 px: seconds

Prints the loss before and after, the new term with and without its weight, and checks that
the term pulled: it ends lower when it is in the loss than when it is not.
"""

import jax
import jax.numpy as jnp
import optax

import jaxstyle
from _common import check, image, photo_and_painting

args, params, cfg, photo, painting = photo_and_painting(__doc__)
second = image(args, "woman_with_hat.jpg", seed=2)

# The seed's targets, computed once, outside any jit.
targets = jaxstyle.make_targets(params, photo, painting, cfg)
# Our term's target: the second painting's Gram at the shallowest style layer. A layer that
# sees 3x3 pixels holds colour and stroke, not shapes.
layer = cfg.style_layers[0]
second_gram = jaxstyle.gram_matrix(jaxstyle.vgg19_features(params, second, (layer,))[layer])


# The params and targets are arguments of every function below, never closed over: a jitted
# function's closure becomes constants of its program (80 MB of weights). The small Gram
# target may be.
def brushwork(params, image):
    """The new term: the second painting's Gram loss at one layer (a scalar)."""
    features = jaxstyle.vgg19_features(params, image, (layer,))[layer]
    return jaxstyle.style_loss(features, second_gram)


# Grams grow with depth: one shallow layer's loss is orders of magnitude below the seed's
# style term (a mean over five layers, deep ones included). Balance the two at the start, so
# that `weight` 1 makes the second painting as strong as the first.
seed_style = jaxstyle.loss_fn(params, targets, photo, cfg)[1]["style"]
balance = float(seed_style / brushwork(params, photo))


def total_loss(params, targets, image, weight):
    seed, _ = jaxstyle.loss_fn(params, targets, image, cfg)
    return seed + weight * balance * brushwork(params, image)


optimizer = optax.adam(0.02)  # the seed's learning rate, in plain optax


@jax.jit
def update(params, targets, image, opt_state, weight):
    # The gradient with respect to the image (argument 2) only.
    loss, grad = jax.value_and_grad(total_loss, argnums=2)(params, targets, image, weight)
    updates, opt_state = optimizer.update(grad, opt_state)
    # Keep the image a picture: clip to [0, 1] after each step, as the library's step does.
    return jnp.clip(optax.apply_updates(image, updates), 0.0, 1.0), opt_state, loss


def run(weight):
    current = jnp.asarray(photo)
    opt_state = optimizer.init(current)
    for _ in range(args.steps):
        current, opt_state, _ = update(params, targets, current, opt_state, jnp.float32(weight))
    return current


evaluate, term = jax.jit(total_loss), jax.jit(brushwork)
start = float(evaluate(params, targets, photo, 1.0))
with_term, without_term = run(1.0), run(0.0)
end = float(evaluate(params, targets, with_term, 1.0))
print(f"loss (seed + brushwork) before {start:.6g}, after {args.steps} steps {end:.6g}")
pulled, free = float(term(params, with_term)), float(term(params, without_term))
print(f"brushwork term at the end: {pulled:.6g} with it in the loss, {free:.6g} without")
check("loss after / before", end / start, 0.9)
check("brushwork with the term / without", pulled / free, 0.99)
