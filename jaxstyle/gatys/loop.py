"""The host loop around the compiled step: dispatch, periodic finiteness checks, Ctrl-C and
SIGTERM (`jaxstyle.interrupts`), and state checkpoints. It reads metrics as per-image arrays
and synchronises only every `sync_every` steps, so steps run back to back on the device."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from jaxstyle._types import AnyArray, ParamTree
from jaxstyle.config import StyleConfig
from jaxstyle.errors import JaxstyleError
from jaxstyle.files import atomic_write
from jaxstyle.gatys.state import CompiledStep, Metrics, StyleState, output_image
from jaxstyle.interrupts import InterruptBetweenSteps, by_signal, signum_of
from jaxstyle.mesh import local_rows
from jaxstyle.objective import Targets

# callback(step, metrics, state), after each step (`stylize`'s `callback`).
StepCallback = Callable[[int, Metrics, StyleState], object]


def to_host(tree: Any) -> Any:
    """Device arrays -> NumPy; an array spread over several processes gives this process's
    rows (its jobs), since only those can be read here."""
    def fetch(x: Any) -> np.ndarray:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return local_rows(x)
        return np.asarray(jax.device_get(x))
    return jax.tree.map(fetch, tree)


class NonFiniteLossError(JaxstyleError):
    """The loss became NaN/inf; `image` is the last finite image, `history` the losses so far.

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(steps=2, content_layers="block2_conv2",
    ...                            style_layers="block1_conv1")
    >>> broken = jax.tree.map(lambda x: x * np.nan, params)
    >>> try:
    ...     jaxstyle.stylize(broken, photo, painting, cfg)
    ... except jaxstyle.NonFiniteLossError as error:
    ...     print(error.step, error.image.shape, error.history)
    1 (32, 32, 3) []
    """

    def __init__(self, step: int, image: AnyArray, history: list[dict]) -> None:
        super().__init__(f"loss became non-finite at step {step}; stopped and kept the last "
                         "finite image (try smaller weights or learning rate)")
        self.step, self.image, self.history = step, image, history


class StylizeInterrupted(JaxstyleError):
    """Ctrl-C or SIGTERM during a run; carries the latest state, image and history, and
    `signum`, the signal (None: a KeyboardInterrupt raised by code, such as a callback).

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(steps=2, content_layers="block2_conv2",
    ...                            style_layers="block1_conv1")
    >>> def stop(step, metrics, state):
    ...     raise KeyboardInterrupt  # as Ctrl-C would
    >>> try:
    ...     jaxstyle.stylize(params, photo, painting, cfg, callback=stop)
    ... except jaxstyle.StylizeInterrupted as stopped:
    ...     print(stopped, stopped.image.shape, stopped.signum)
    interrupted at step 1 (32, 32, 3) None
    """

    def __init__(self, state: StyleState, image: AnyArray, history: list[dict],
                 signum: Optional[int] = None) -> None:
        super().__init__(f"interrupted{by_signal(signum)} at step "
                         f"{int(np.max(to_host(state.step)))}")
        self.state, self.image, self.history, self.signum = state, image, history, signum


def metrics_to_host(metrics: Metrics) -> dict[str, Any]:
    """One step's metrics as Python numbers: a float per metric for one image, else a list."""
    host: dict[str, Any] = {}
    for name, value in to_host(metrics).items():
        if name == "finite":
            continue
        flat = np.asarray(value, np.float64).ravel()
        host[name] = float(flat[0]) if flat.size == 1 else flat.tolist()
    return host


# How often a run with a stopping rule reads its losses on the host: often enough that it
# ends within a few steps of the rule holding, rarely enough to keep steps back to back.
STOP_CHECK_EVERY = 10


class History(list):
    """A run's metrics, one dict of floats per step; `stopped` says which stopping rule
    (`StyleConfig.stop_loss`, `stop_improvement`) ended it early, None if it ran every step.

    Example:

    >>> history = jaxstyle.gatys.History([{"loss": 3.0}, {"loss": 2.0}])
    >>> len(history), history.stopped
    (2, None)
    """

    stopped: Optional[str] = None


def stop_reason(losses: Sequence[float], cfg: StyleConfig) -> Optional[str]:
    """Which of `cfg`'s stopping rules holds after steps with these losses, or None.

    Example:

    >>> cfg = jaxstyle.StyleConfig(stop_improvement=0.01, stop_window=2)
    >>> print(jaxstyle.gatys.stop_reason([10.0, 9.0, 8.0], cfg))
    None
    >>> jaxstyle.gatys.stop_reason([10.0, 9.99, 9.98], cfg)
    'the loss fell 0.2% over the last 2 steps (stop_improvement 0.01)'
    """
    if not losses:
        return None
    last = float(losses[-1])
    if cfg.stop_loss is not None and last <= cfg.stop_loss:
        return f"the loss {last:.4g} reached stop_loss {cfg.stop_loss:g}"
    window = cfg.stop_window
    if cfg.stop_improvement is not None and len(losses) > window:
        before = float(losses[-1 - window])
        fell = (before - last) / abs(before) if before else 0.0
        if fell < cfg.stop_improvement:
            return (f"the loss fell {fell:.1%} over the last {window} steps "
                    f"(stop_improvement {cfg.stop_improvement:g})")
    return None


def _all_finite_flags(pending: list[Metrics]) -> list[bool]:
    return [bool(np.all(f)) for f in to_host([m["finite"] for m in pending])]


def run_steps(step: CompiledStep, params: ParamTree, targets: Targets, state: StyleState,
              num_steps: int, cfg: StyleConfig, history: list[dict],
              callback: Optional[StepCallback] = None,
              sync_every: int = 100,
              stop_on_nonfinite: bool = True,
              stop_rules: bool = False) -> tuple[StyleState, Optional[Metrics]]:
    """Run `num_steps` steps; every `sync_every` steps the host checks the loss stayed finite.

    With `stop_rules` (one image's run) and a stopping rule in `cfg`, the host reads the
    losses every `STOP_CHECK_EVERY` steps and ends the run when `stop_reason` holds for
    this call's steps; a `History` then says why in `history.stopped`.

    With `stop_on_nonfinite=False` (batches of independent jobs) a job whose loss goes
    non-finite simply stays at its last finite state, and the others run on; the caller reads
    `finite` from the last metrics. Returns (state, last metrics).

    Example:

    >>> photo, painting = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
    >>> cfg = jaxstyle.StyleConfig(content_layers="block2_conv2", style_layers="block1_conv1")
    >>> targets = jaxstyle.make_targets(params, photo, painting, cfg)
    >>> step, state, history = jaxstyle.make_step(cfg), jaxstyle.init_state(photo, cfg), []
    >>> state, metrics = jaxstyle.gatys.run_steps(step, params, targets, state, 3, cfg, history)
    >>> int(state.step), len(history)
    (3, 3)
    """
    start = int(np.max(to_host(state.step)))
    first = len(history)
    stopping = stop_rules and (cfg.stop_loss is not None or cfg.stop_improvement is not None)
    if stopping:
        sync_every = min(sync_every, STOP_CHECK_EVERY)
    pending: list[Metrics] = []
    metrics: Optional[Metrics] = None
    try:
        with InterruptBetweenSteps() as interrupt:
            for i in range(num_steps):
                state, metrics = step(params, targets, state)
                pending.append(metrics)
                if callback is not None:
                    callback(start + i + 1, metrics, state)
                interrupt.check()
                if len(pending) == sync_every or i == num_steps - 1:
                    finite = _all_finite_flags(pending) if stop_on_nonfinite else []
                    if not all(finite):
                        bad = finite.index(False)
                        history.extend(metrics_to_host(m) for m in pending[:bad])
                        raise NonFiniteLossError(start + i + 2 - len(pending) + bad,
                                                 output_image(state, cfg), history)
                    history.extend(metrics_to_host(m) for m in pending)
                    pending = []
                    reason = stopping and stop_reason([h["loss"] for h in history[first:]],
                                                      cfg)
                    if reason:
                        if isinstance(history, History):
                            history.stopped = f"stopped at step {start + i + 1}: {reason}"
                        break
    except KeyboardInterrupt as stop:
        history.extend(metrics_to_host(m) for m in pending)
        raise StylizeInterrupted(state, output_image(state, cfg), history,
                                 signum_of(stop)) from None
    return state, metrics


def save_state(path: str | os.PathLike, state: StyleState) -> None:
    """Write a state to `path` (flax msgpack), atomically.

    Example:

    >>> photo = np.random.default_rng(0).random((32, 32, 3), np.float32)
    >>> jaxstyle.save_state("run.state", jaxstyle.init_state(photo, jaxstyle.StyleConfig()))
    """
    with atomic_write(path) as f:
        f.write(serialization.to_bytes(jax.device_get(state)))


def _read_checkpoint(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise JaxstyleError(f"checkpoint {path}: no such file") from None
    except OSError as exc:
        raise JaxstyleError(f"checkpoint {path}: unreadable ({exc})") from None


def saved_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of the image in a state saved by `save_state`: which scale of a
    coarse-to-fine run it was saved at."""
    try:
        shape = np.shape(serialization.msgpack_restore(_read_checkpoint(path))["image"])
    except (ValueError, KeyError, TypeError) as exc:
        raise JaxstyleError(f"checkpoint {path}: not a jaxstyle checkpoint ({exc})") from None
    if len(shape) != 4:
        raise JaxstyleError(f"checkpoint {path}: its image has shape {shape}, not (1, H, W, 3)")
    return int(shape[1]), int(shape[2])


def load_state(path: str | os.PathLike, template: StyleState) -> StyleState:
    """Read a state saved by `save_state`; `template` (from `init_state`) fixes its structure.

    Example:

    >>> photo = np.random.default_rng(0).random((32, 32, 3), np.float32)
    >>> state = jaxstyle.init_state(photo, jaxstyle.StyleConfig())
    >>> jaxstyle.save_state("run.state", state)
    >>> restored = jaxstyle.load_state("run.state", template=state)
    >>> bool(jnp.array_equal(restored.image, state.image)), int(restored.step)
    (True, 0)
    """
    data = _read_checkpoint(path)
    try:
        restored = serialization.from_bytes(jax.device_get(template), data)
    except (ValueError, KeyError, TypeError) as exc:
        raise JaxstyleError(f"checkpoint {path}: unreadable or from another run ({exc})") from None
    for saved, wanted in zip(jax.tree.leaves(restored), jax.tree.leaves(template)):
        if np.shape(saved) != np.shape(wanted):
            raise JaxstyleError(f"checkpoint {path}: made for an image of another size or "
                                f"other settings ({np.shape(saved)} vs {np.shape(wanted)})")
    return jax.tree.map(lambda x: jnp.array(x, copy=True), restored)


__all__ = ["STOP_CHECK_EVERY", "History", "NonFiniteLossError", "StylizeInterrupted",
           "load_state", "metrics_to_host", "run_steps", "save_state", "saved_image_size",
           "stop_reason"]
