"""What the examples share: their arguments, the weights and images, and the check that ends
each one. Not part of jaxstyle; copy what you need.

--tiny runs on random VGG19-shaped weights (blocks 1 and 2 only) at 32 px, in seconds, so the
tests can run every example; without it the real weights are fetched once and cached
(`jaxstyle weights fetch`) and the default layers are used.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax
import numpy as np

import jaxstyle
from jaxstyle.demo import demo_content, demo_style
from jaxstyle.images import resize
from jaxstyle.vgg import VGG19_CONV_LAYERS

# The public-domain paintings and CC0 photos beside a checkout (../shared/images/SOURCES.md);
# JAXSTYLE_IMAGES points elsewhere, as for `jaxstyle bench`.
IMAGES = Path(os.environ.get("JAXSTYLE_IMAGES",
                             Path(__file__).resolve().parents[2] / "shared" / "images"))
# The demo's photo and painting, in the package (jaxstyle/assets): smaller copies of these two.
PACKAGED = {"chelsea.jpg": demo_content, "starry_night.jpg": demo_style}
# A --tiny run: the layers two blocks of random weights reach, and loss weights for their
# features, whose Grams are far smaller than real VGG19's (under the seed's 1e4 and 1e-2 the
# content term is all there is, and a step from the photo only raises the loss).
TINY = dict(content_layers=("block2_conv2",), style_layers=("block1_conv1", "block2_conv1"),
            content_weight=1.0, style_weight=1e3)


def arguments(description: str, size: int = 256, steps: int = 20) -> argparse.ArgumentParser:
    """--tiny, --size and --steps; the caller may add its own before `parse_args`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true",
                        help="random weights (blocks 1-2) at 32 px: seconds, for tests and CI")
    parser.add_argument("--size", type=int, default=None,
                        help=f"image side in pixels (default {size}; 32 with --tiny)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"optimisation steps (default {steps}; 5 with --tiny)")
    parser.set_defaults(default_size=size, default_steps=steps)
    return parser


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in --size and --steps from --tiny."""
    if args.size is None:
        args.size = 32 if args.tiny else args.default_size
    if args.steps is None:
        args.steps = 5 if args.tiny else args.default_steps
    return args


def config(args, **settings) -> jaxstyle.StyleConfig:
    """The seed's settings; at --tiny, the layers and loss weights of random weights."""
    return jaxstyle.StyleConfig(**{**(TINY if args.tiny else {}), **settings})


def vgg_params(args) -> dict:
    """Random He-scaled weights of VGG19's first two blocks at --tiny (as tests/conftest.py
    makes them), else the real weights, fetched once and cached; on the device either way.

    The loaders give NumPy arrays. Put them on the device once: a jitted function copies
    NumPy arguments to the device at every call (80 MB), and the step's backward kernels
    (`prepare_params`) are kept only for device arrays, which cannot change in place."""
    if not args.tiny:
        from jaxstyle.weights.fetch import resolve_params

        return jax.device_put(resolve_params(progress=False, log=lambda message: None))
    rng = np.random.default_rng(0)
    params = {}
    for name, cin, cout in VGG19_CONV_LAYERS[:4]:
        std = np.sqrt(2.0 / (9 * cin)) / (64.0 if name == "block1_conv1" else 1.0)
        params[name] = {"kernel": (rng.standard_normal((3, 3, cin, cout)) * std).astype(np.float32),
                        "bias": (rng.standard_normal(cout) * 0.01).astype(np.float32)}
    return jax.device_put(params)


def image(args, name: str, seed: int = 0) -> np.ndarray:
    """A shared image, centre-cropped to a square of side --size: (S, S, 3) in [0, 1].

    Without the shared folder (CI clones the repository alone; a GPU machine gets only what
    travels), the photo and the painting the package ships for its demo (smaller copies of the
    same files), else, at --tiny, a random image of blocks whose size and colours depend on
    `seed`, so that different seeds look like different pictures."""
    path = IMAGES / name
    if path.is_file():
        pixels = jaxstyle.load_image(path, max_dim=None)
    elif name in PACKAGED:
        pixels = PACKAGED[name]()
    elif not args.tiny:
        sys.exit(f"no {path}: set JAXSTYLE_IMAGES to the folder of shared images")
    else:
        rng = np.random.default_rng(seed)
        block = (4, 2, 8)[seed % 3]
        coarse = rng.uniform(size=(args.size // block + 1, args.size // block + 1, 3))
        blocks = np.kron(coarse, np.ones((block, block, 1)))[:args.size, :args.size]
        tint = rng.uniform(0.3, 1.0, size=3)
        return (tint * (0.7 * blocks + 0.3 * rng.uniform(size=blocks.shape))).astype(np.float32)
    h, w, _ = pixels.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize(pixels[top:top + side, left:left + side], (args.size, args.size))


def perturbation() -> float:
    """JAXSTYLE_EXAMPLES_PERTURB: added to every measured error, so that a test can see a
    check fail (the negative control of tests/test_examples.py)."""
    return float(os.environ.get("JAXSTYLE_EXAMPLES_PERTURB", "0"))


def check(what: str, error: float, tolerance: float) -> None:
    """Print `check <what>: <error> <= <tolerance> ok`, or FAILED and exit 1."""
    error = float(error) + perturbation()
    ok = error <= tolerance  # False for NaN too
    print(f"check {what}: {error:.3g} <= {tolerance:.3g} {'ok' if ok else 'FAILED'}")
    if not ok:
        sys.exit(1)


def photo_and_painting(doc: str) -> tuple[argparse.Namespace, dict, jaxstyle.StyleConfig,
                                          np.ndarray, np.ndarray]:
    """What most examples start from: their arguments (the docstring's first line as the
    description), the weights, the config, Chelsea the cat and The Starry Night."""
    args = settle(arguments(doc.splitlines()[0]).parse_args())
    return (args, vgg_params(args), config(args), image(args, "chelsea.jpg", seed=0),
            image(args, "starry_night.jpg", seed=1))
