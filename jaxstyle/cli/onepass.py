"""`stylize --init MODEL`: the optimiser (engine 1) starts from a one-pass result (engine 2 or
3) instead of the photo.

The engines never import each other; the command line composes them here. A one-pass start
lowers the seed loss 25-40% at equal steps (BENCHMARKS.md, "Paint fast, then refine"): the
network does the first part of the optimisation's work in a fraction of a second.

What MODEL may be:
- an any-style model (engine 3: `any`, `any-vgg`, `wct` or a decoder file): it paints with the
  run's own style image(s), blended by --style-blend or placed by --mask as the run is;
- a network trained for its styles (engine 2: `paintings` or a model file): it must hold the
  run's style images (matched by the sha256 of their files, which the model's header keeps),
  or be told which style with `MODEL:STYLE`, a built-in style name (`starry_night`) or
  `--init-style NAME`. Anything else is a one-line error before any work.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import numpy as np
from jax.typing import ArrayLike

from jaxstyle.cli.common import UsageError

INIT_WORDS = ("content", "noise")


def names_a_model(reference: str) -> bool:
    """Whether --init's value names a model (a .jxs file, a built-in name, NAME:STYLE) rather
    than an image file. An existing file is a model only if it is a model file."""
    from jaxstyle.feedforward.apply import MODEL_SUFFIX

    if reference in INIT_WORDS:
        return False
    path = Path(reference)
    if path.is_file():
        return path.suffix.lower() == MODEL_SUFFIX
    # Not a file: a name (resolved, or a one-line error listing the names), unless it reads
    # as a missing picture, which keeps the image loader's "init image ... not found" error.
    return path.suffix.lower() in ("", MODEL_SUFFIX) or ":" in path.name


def _resolve(reference: str) -> tuple[Path, Optional[str]]:
    """(model file, style named with it or None) for MODEL, MODEL:STYLE or a style name."""
    from jaxstyle.errors import JaxstyleError
    from jaxstyle.feedforward.apply import resolve_model

    name, style = reference, None
    if not Path(reference).exists() and ":" in reference:
        name, style = reference.rsplit(":", 1)
    try:
        path, builtin_style = resolve_model(name)
    except JaxstyleError as exc:
        raise UsageError(f"--init {reference}: {exc}") from None
    return path, style or builtin_style


@functools.lru_cache(maxsize=64)
def _file_digest(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, TypeError):
        return None


def _held_styles(header: dict, style_files: Sequence, reference: str) -> list[int]:
    """The model's style index for each of the run's style files, by the files' sha256."""
    from jaxstyle.feedforward.modelfile import style_names

    by_digest = {str(style.get("sha256")): i for i, style in enumerate(header.get("styles", []))}
    indices = []
    for path in style_files:
        digest = _file_digest(None if path is None else str(path))
        index = None if digest is None else by_digest.get(digest)
        if index is None:
            names = ", ".join(name for name in style_names(header) if name) or "unnamed"
            raise UsageError(f"--init {reference}: the model was not trained on "
                             f"{Path(str(path)).name} (its styles: {names}); name one with "
                             "--init-style NAME, or start from an any-style model "
                             "(--init any, any-vgg or wct)")
        indices.append(index)
    return indices


@dataclasses.dataclass
class OnePass:
    """A compiled one-pass painter for stylize runs: `(photos (N,H,W,3), styles, style_files,
    blend, masks) -> (N,H,W,3)` in [0, 1]. `styles` are the run's style images (engine 3
    paints with them), `style_files` their files (engine 2 finds its style by them), `blend`
    the run's style weights and `masks` (S, H, W) its regions at the photos' size."""

    reference: str
    kind: str  # "feed-forward" or "any-style"
    paint: Callable
    check_files: Callable = lambda files: None  # UsageError for style files it cannot paint

    def __call__(self, photos: ArrayLike, styles: Sequence, style_files: Sequence = (),
                 blend: Optional[Sequence[float]] = None,
                 masks: Optional[np.ndarray] = None) -> np.ndarray:
        photos = np.asarray(photos, np.float32)
        single = photos.ndim == 3
        out = self.paint(photos[None] if single else photos, list(styles), list(style_files),
                         blend, masks)
        out = np.clip(np.asarray(out, np.float32), 0.0, 1.0)
        return out[0] if single else out


def make_one_pass(reference: str, style_files: Sequence, init_style: Optional[str],
                  vgg_params: Callable) -> OnePass:
    """The painter `--init MODEL` names, checked against every style file the run will use
    (before any optimisation). vgg_params: () -> VGG19 params, called only if needed."""
    from jaxstyle.arbitrary.decoderfile import is_decoder_header
    from jaxstyle.errors import JaxstyleError
    from jaxstyle.paramfile import read_header

    path, style = _resolve(reference)
    try:
        header = read_header(path)
    except JaxstyleError as exc:
        raise UsageError(f"--init {reference}: {exc}") from None
    if is_decoder_header(header):
        if init_style is not None:
            raise UsageError(f"--init-style picks a style inside a trained network; "
                             f"{reference} paints with the run's own style images")
        return _any_style(reference, path, vgg_params)
    painter = _feed_forward(reference, path, header, init_style or style)
    painter.check_files(style_files)
    return painter


def _any_style(reference: str, path: Path, vgg_params: Callable[[], dict]) -> OnePass:
    from jaxstyle.arbitrary.apply import apply_any, make_any_stylizer, region_masks
    from jaxstyle.arbitrary.decoderfile import load_decoder, needs_vgg
    from jaxstyle.errors import JaxstyleError

    try:
        params, header = load_decoder(path)
        stylizer = make_any_stylizer(vgg_params() if needs_vgg(header) else None, params,
                                     header)
    except JaxstyleError as exc:
        raise UsageError(f"--init {reference}: {exc}") from None

    def paint(photos, styles, files, blend, masks):
        del files
        region = None
        if masks is not None and len(styles) > 1:
            region = np.moveaxis(region_masks(np.asarray(masks, np.float32), len(styles)),
                                 -1, 0)
        return apply_any(None, params, header, photos, styles, stylizer=stylizer,
                         blend=None if region is not None else blend, masks=region)

    return OnePass(reference, "any-style", paint)


def _feed_forward(reference: str, path: Path, header: dict, style: Optional[str]) -> OnePass:
    """Engine 2: the named style for every style file, else each file's own (by sha256)."""
    from jaxstyle.arbitrary.apply import region_masks
    from jaxstyle.errors import JaxstyleError
    from jaxstyle.feedforward.apply import make_stylizer
    from jaxstyle.feedforward.modelfile import load_model, style_index

    try:
        named = None if style is None else style_index(header, style)
        params, header = load_model(path)
        stylizer = make_stylizer(params, header)
    except JaxstyleError as exc:
        raise UsageError(f"--init {reference}: {exc}") from None
    one_hot = np.eye(int(header["num_styles"]), dtype=np.float32)

    def indices_of(files: Sequence) -> list[int]:
        return [named] * len(files) if named is not None else \
            _held_styles(header, files, reference)

    def paint(photos, styles, files, blend, masks):
        indices = indices_of(files or [None] * len(styles))
        rows = lambda i: np.repeat(one_hot[i][None], len(photos), axis=0)  # noqa: E731
        if masks is not None and len(set(indices)) > 1:
            # One pass per style, placed by the run's regions (weights summing to 1 per pixel).
            weights = np.moveaxis(region_masks(np.asarray(masks, np.float32), len(indices)),
                                  -1, 0)
            return sum(w[None, ..., None] * np.asarray(stylizer(photos, rows(i)))
                       for w, i in zip(weights, indices))
        row = np.zeros(len(one_hot), np.float32)
        share = np.ones(len(indices)) if blend is None else np.asarray(blend, np.float64)
        for index, weight in zip(indices, share / share.sum()):
            row[index] += weight
        return stylizer(photos, np.repeat(row[None], len(photos), axis=0))

    return OnePass(reference, "feed-forward", paint, check_files=indices_of)


def as_optimiser_start(image: np.ndarray, preserve_color: Optional[str]) -> np.ndarray:
    """A one-pass result as the optimiser sees it: in luminance mode, its luminance (the run
    optimises a grey image and puts the photo's colours back at the end)."""
    if preserve_color == "luminance":
        from jaxstyle.color import luminance_image

        return np.asarray(luminance_image(np.asarray(image, np.float32)), np.float32)
    return np.asarray(image, np.float32)


def one_pass_start(painter, content, styles, style_files, masks, cfg):
    """`--init MODEL`'s start: the one-pass result at the run's first scale, as the optimiser
    sees it (histogram-matched styles, luminance), and the seconds it took."""
    import jax.numpy as jnp

    from jaxstyle.gatys.pipeline import prepare_colors, scale_sizes
    from jaxstyle.images import resize

    height, width = content.shape[:2]
    size = scale_sizes(height, width, cfg)[0]
    photo = resize(content, size)
    if cfg.preserve_color == "histogram":  # the styles the optimiser sees, as arrays
        styles = [np.asarray(s)[0] for s in prepare_colors(
            jnp.asarray(photo[None]), [jnp.asarray(s[None]) for s in styles], cfg)[1]]
    region = None if masks is None else np.stack(
        [resize(m[..., None], size)[..., 0] for m in masks])
    started = time.perf_counter()
    image = painter(photo, styles, style_files, cfg.style_blend, region)
    return as_optimiser_start(image, cfg.preserve_color), time.perf_counter() - started


__all__ = ["INIT_WORDS", "OnePass", "as_optimiser_start", "make_one_pass", "names_a_model",
           "one_pass_start"]
