"""Engine 2's inference: a trained model file stylises photos in one forward pass.

    params, header = load_model("starry.jxs")        # or resolve_model("starry_night")
    out = apply_model(params, header, photos, style="starry_night", strength=0.8)

`make_stylizer` compiles the network once per image shape; `apply_model` adds the style
choice or blend, the strength and colour preservation on top.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle._types import ArrayLike
from jaxstyle.color import recombine_luminance
from jaxstyle.config import normalised_blend
from jaxstyle.errors import ConfigError
from jaxstyle.fastconv import cpu_conv_compiler_options
from jaxstyle.feedforward.modelfile import ModelError, load_model, style_index, style_names
from jaxstyle.feedforward.network import TransformerNet
from jaxstyle.paramfile import MODELS_DIR, read_header

MODEL_SUFFIX = ".jxs"
PRESERVE_COLOR = ("luminance",)


class Stylizer:
    """`(images (N,H,W,3) in [0,1], style_weights (N,S)) -> (N,H,W,3)`, jitted with the
    params as an argument (not baked-in constants); compiles once per shape (`trace_count`)."""

    def __init__(self, params: dict, header: dict):
        self.num_styles = int(header["num_styles"])
        net = TransformerNet(num_styles=self.num_styles, width=float(header["width"]),
                             identity_start=bool(header.get("identity_start", False)))
        self.params = jax.device_put(params)
        self.trace_count = 0

        def run(params, images, style_weights):
            self.trace_count += 1  # runs only while tracing
            return net.apply({"params": params}, images, style_weights)

        # XLA CPU's default conv library is slow for this network's thin layers
        # (BENCHMARKS.md, "Feed-forward speed"); the option changes nothing on GPU/TPU.
        self._jitted = jax.jit(run, compiler_options=cpu_conv_compiler_options())

    def __call__(self, images: ArrayLike, style_weights: ArrayLike) -> jax.Array:
        images = jnp.asarray(images, jnp.float32)
        style_weights = jnp.asarray(style_weights, jnp.float32)
        return self._jitted(self.params, images, style_weights)


def make_stylizer(params: dict, header: dict) -> Stylizer:
    """The model as a compiled function `(images, style_weights) -> images` (see `Stylizer`).

    Example:

    >>> model, header = jaxstyle.load_model(jaxstyle.resolve_model("paintings")[0])
    >>> stylizer = jaxstyle.make_stylizer(model, header)
    >>> photos = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> stylizer(photos, np.eye(3)[[0, 2]]).shape  # style 0 for one, style 2 for the other
    (2, 32, 32, 3)
    """
    return Stylizer(params, header)


def style_weights_for(header: dict, style: str | int | None = None,
                      blend: Optional[Sequence[float]] = None) -> np.ndarray:
    """One model's style weights (S,): a one-hot row for `style` (name or index; default 0), or
    `blend` (one weight >= 0 per style) normalised to sum 1.

    Example:

    >>> header = {"num_styles": 3, "styles": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    >>> jaxstyle.feedforward.style_weights_for(header, "b")
    array([0., 1., 0.], dtype=float32)
    >>> jaxstyle.feedforward.style_weights_for(header, blend=[1, 1, 2])
    array([0.25, 0.25, 0.5 ], dtype=float32)
    """
    num_styles = int(header["num_styles"])
    if blend is None:
        index = 0 if style is None else style_index(header, style)
        return np.eye(num_styles, dtype=np.float32)[index]
    if style is not None:
        raise ConfigError("give a style or blend weights, not both")
    return normalised_blend(blend, num_styles, "styles of the model")


def apply_model(params: dict, header: dict, images: ArrayLike, style: str | int | None = None,
                blend: Optional[Sequence[float]] = None, strength: float = 1.0,
                preserve_color: Optional[str] = None,
                stylizer: Optional[Stylizer] = None) -> np.ndarray:
    """Stylise (H, W, 3) or (N, H, W, 3) images in [0, 1]; returns the same shape, float32.

    strength blends with the photo: strength * stylised + (1 - strength) * photo.
    preserve_color 'luminance' keeps the stylised luminance and the photo's chroma (Gatys et
    al. 2016). Pass a `stylizer` to reuse its compiled programs across calls.

    Example:

    >>> model, header = jaxstyle.load_model(jaxstyle.resolve_model("paintings")[0])
    >>> photos = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> out = jaxstyle.apply_model(model, header, photos, style="starry_night", strength=0.8)
    >>> out.shape, out.dtype
    ((2, 32, 32, 3), dtype('float32'))
    """
    if not (isinstance(strength, (int, float)) and math.isfinite(strength)
            and 0 <= strength <= 1):
        raise ConfigError(f"strength must be in [0, 1], got {strength!r}")
    if preserve_color not in (None, *PRESERVE_COLOR):
        raise ConfigError(f"preserve_color must be one of {PRESERVE_COLOR}, got "
                          f"{preserve_color!r}")
    photos = np.asarray(images, np.float32)
    single = photos.ndim == 3
    batch = photos[None] if single else photos
    weights = style_weights_for(header, style, blend)
    stylizer = stylizer or make_stylizer(params, header)
    out = stylizer(batch, np.repeat(weights[None], batch.shape[0], axis=0))
    if preserve_color == "luminance":
        out = recombine_luminance(out, batch)
    if strength != 1:
        out = strength * out + (1 - strength) * batch
    result = np.clip(np.asarray(out, np.float32), 0.0, 1.0)
    return result[0] if single else result


# --- Built-in models ------------------------------------------------------------------------------

class BuiltinModel(NamedTuple):
    name: str             # what to type: a style name, or the file's stem
    path: Path
    style: Optional[str]  # the style inside the file, None for a file's stem


def builtin_models(models_dir: str | os.PathLike | None = None) -> list[BuiltinModel]:
    """The shipped models: each file by its stem, and each style in it by its name.

    Example:

    >>> [model.name for model in jaxstyle.feedforward.builtin_models() if model.style]
    ['starry_night', 'shipwreck', 'woman_with_hat']
    """
    folder = Path(models_dir) if models_dir is not None else MODELS_DIR
    found = []
    for path in sorted(folder.glob(f"*{MODEL_SUFFIX}")) if folder.is_dir() else []:
        found.append(BuiltinModel(path.stem, path, None))
        try:
            names = style_names(read_header(path))
        except ModelError:
            continue  # a damaged file still resolves by stem and fails loudly on load
        found.extend(BuiltinModel(name, path, name) for name in names if name)
    return found


def resolve_model(name_or_path: str | os.PathLike,
                  models_dir: str | os.PathLike | None = None) -> tuple[Path, Optional[str]]:
    """(model file, style within it or None) for a path or a built-in model or style name.

    An existing file wins; otherwise a built-in style name (case-insensitive, e.g.
    'starry_night') or model stem. ModelError lists the built-in names when nothing matches.

    Example:

    >>> path, style = jaxstyle.resolve_model("Starry_Night")
    >>> path.name, style
    ('paintings.jxs', 'starry_night')
    """
    path = Path(name_or_path)
    if path.exists():
        return path, None
    wanted = str(name_or_path).strip().casefold()
    builtins = builtin_models(models_dir)
    for model in builtins:
        if model.name.casefold() == wanted:
            return model.path, model.style
    names = sorted({model.name for model in builtins})
    available = (f"built-in models: {', '.join(names)}" if names
                 else "no built-in models are installed")
    raise ModelError(f"model {name_or_path}: no such file, and not a built-in model "
                     f"({available})")


def load_resolved(name_or_path: str | os.PathLike,
                  models_dir: str | os.PathLike | None = None) -> tuple[dict, dict, Optional[str]]:
    """(params, header, style or None) for a path or a built-in name (see `resolve_model`)."""
    path, style = resolve_model(name_or_path, models_dir)
    params, header = load_model(path)
    return params, header, style


__all__ = ["MODELS_DIR", "PRESERVE_COLOR", "BuiltinModel", "Stylizer", "apply_model",
           "builtin_models", "load_resolved", "make_stylizer", "read_header", "resolve_model",
           "style_weights_for"]
