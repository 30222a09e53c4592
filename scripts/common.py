"""Shared set-up for the measurement scripts: weights, inputs, and a full-size loss."""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxstyle import StyleConfig, load_image, loss_fn, make_targets  # noqa: E402
from jaxstyle.demo import demo_content, demo_style  # noqa: E402
from jaxstyle.vgg import prepare_params  # noqa: E402
from jaxstyle.weights.fetch import resolve_params  # noqa: E402


def params():
    return jax.device_put(prepare_params(resolve_params(progress=False, log=lambda m: None)))


def inputs(size: int, content_path: str | None = None, style_path: str | None = None):
    """Content (longer side `size`) and style images; the packaged demo pair by default."""
    content = load_image(content_path, max_dim=size) if content_path else demo_content(size)
    style = load_image(style_path, max_dim=size) if style_path else demo_style(size)
    return content, style


def full_size_loss(params, content, style, image, cfg: StyleConfig) -> float:
    """The seed loss of `image` against full-size targets (so runs of any kind compare)."""
    plain = cfg.replace(scales=1, scale_steps=None, carry_optimizer=False)
    targets = make_targets(params, content, style, plain)
    return float(loss_fn(params, targets, np.asarray(image), plain)[0])
