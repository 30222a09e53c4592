"""Many images in one compiled program: jobs (content x style x setting) bucketed by shape,
vmapped over the batch, and sharded over a device mesh and over processes.

Every job is one independent optimisation with its own state; the batched step is the single-
image step under `jax.vmap`, so a job's result does not depend on its batch. Images are never
padded to a common size (padding would change the Grams and TV): jobs of equal size share a
batch, and a batch that does not split over the devices is filled up with copies of its last
job, whose results are dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import Mesh

from jaxstyle._types import ParamTree
from jaxstyle.config import StyleConfig, sized_budget
from jaxstyle.errors import ConfigError
from jaxstyle.gatys.loop import StepCallback, run_steps, to_host
from jaxstyle.gatys.pipeline import (
    check_run,
    finish_image,
    host_image,
    image_size,
    prepare_colors,
    resize_images,
    scale_sizes,
    style_size,
    upsample_state,
)
from jaxstyle.gatys.state import CompiledStep, StyleState, init_state, make_step, output_image
from jaxstyle.mesh import batch_sharding, global_batch, padded_size, replicated
from jaxstyle.objective import (
    LOSS_WEIGHTS,
    Targets,
    as_image_batch,
    make_targets,
    stack_targets,
    with_loss_weights,
)
from jaxstyle.optim import OPTIMIZER_HYPERPARAMS, set_hyperparams
from jaxstyle.vgg import prepare_params

# Float settings a sweep may vary inside one compiled program: the loss weights travel in the
# targets, the optimizer's hyper-parameters in its (injected) state.
SWEEPABLE = LOSS_WEIGHTS + tuple(OPTIMIZER_HYPERPARAMS)


@dataclasses.dataclass(frozen=True)
class Job:
    """One optimisation: a content image, the style image(s) blended for it, its settings."""

    content: np.ndarray  # (H, W, 3) at its working size
    styles: tuple  # style images (H, W, 3), blended by cfg.style_blend
    settings: tuple = ()  # ((field, value), ...) from a sweep
    init: Optional[np.ndarray] = None  # (h, w, 3) start image (any size), else cfg.init

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.content.shape[:2])


def check_sweep(field: str, values: Sequence[float]) -> None:
    """A sweep varies one float field the compiled step takes as data."""
    if field not in SWEEPABLE:
        raise ConfigError(f"cannot sweep {field!r}: choose one of {', '.join(SWEEPABLE)}")
    if len(values) == 0:  # values may be a NumPy array, whose truth value is ambiguous
        raise ConfigError(f"sweep {field}: give at least one value")
    StyleConfig().replace(**{field: values[0]})  # validates the value's range


def make_jobs(contents: Sequence, styles: Sequence, sweep: Optional[tuple] = None) -> list[Job]:
    """Every content x style (x sweep value) pair, content-major; a style may be a list of
    images that are blended. `sweep` is (field, values)."""
    settings = [()] if sweep is None else [((sweep[0], float(v)),) for v in sweep[1]]
    if sweep is not None:
        check_sweep(sweep[0], sweep[1])
    jobs: list[Job] = []
    for content in contents:
        for style in styles:
            group = tuple(style) if isinstance(style, (list, tuple)) else (style,)
            jobs.extend(Job(np.asarray(content, np.float32), group, s) for s in settings)
    return jobs


def plan_batches(shapes: Sequence[tuple[int, int]], batch_size: Optional[int]) -> list[list[int]]:
    """Job indices grouped by image shape (first appearance order), in chunks of `batch_size`."""
    buckets: dict[tuple[int, ...], list[int]] = {}
    for index, shape in enumerate(shapes):
        buckets.setdefault(tuple(shape), []).append(index)
    cap = batch_size or max((len(b) for b in buckets.values()), default=1)
    return [bucket[i:i + cap] for bucket in buckets.values() for i in range(0, len(bucket), cap)]


def _job_inputs(job: Job, cfg: StyleConfig) -> tuple[jax.Array, list[jax.Array]]:
    content = as_image_batch(job.content, "content image")
    return prepare_colors(content, [as_image_batch(s, "style image") for s in job.styles], cfg)


def job_targets(params: ParamTree, job: Job, cfg: StyleConfig, size: tuple[int, int],
                with_weights: bool) -> Targets:
    """One job's targets at `size`: one content image, its (blended) style Grams, its weights."""
    content, styles = _job_inputs(job, cfg)
    content = resize_images(content, size)
    styles = [resize_images(s, style_size(image_size(s), size, cfg)) for s in styles]
    targets = make_targets(params, content, styles, cfg)
    if not with_weights:
        return targets
    loss_values = {k: v for k, v in job.settings if k in LOSS_WEIGHTS}
    return with_loss_weights(targets, cfg, **loss_values)


def _set_job_hyperparams(state: StyleState, job: Job) -> StyleState:
    values = {k: v for k, v in job.settings if k in OPTIMIZER_HYPERPARAMS}
    if not values:
        return state
    return state._replace(opt_state=set_hyperparams(state.opt_state, **values))


def job_state(job: Job, cfg: StyleConfig, size: tuple[int, int]) -> StyleState:
    """One job's initial state at `size` (its noise depends on cfg.seed only, not its batch)."""
    content, _ = _job_inputs(job, cfg)
    init = None if job.init is None else resize_images(as_image_batch(job.init, "init image"),
                                                       size)
    return _set_job_hyperparams(init_state(resize_images(content, size), cfg, init), job)


class BatchRunner:
    """Runs batches of jobs with one compiled, vmapped step per shape, optionally sharded.

    With a mesh, the job axis is split over its devices and the VGG params are replicated.
    Across processes each one passes only its own rows of a global batch (`global_size` jobs
    in all, a multiple of the device count); `jax.make_array_from_process_local_data` joins them.
    """

    def __init__(self, params: ParamTree, cfg: StyleConfig, mesh: Optional[Mesh] = None,
                 sweep_field: Optional[str] = None) -> None:
        self.cfg, self.mesh = cfg, mesh
        self.with_weights = sweep_field in LOSS_WEIGHTS
        params = prepare_params(params)
        if mesh is None:
            self.params = jax.device_put(params)
            self.step: CompiledStep = make_step(cfg, batched=True)
        else:
            data = batch_sharding(mesh)
            self.params = jax.device_put(params, replicated(mesh))
            self.step = make_step(cfg, batched=True,
                                  shardings=(replicated(mesh), data, data))

    @property
    def multiple(self) -> int:
        """Batches are filled up to a multiple of this (the mesh's device count)."""
        return 1 if self.mesh is None else self.mesh.devices.size

    def _place(self, tree: Any, global_size: int) -> Any:
        if self.mesh is None:
            return tree
        sharding = batch_sharding(self.mesh)
        if jax.process_count() == 1:
            return jax.device_put(tree, sharding)
        return global_batch(jax.device_get(tree), sharding, global_size)

    def run(self, jobs: Sequence[Job], global_size: Optional[int] = None,
            callback: Optional[StepCallback] = None,
            history: Optional[list] = None) -> tuple[list[np.ndarray], list[bool]]:
        """Optimise `jobs` (this process's rows); returns (images (H, W, 3) each, finite flags)."""
        cfg = sized_budget(self.cfg, *jobs[0].shape)  # a batch is one image size
        global_size = global_size or len(jobs)
        sizes = scale_sizes(*jobs[0].shape, cfg)
        steps = cfg.scale_steps or (cfg.total_steps,) * cfg.scales
        for job in jobs:
            check_run(job.shape, [s.shape[:2] for s in job.styles], cfg)
        history = [] if history is None else history
        state = None
        for k, (size, num_steps) in enumerate(zip(sizes, steps)):
            targets = self._place(stack_targets(
                [job_targets(self.params, job, cfg, size, self.with_weights) for job in jobs]),
                global_size)
            if k == 0:
                state = self._place(jax.tree.map(
                    lambda *leaves: np.stack(leaves),
                    *[jax.device_get(job_state(job, cfg, size)) for job in jobs]), global_size)
            else:
                state = self._upsample(state, size, jobs, global_size)
            state, metrics = run_steps(self.step, self.params, targets, state, num_steps, cfg,
                                       history, callback, sync_every=cfg.steps_per_epoch,
                                       stop_on_nonfinite=False)
        assert state is not None  # scale_sizes gives at least one scale
        images = to_host(output_image(state, cfg))  # this process's (b, 1, h, w, 3)
        finite = np.ones(len(jobs), bool) if metrics is None else \
            to_host(metrics["finite"]).reshape(-1)
        results = [host_image(finish_image(image, job.content, cfg))
                   for image, job in zip(images, jobs)]
        return results, [bool(f) for f in finite]

    def _upsample(self, state, size, jobs, global_size):
        host = to_host(state)  # this process's rows
        rows = [jax.tree.map(lambda leaf, i=i: leaf[i], host) for i in range(len(jobs))]
        moved = [_set_job_hyperparams(upsample_state(row, size, self.cfg), job)
                 for row, job in zip(rows, jobs)]
        stacked = jax.tree.map(lambda *leaves: np.stack(leaves), *jax.device_get(moved))
        return self._place(stacked, global_size)


def fill_batch(indices: list[int], multiple: int) -> list[int]:
    """`indices` filled up to a multiple of `multiple` with copies of the last job."""
    return indices + [indices[-1]] * (padded_size(len(indices), multiple) - len(indices))


def stylize_many(params: ParamTree, contents: Sequence, styles: Sequence,
                 cfg: StyleConfig = StyleConfig(), sweep: Optional[tuple] = None,
                 batch_size: Optional[int] = None, mesh: Optional[Mesh] = None,
                 callback: Optional[Callable] = None) -> list[np.ndarray]:
    """Stylize every content x style pair (x each sweep value); returns the images in order,
    each as `stylize` returns one: (H, W, 3) float32 NumPy in [0, 1].

    contents: (H, W, 3) images at their working sizes; styles: (H, W, 3) images, or lists of
    images to blend. `sweep` = (field, values) varies one float setting (SWEEPABLE) per job.
    Jobs of equal size run as one vmapped batch of at most `batch_size`; with `mesh` (e.g.
    `jaxstyle.mesh.data_mesh()`) the batch is sharded over its devices. A job whose loss goes
    non-finite keeps its last finite image. `callback(step, metrics, state)` as in `stylize`.

    Example:

    >>> photo, other, painting = np.random.default_rng(0).random((3, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(steps=2, content_layers="block2_conv2",
    ...                            style_layers="block1_conv1")
    >>> images = jaxstyle.stylize_many(params, [photo, other], [painting], cfg,
    ...                                sweep=("style_weight", [1e-3, 1e-2]))
    >>> len(images), images[0].shape  # 2 photos x 1 style x 2 weights
    (4, (32, 32, 3))
    """
    jobs = make_jobs(contents, styles, sweep)
    runner = BatchRunner(params, cfg, mesh, None if sweep is None else sweep[0])
    results: list[Optional[np.ndarray]] = [None] * len(jobs)
    for indices in plan_batches([job.shape for job in jobs], batch_size):
        filled = fill_batch(indices, runner.multiple)
        images, _ = runner.run([jobs[i] for i in filled], callback=callback)
        for index, image in zip(indices, images):
            results[index] = image
    done = [image for image in results if image is not None]
    assert len(done) == len(jobs)  # plan_batches puts every job in one batch
    return done


__all__ = ["BatchRunner", "Job", "SWEEPABLE", "check_sweep", "fill_batch", "job_state",
           "job_targets", "make_jobs", "plan_batches", "stylize_many"]
