"""`stylize`: everything around the compiled step that happens once per run or per scale.

Colour preservation, style-image sizing, masks and coarse-to-fine scales are pre- and
post-processing; the per-step work stays inside the one compiled step (`state.make_step`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Optional, Union, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxstyle import color
from jaxstyle._types import AnyArray, ArrayLike, ParamTree
from jaxstyle.config import StyleConfig, sized_budget
from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.gatys.loop import (
    History,
    NonFiniteLossError,
    StepCallback,
    StylizeInterrupted,
    run_steps,
)
from jaxstyle.gatys.spatial import round_up_size, spatial_shardings
from jaxstyle.gatys.state import (
    CompiledStep,
    StyleState,
    init_state,
    latent_of_image,
    make_step,
    output_image,
)
from jaxstyle.mesh import replicated
from jaxstyle.objective import as_image_batch, check_masks_allowed, make_targets
from jaxstyle.optim import make_optimizer
from jaxstyle.vgg import MIN_SIDE, prepare_params


def image_size(images: AnyArray) -> tuple[int, int]:
    """(H, W) of an (N, H, W, C) batch."""
    return images.shape[1], images.shape[2]


def resize_images(images: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Antialiased resize of (N, H, W, C) images or masks in [0, 1] to (N, *size, C), clipped
    to [0, 1] (lanczos overshoots at edges; an image outside [0, 1] is refused downstream)."""
    if images.shape[1:3] == tuple(size):
        return images
    return jnp.clip(jax.image.resize(images, (images.shape[0], *size, images.shape[3]),
                                     "lanczos3", antialias=True), 0.0, 1.0)


def fit_max_dim(images: jax.Array, max_dim: int) -> jax.Array:
    """(N, H, W, C) shrunk so the longer side is at most `max_dim` (never enlarged), as the
    CLI loads images: the library's `stylize` honours `StyleConfig.max_dim` the same way."""
    height, width = images.shape[1:3]
    if max(height, width) <= max_dim:
        return images
    scale = max_dim / max(height, width)
    return resize_images(images, (max(1, round(height * scale)), max(1, round(width * scale))))


def scale_sizes(height: int, width: int, cfg: StyleConfig) -> list[tuple[int, int]]:
    """Image size at each scale, coarsest first: 1/f^(N-1), ..., 1/f, 1 of (height, width)."""
    sizes = []
    for k in range(cfg.scales):
        factor = cfg.scale_factor ** (cfg.scales - 1 - k)
        sizes.append((round(height / factor), round(width / factor)))
    if min(sizes[0]) < MIN_SIDE:
        raise ConfigError(f"with {cfg.scales} scales of factor {cfg.scale_factor} the coarsest "
                          f"image is {sizes[0][1]}x{sizes[0][0]} px, below {MIN_SIDE} px; "
                          "use fewer scales or a larger image")
    return sizes


def style_size(style_hw: tuple[int, int], output_hw: tuple[int, int],
               cfg: StyleConfig) -> tuple[int, int]:
    """Style image size: longer side = style_scale x output's longer side, capped by
    style_max_dim, and never larger than the style image itself (enlarging only blurs it)."""
    longest = cfg.style_scale * max(output_hw)
    if cfg.style_max_dim is not None:
        longest = min(longest, cfg.style_max_dim)
    longest = min(longest, max(style_hw))
    scale = longest / max(style_hw)
    size = (max(1, round(style_hw[0] * scale)), max(1, round(style_hw[1] * scale)))
    if min(size) < MIN_SIDE:
        raise ConfigError(f"the style image would be {size[1]}x{size[0]} px at this output "
                          f"size (--style-scale {cfg.style_scale}); each side needs "
                          f"{MIN_SIDE} px")
    return size


def normalise_masks(masks: ArrayLike, n_styles: int) -> jax.Array:
    """Masks (S, H, W) in [0, 1] -> weights summing to 1 per pixel.

    One mask with two styles means black = first style, white = second, grey blends.
    Pixels no mask covers are shared equally.
    """
    weights = jnp.asarray(masks, jnp.float32)
    if weights.ndim == 2:
        weights = weights[None]
    if weights.shape[0] == 1 and n_styles == 2:
        weights = jnp.concatenate([1 - weights, weights])
    check_masks_allowed(StyleConfig(), weights.shape[0], n_styles)
    weights = jnp.clip(weights, 0.0, 1.0)
    total = weights.sum(axis=0, keepdims=True)
    return jnp.where(total > 1e-6, weights / jnp.maximum(total, 1e-6), 1.0 / n_styles)


def check_run(content_hw: tuple[int, int], style_hws: Sequence[tuple[int, int]], cfg: StyleConfig,
              n_masks: int = 0) -> None:
    """Cheap checks of a run's shapes and settings, so bad combinations fail before any work."""
    check_masks_allowed(cfg, n_masks, len(style_hws))
    for size in scale_sizes(*content_hw, cfg):
        for hw in style_hws:
            style_size(hw, size, cfg)


def run_sizes(content_hw: tuple[int, int], cfg: StyleConfig,
              mesh: Optional[Mesh] = None) -> list[tuple[int, int]]:
    """The image size of each scale as the run optimises it (rounded up to split evenly over
    a spatial mesh's devices)."""
    sizes = scale_sizes(*content_hw, cfg)
    return sizes if mesh is None else [round_up_size(size, mesh) for size in sizes]


def scale_steps(cfg: StyleConfig) -> tuple[int, ...]:
    """Steps of each scale, coarsest first."""
    return tuple(cfg.scale_steps or (cfg.total_steps,) * cfg.scales)


def resume_point(saved_size: tuple[int, int], saved_step: int, sizes: Sequence[tuple[int, int]],
                 steps: Sequence[int]) -> int:
    """The scale a saved state continues at, from its image's size (the step cannot tell: a
    state saved at the end of scale k is at scale k's size, not yet moved to k + 1's).

    A coarse-to-fine run's step counts on over its scales, so a state of scale k has taken
    at least the steps of the scales before it and at most theirs plus its own."""
    matches = [k for k, size in enumerate(sizes) if tuple(size) == tuple(saved_size)]
    if not matches:
        shown = ", ".join(f"{w}x{h}" for h, w in sizes)
        raise JaxstyleError(f"the checkpoint's image is {saved_size[1]}x{saved_size[0]}, but "
                            f"this run's scales are {shown}: it was saved by a run of another "
                            "size or scales")
    k = matches[0]
    before = int(sum(steps[:k]))
    last = k == len(sizes) - 1  # past the last scale's steps: a finished run, nothing left
    if saved_step < before or (saved_step > before + steps[k] and not last):
        raise JaxstyleError(f"the checkpoint is at step {saved_step}, outside scale {k + 1}'s "
                            f"steps {before}..{before + steps[k]}: it was saved by a run with "
                            "other steps per scale")
    return k


def resume_template(saved_size: tuple[int, int], content: ArrayLike,
                    cfg: StyleConfig) -> StyleState:
    """A state of the run's structure at the saved size, for `loop.load_state` to fill."""
    batch = as_image_batch(content, "content image")
    return init_state(resize_images(batch, saved_size), cfg)


def prepare_colors(content: jax.Array, styles: list[jax.Array],
                   cfg: StyleConfig) -> tuple[jax.Array, list[jax.Array]]:
    """Content and styles as the optimisation sees them under `cfg.preserve_color`."""
    if cfg.preserve_color == "histogram":
        return content, [color.match_color_histogram(s, content) for s in styles]
    if cfg.preserve_color == "luminance":
        return color.luminance_image(content), [color.match_luminance(s, content) for s in styles]
    return content, styles


def upsample_state(state: StyleState, size: tuple[int, int], cfg: StyleConfig) -> StyleState:
    """The state moved to a finer scale: image (and EMA) upsampled; optimizer reset or carried.

    With `cfg.carry_optimizer`, every optimizer leaf shaped like the image (Adam's moments) is
    resized too, so the finer scale starts with the coarse scale's step-size adaptation.
    """
    old_shape = state.image.shape
    image = jnp.clip(resize_images(state.image, size), 0.0, 1.0)
    latent = latent_of_image(image, cfg.lbfgs_box) if cfg.optimizer == "lbfgs" else None
    if cfg.carry_optimizer and cfg.optimizer != "lbfgs":
        def resize_leaf(leaf: Any) -> Any:
            if getattr(leaf, "shape", None) == old_shape:
                return jax.image.resize(leaf, image.shape, "linear")  # keeps moments >= 0
            return leaf
        opt_state = jax.tree.map(resize_leaf, state.opt_state)
    else:
        opt_state = make_optimizer(cfg).init(image if latent is None else latent)
    average = None if state.average is None else resize_images(state.average, size)
    new = StyleState(image, opt_state, state.step, average, latent)
    return jax.tree.map(lambda x: jnp.array(x, copy=True), new)


def finish_image(image: jax.Array, content: ArrayLike, cfg: StyleConfig) -> jax.Array:
    """An optimised image as the user sees it: at the content's size, colours restored."""
    photo = as_image_batch(content, "content image")
    finished = jnp.clip(resize_images(image, image_size(photo)), 0.0, 1.0)
    if cfg.preserve_color == "luminance":
        finished = color.recombine_luminance(finished, photo)
    return finished


@functools.lru_cache(maxsize=8)
def _cached_step(cfg: StyleConfig) -> CompiledStep:
    return make_step(cfg)


def _step_for(cfg: StyleConfig) -> CompiledStep:
    """`make_step(cfg)`, kept across calls: a video's frames (or a notebook's reruns) with one
    config compile once per image shape instead of once per call (measured 5-6 s per frame
    at 256x144 before). A config holding unhashable values (a list) gets a fresh step. The
    run's length does not shape the step, so configs differing only in it share one (a run
    continued with more steps, in the studio, compiles nothing)."""
    defaults = StyleConfig()
    try:
        return _cached_step(cfg.replace(epochs=defaults.epochs, steps=defaults.steps,
                                        steps_per_epoch=defaults.steps_per_epoch))
    except TypeError:
        return make_step(cfg)


def stylize(params: ParamTree, content: ArrayLike, style: Union[ArrayLike, Sequence[ArrayLike]],
            cfg: StyleConfig = StyleConfig(), callback: Optional[StepCallback] = None,
            init_image: Optional[ArrayLike] = None, masks: Optional[AnyArray] = None,
            state: Optional[StyleState] = None,
            mesh: Optional[Mesh] = None) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Repaint `content` in the style of `style` (one image or a list); returns (image, history).

    content, style: (H, W, 3) or (1, H, W, 3) float in [0, 1] (or uint8). The image comes
    back as `load_image` gives one and `stylize_many` returns each: an (H, W, 3) float32
    NumPy array in [0, 1], at the content's size, shrunk to `cfg.max_dim` on its longer side
    if it is larger. `history` (a `History`, a list)
    holds one {'loss', 'content', 'style', 'tv'} dict of floats per step (L-BFGS: 'loss'
    alone); when a stopping rule ends the run early, `history.stopped` says which.
    `callback(step, metrics, state)` runs after every step (metrics are device arrays;
    converting them to floats synchronises). `masks` (S, H, W) at the content's size guide
    each style to a region. Pass `state` (`load_state` of a checkpoint, `resume_template`
    its template) to resume a run at the scale and step it was saved at: the result equals
    the unbroken run's bit for bit. With `mesh` (a `jaxstyle.mesh.spatial_mesh`), the
    image's height and width are split over its devices.
    Raises NonFiniteLossError or StylizeInterrupted (Ctrl-C or SIGTERM), both carrying the
    latest image as `.image`, in the same (H, W, 3) form.

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(steps=2, content_layers="block2_conv2",
    ...                            style_layers="block1_conv1")
    >>> image, history = jaxstyle.stylize(params, photo, painting, cfg)
    >>> image.shape, len(history), sorted(history[0])
    ((32, 32, 3), 2, ['content', 'loss', 'style', 'tv'])
    """
    content = fit_max_dim(as_image_batch(content, "content image"), cfg.max_dim)
    cfg = sized_budget(cfg, *image_size(content))
    given: Sequence = style if isinstance(style, (list, tuple)) else [style]
    styles = [as_image_batch(s, f"style image {i + 1}") for i, s in enumerate(given)]
    params = jax.device_put(prepare_params(params))  # once per run, not once per step
    n_masks = 0 if masks is None else (1 if np.ndim(masks) == 2 else len(masks))
    check_run(image_size(content), [image_size(s) for s in styles], cfg, n_masks)
    weights = None
    if masks is not None:
        weights = normalise_masks(masks, len(styles))
        if weights.shape[1:] != content.shape[1:3]:
            weights = resize_images(weights[..., None], image_size(content))[..., 0]
    content_in, styles_in = prepare_colors(content, styles, cfg)
    sizes, steps = run_sizes(image_size(content), cfg, mesh), scale_steps(cfg)
    if mesh is not None:
        params = jax.device_put(params, replicated(mesh))
    step = None if mesh is not None else _step_for(cfg)  # one compile per scale (shape)
    history = History()

    try:
        state = _run_scales(params, content_in, styles_in, weights, cfg, sizes, steps, step,
                            history, callback, init_image, state, mesh)
    except (NonFiniteLossError, StylizeInterrupted) as stop:
        # What the caller saves then looks like a finished run (full size, colours restored).
        # run_steps raised it with the device image; the caller gets the host's.
        stop.image = host_image(finish_image(cast(jax.Array, stop.image), content, cfg))
        raise
    return host_image(finish_image(output_image(state, cfg), content, cfg)), history


def host_image(image: ArrayLike) -> np.ndarray:
    """A finished (1, H, W, 3) image as the library hands images out: (H, W, 3) float32
    NumPy. The output leaves the device once, here, as every caller reads or saves it."""
    return np.asarray(jax.device_get(image), np.float32)[0]


def _run_scales(params: ParamTree, content_in: jax.Array, styles_in: list[jax.Array],
                masks: Optional[jax.Array], cfg: StyleConfig, sizes: Sequence[tuple[int, int]],
                steps: Sequence[int], step: Optional[CompiledStep], history: list[dict],
                callback: Optional[StepCallback], init_image: Optional[ArrayLike],
                state: Optional[StyleState], mesh: Optional[Mesh] = None) -> StyleState:
    first = 0 if state is None else resume_point(image_size(state.image), int(state.step),
                                                  sizes, steps)
    for k, (size, num_steps) in enumerate(zip(sizes, steps)):
        if k < first:  # done before the checkpoint
            continue
        content_k = resize_images(content_in, size)
        styles_k = [resize_images(s, style_size(image_size(s), size, cfg)) for s in styles_in]
        masks_k = None if masks is None else resize_images(masks[..., None], size)[..., 0]
        targets = make_targets(params, content_k, styles_k, cfg, masks=masks_k)
        if k == first:
            if state is None:
                init = None if init_image is None else resize_images(
                    as_image_batch(init_image, "init image"), size)
                state = init_state(content_k, cfg, init)
            else:  # what is left of this scale's steps
                num_steps = max(int(sum(steps[:k + 1])) - int(state.step), 0)
        else:
            assert state is not None  # made at the first scale run
            state = upsample_state(state, size, cfg)
        if mesh is not None:  # each scale is its own sharded program
            shardings = spatial_shardings(mesh, targets, state)
            targets, state = jax.device_put((targets, state), shardings[1:])
            step = make_step(cfg, shardings=shardings)
        assert step is not None  # given without a mesh, made per scale with one
        # Stopping rules end the last scale only: a coarse scale's loss is not the output's.
        state, _ = run_steps(step, params, targets, state, num_steps, cfg, history, callback,
                             sync_every=cfg.steps_per_epoch, stop_rules=k == len(sizes) - 1)
    assert state is not None  # resume_point gives a scale of this run: at least one ran
    return state


def total_steps(cfg: StyleConfig) -> int:
    """Steps a run takes over all its scales."""
    return int(np.sum(scale_steps(cfg)))
