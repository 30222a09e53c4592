"""What the benchmarks share besides timing: the VGG19 params, the packaged demo pair, the
shared images of a checkout, and the seed loss at full size (so runs of any kind compare)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxstyle._types import ParamTree
from jaxstyle.config import StyleConfig
from jaxstyle.demo import demo_content, demo_style
from jaxstyle.errors import ConfigError
from jaxstyle.images import load_image
from jaxstyle.objective import loss_fn, make_targets
from jaxstyle.vgg import prepare_params

# A checkout keeps the public-domain paintings and CC0 photos beside the repository
# (../shared/images, credited in the README); JAXSTYLE_IMAGES points elsewhere.
_CHECKOUT_IMAGES = Path(__file__).resolve().parents[3] / "shared" / "images"


def shared_images() -> Path:
    """The folder of shared paintings and photos the benchmarks score on."""
    folder = Path(os.environ.get("JAXSTYLE_IMAGES", _CHECKOUT_IMAGES))
    if not folder.is_dir():
        raise ConfigError(f"no shared images at {folder}: set JAXSTYLE_IMAGES to the folder "
                          "of paintings and photos (a checkout has them in ../shared/images)")
    return folder


def image_path(name: str | os.PathLike) -> Path:
    """A path as given if it exists, else the file of that name among the shared images."""
    path = Path(name)
    if path.exists():
        return path
    shared = shared_images() / path.name
    if not shared.exists():
        raise ConfigError(f"no image {name} (nor {shared})")
    return shared


def vgg_params(weights: str | None = None) -> dict:
    """The prepared VGG19 params on the default device (fetched and cached once)."""
    from jaxstyle.weights.fetch import resolve_params

    return jax.device_put(prepare_params(resolve_params(weights, progress=False,
                                                        log=lambda message: None)))


def demo_inputs(size: int, content_path: str | None = None,
                style_path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Content (longer side `size`) and style images; the packaged demo pair by default."""
    content = load_image(content_path, max_dim=size) if content_path else demo_content(size)
    style = load_image(style_path, max_dim=size) if style_path else demo_style(size)
    return content, style


def add_pair_arguments(parser: argparse.ArgumentParser) -> None:
    """--content and --style (see `demo_inputs`)."""
    for option, default in (("--content", "photo"), ("--style", "style")):
        parser.add_argument(option, metavar="IMAGE",
                            help=f"{option[2:]} image, a path or the name of a shared image; "
                                 f"default: the packaged demo {default}")


def full_size_loss(params: ParamTree, content: Any, style: Any, image: Any,
                   cfg: StyleConfig) -> float:
    """The seed loss of `image` against full-size targets (so runs of any kind compare)."""
    plain = cfg.replace(scales=1, scale_steps=None, carry_optimizer=False)
    targets = make_targets(params, content, style, plain)
    return float(loss_fn(params, targets, np.asarray(image), plain)[0])


__all__ = ["add_pair_arguments", "demo_inputs", "full_size_loss", "image_path", "shared_images",
           "vgg_params"]
