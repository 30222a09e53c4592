"""The training runtime both trained engines share: a host loop around a compiled step.

Engine 2 (feed-forward networks) and engine 3 (the arbitrary-style decoder) differ in their
state, step and data, not in how a run is driven. `run_training` owns what they have in
common: the step loop, orbax checkpoints (state, the grain iterators' positions and a JSON run
record), `--resume`, a JSON-lines log, previews, Ctrl-C and SIGTERM (a checkpoint and the
model file, then `TrainingInterrupted`) and the model file at the end. The engine passes its
step, a batch source and two callbacks (`save_model_file`, `render_preview`).

Checkpoints (orbax `CheckpointManager`, one folder per saved step):

    CHECKPOINT_DIR/<step>/state/      the step's state pytree (params, optimiser state, ...)
    CHECKPOINT_DIR/<step>/<name>/     each grain iterator's position (`dataset`, ...)
    CHECKPOINT_DIR/<step>/run/        JSON: what a resume must agree on, seconds so far
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional

import jax
import numpy as np
from jax.sharding import Mesh

from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.interrupts import InterruptBetweenSteps, by_signal

Metrics = dict[str, jax.Array]
MAX_NONFINITE_STEPS = 100  # that many skipped updates in a row: training has diverged


class TrainingInterrupted(JaxstyleError):
    """Ctrl-C or SIGTERM during training; a checkpoint and the model file were saved first.
    `signum` is the signal that stopped it.

    Example:

    >>> from pathlib import Path
    >>> stopped = jaxstyle.TrainingInterrupted(120, Path("model.jxs"), None, signum=15)
    >>> print(stopped)  # what `train` raises; the model file holds the 120 steps
    interrupted by SIGTERM at step 120: saved model.jxs
    """

    def __init__(self, step: int, model: Path, checkpoint_dir: Optional[Path],
                 signum: Optional[int] = None) -> None:
        where = f" and a checkpoint in {checkpoint_dir} (continue with --resume)" \
            if checkpoint_dir is not None else ""
        super().__init__(f"interrupted{by_signal(signum)} at step {step}: saved {model}{where}")
        self.step, self.model, self.checkpoint_dir = step, model, checkpoint_dir
        self.signum = signum


class TrainingDiverged(JaxstyleError):
    """The loss stayed non-finite for many steps in a row."""


def host_copy(tree):
    """A replicated (or local) pytree of arrays as numpy, on any number of processes."""
    def one(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(leaf.addressable_data(0))
        return np.asarray(leaf)
    return jax.tree.map(one, tree)


def default_checkpoint_dir(model: str | os.PathLike) -> Path:
    """`starry.jxs` -> `starry.checkpoints/` next to it."""
    model = Path(model)
    return model.with_name(model.stem + ".checkpoints")


def preview_path(model: str | os.PathLike) -> Path:
    model = Path(model)
    return model.with_name(model.stem + ".preview.png")


def log_path_for(model: str | os.PathLike) -> Path:
    model = Path(model)
    return model.with_name(model.stem + ".log.jsonl")


def auto_axes(mesh):
    """The same mesh (devices, axis names) with Auto axis types.

    `jax.make_mesh` makes Explicit axes by default in this JAX: array types then carry their
    sharding, and nearest-neighbour upsampling (a reshape of a batch-sharded array) fails to
    trace. `jaxstyle.mesh` builds Auto meshes already; this also accepts a caller's own mesh.
    With Auto axes XLA's partitioner propagates the batch sharding.
    """
    from jax.sharding import AxisType, Mesh

    return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)


def training_mesh(devices=None):
    """A 1-D data-parallel mesh over all devices (or `devices`), Auto axes (see `auto_axes`)."""
    from jaxstyle.mesh import data_mesh

    return auto_axes(data_mesh(devices))


def all_finite(tree: Any) -> jax.Array:
    """True when every element of every leaf is finite (a traced bool)."""
    import jax.numpy as jnp

    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def keep_if_finite(finite: jax.Array, new: Any, old: Any) -> Any:
    """`new` where `finite`, else `old`, leaf by leaf: a bad batch cannot poison the weights."""
    import jax.numpy as jnp

    return jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)


def check_settings(settings: Any, *, counts: Sequence[str] = (),
                   nonnegative_ints: Sequence[str] = (), positive_numbers: Sequence[str] = (),
                   nonnegative_numbers: Sequence[str] = ()) -> None:
    """ConfigError naming the first field of a settings dataclass outside its range.

    counts: integers >= 1; nonnegative_ints: integers >= 0; positive_numbers: finite > 0;
    nonnegative_numbers: finite >= 0 (bools are not numbers here).
    """
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)

    for names, ok, what in (
            (counts, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
             "an integer >= 1"),
            (nonnegative_ints, lambda v: isinstance(v, int) and not isinstance(v, bool)
             and v >= 0, "an integer >= 0"),
            (positive_numbers, lambda v: number(v) and v > 0, "a finite number > 0"),
            (nonnegative_numbers, lambda v: number(v) and v >= 0, "a finite number >= 0")):
        for name in names:
            value = getattr(settings, name)
            if not ok(value):
                raise ConfigError(f"{name} must be {what}, got {value!r}")


class TrainingLog:
    """Per-step metrics, fetched from the device every few steps (so steps run back to back),
    written as JSON lines by process 0 and passed to `on_log`. A resume drops the lines after
    its step; many non-finite steps in a row raise TrainingDiverged.

    Metrics must hold scalars and a bool `finite` (False: the step's update was skipped).
    """

    def __init__(self, path: Path, resumed_step: Optional[int], leader: bool, batch: int,
                 on_log: Optional[Callable[[list[dict]], None]]):
        self.path = path if leader else None
        self.batch, self.on_log = batch, on_log
        self.pending: list[tuple[int, Metrics]] = []
        self.skipped = self.consecutive_skipped = 0
        self.window_started, self.window_steps = time.perf_counter(), 0
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resumed_step is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= resumed_step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    continue
        self.path.write_text("".join(line + "\n" for line in kept))

    def add(self, step: int, metrics: Metrics, first: bool = False) -> None:
        self.pending.append((step, metrics))
        if first:
            # The first step of a session includes compiling: time the throughput after it.
            jax.block_until_ready(metrics)
            self.window_started = time.perf_counter()
        else:
            self.window_steps += 1

    def flush(self) -> None:
        if not self.pending:
            return
        values = host_copy([metrics for _, metrics in self.pending])
        now = time.perf_counter()
        # None when the window held only the compiling first step.
        rate = round(self.window_steps * self.batch / max(now - self.window_started, 1e-9),
                     3) if self.window_steps else None
        self.window_started, self.window_steps = now, 0
        records = []
        for (step, _), metrics in zip(self.pending, values):
            finite = bool(metrics.pop("finite"))
            self.skipped += not finite
            self.consecutive_skipped = 0 if finite else self.consecutive_skipped + 1
            records.append({"step": step, **{k: float(v) for k, v in metrics.items()},
                            "images_per_s": rate,
                            **({} if finite else {"skipped": True})})
        self.pending.clear()
        if self.path is not None:
            with open(self.path, "a") as file:
                file.writelines(json.dumps(record) + "\n" for record in records)
        if self.on_log is not None:
            self.on_log(records)
        if self.consecutive_skipped >= MAX_NONFINITE_STEPS:
            raise TrainingDiverged(f"the loss was non-finite for {self.consecutive_skipped} "
                                   "steps in a row; try a smaller --lr or loss weights")


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a training log, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# --- Checkpoints --------------------------------------------------------------------------------

def checkpoint_manager(directory: Path, keep: int) -> Any:
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True,
                                           create=True)
    return ocp.CheckpointManager(directory.absolute(), options=options)


def save_checkpoint(manager: Any, step: int, state: Any, iterators: Mapping[str, Any],
                    record: dict) -> None:
    import orbax.checkpoint as ocp

    from jaxstyle.data import iterator_checkpoint_args

    if manager.latest_step() == step:
        return
    # The save copies the state to the host before returning, so the next step may donate it.
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        run=ocp.args.JsonSave(record),
        **{name: iterator_checkpoint_args(it) for name, it in iterators.items()}), force=True)


def restore_checkpoint(manager: Any, directory: Path, state: Any, iterators: Mapping[str, Any],
                       record: dict, must_match: Mapping[str, str]) -> tuple[Any, dict]:
    """The latest checkpoint's state (and the iterators' positions, in place) and run record.

    must_match: run-record keys the checkpoint must share with `record`, with the words that
    name them in the error (e.g. {"width": "network width"}).
    """
    import orbax.checkpoint as ocp

    from jaxstyle.data import DataError, iterator_checkpoint_args

    step = manager.latest_step()
    if step is None:
        raise ConfigError(f"nothing to resume: no checkpoint in {directory}")
    saved = manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))["run"]
    for name, what in must_match.items():
        if saved.get(name) != record[name]:
            raise ConfigError(f"checkpoint {directory}/{step} was trained with other "
                              f"{what} ({saved.get(name)} vs {record[name]}); resume with the "
                              "same settings, or start afresh")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            **{name: iterator_checkpoint_args(it, restore=True)
               for name, it in iterators.items()}))
    except ValueError as error:
        raise DataError(f"checkpoint {directory}/{step} does not fit this data pipeline "
                        f"(the same data folders, --batch, --size, --seed and --workers are "
                        f"needed): {str(error).splitlines()[0]}") from error
    return restored["state"], saved


class ParallelStep:
    """`jax.jit` of a step(frozen, state, batch) -> (state, metrics), the state donated;
    data-parallel over a mesh's 'data' axis (batch split, frozen inputs and state replicated;
    XLA adds the gradient all-reduce). On a CPU its convs stay off YNNPACK, which ran the
    decoder's step about 2x slower (`jaxstyle.fastconv`). `trace_count` counts compilations.
    """

    def __init__(self, step_fn: Callable, batch: int, mesh: Optional[Mesh] = None) -> None:
        from jaxstyle.fastconv import cpu_conv_compiler_options
        from jaxstyle.mesh import batch_sharding, replicated

        self.trace_count = 0

        def counted(frozen, state, batch):
            self.trace_count += 1  # runs only while tracing
            return step_fn(frozen, state, batch)

        options = cpu_conv_compiler_options()
        if mesh is None:
            self.replicated = self.batch_sharding = None
            self._jitted = jax.jit(counted, donate_argnums=(1,), compiler_options=options)
            return
        if batch % mesh.devices.size:
            raise ConfigError(f"batch {batch} does not split evenly over "
                              f"{mesh.devices.size} devices")
        mesh = auto_axes(mesh)
        self.replicated, self.batch_sharding = replicated(mesh), batch_sharding(mesh)
        whole, split = self.replicated, self.batch_sharding
        self._jitted = jax.jit(counted, in_shardings=(whole, whole, split),
                               out_shardings=(whole, whole), donate_argnums=(1,),
                               compiler_options=options)

    def __call__(self, frozen, state, batch):
        return self._jitted(frozen, state, batch)


# --- The host loop ------------------------------------------------------------------------------

class LoopSettings(NamedTuple):
    steps: int             # total steps of the run (a resume continues towards it)
    batch: int             # global images per step (for images/s)
    checkpoint_every: int  # 0: only at the end and on Ctrl-C
    keep: int              # checkpoints kept
    preview_every: int     # 0: never
    log_every: int         # steps between host synchronisations


def time_is_up(started: float, time_limit: Optional[float]) -> bool:
    """Whether `time_limit` seconds have passed since `started` (a perf_counter reading).

    With several processes, process 0's clock decides for all: each must stop after the same
    step, or the others would wait forever in the next step's collectives.
    """
    if time_limit is None:
        return False
    up = time.perf_counter() - started >= time_limit
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        up = bool(multihost_utils.broadcast_one_to_all(np.asarray(up)))
    return up


class LoopResult(NamedTuple):
    state: Any
    steps: int            # total steps done (including those before a resume)
    seconds: float        # training time (including that before a resume)
    skipped_steps: int    # updates skipped for a non-finite loss in this session


def run_training(step_fn: Callable, state: Any, next_batch: Callable[[], Any],
                 iterators: Mapping[str, Any], settings: LoopSettings, output: Path, *,
                 record: dict, must_match: Mapping[str, str],
                 save_model_file: Callable[[Any, int, float, bool], None],
                 render_preview: Optional[Callable[[Any], np.ndarray]] = None,
                 checkpoint_dir: Optional[Path] = None, resume: bool = False,
                 log_path: Optional[Path] = None,
                 on_log: Optional[Callable[[list[dict]], None]] = None,
                 time_limit: Optional[float] = None) -> LoopResult:
    """Drive `state, metrics = step_fn(state, next_batch())` to `settings.steps`.

    state: a pytree with an int `step` field (steps taken). iterators: the grain iterators
    `next_batch` reads, by checkpoint item name; a resume restores them with the state, so
    the losses equal those of an uninterrupted run. record: the run's JSON record, saved with
    every checkpoint. save_model_file(state, step, seconds, interrupted) writes the model
    (every process calls it; only process 0 should write). render_preview(params) -> image,
    written to `preview_path(output)` every `settings.preview_every` steps by process 0.
    time_limit: seconds of this session after which the loop stops early, at the next log
    boundary, and saves the model and a checkpoint as at the end (`result.steps` then falls
    short of `settings.steps`; `--resume` continues). The caller closes the iterators.
    """
    from jaxstyle.images import save_image

    checkpoint_dir = checkpoint_dir or default_checkpoint_dir(output)
    leader = jax.process_index() == 0
    manager = checkpoint_manager(checkpoint_dir, settings.keep)
    try:
        previous_seconds = 0.0
        if resume:
            state, saved = restore_checkpoint(manager, checkpoint_dir, state, iterators, record,
                                              must_match)
            previous_seconds = float(saved.get("seconds", 0.0))
        elif manager.latest_step() is not None:
            raise ConfigError(f"{checkpoint_dir} holds checkpoints of an earlier run; continue "
                              "it with --resume, or give another --checkpoint-dir")
        start = step = int(host_copy(state.step))
        log = TrainingLog(log_path or log_path_for(output), start if resume else None, leader,
                          settings.batch, on_log)
        started = time.perf_counter()
        out_of_time = False

        def seconds() -> float:
            return previous_seconds + time.perf_counter() - started

        def checkpoint() -> None:
            save_checkpoint(manager, step, state, iterators, {**record, "seconds": seconds()})

        # Stopping only between steps keeps the donated state intact.
        with InterruptBetweenSteps() as stop:
            while step < settings.steps and not stop.requested and not out_of_time:
                state, metrics = step_fn(state, next_batch())
                step += 1
                log.add(step, metrics, first=step == start + 1)
                if step % settings.log_every == 0 or step == settings.steps:
                    log.flush()
                    out_of_time = time_is_up(started, time_limit)
                if settings.checkpoint_every and step % settings.checkpoint_every == 0:
                    checkpoint()
                if leader and render_preview is not None and settings.preview_every and \
                        step % settings.preview_every == 0:
                    save_image(preview_path(output), render_preview(host_copy(state.params)))
            log.flush()
            checkpoint()
            if stop.requested:
                save_model_file(state, step, seconds(), True)
                manager.wait_until_finished()
                raise TrainingInterrupted(step, output, checkpoint_dir, stop.signum)
        save_model_file(state, step, seconds(), False)
    finally:
        manager.wait_until_finished()
        manager.close()
    return LoopResult(state, step, seconds(), log.skipped)
