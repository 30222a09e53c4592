"""XLA CPU kernel choices for engine 1's step, measured on the machine and cached per CPU.

XLA CPU sends convolutions to YNNPACK by default. Which of its paths is faster depends on the
CPU and the layers: on an AVX2 EPYC XLA's own (Eigen) convolutions ran engine 2's thin layers
1.3-1.7x faster, a Sapphire Rapids machine found YNNPACK fast for VGG19, and on an AVX-512
EPYC the two were within 4% for the step (BENCHMARKS.md, "The step against TensorFlow, and
the conv path per CPU"). So nothing is hard-coded: the first step compiled on a CPU whose
signature (model, vector flags, core count, jax version) has no cached choice times each
candidate on a small random-weight step of the seed's objective, taking turns, and keeps
the faster one in the user's cache (`cpu-tune.json` beside the weights). A choice is a
`jax.jit` compiler option of the step alone: the process's XLA_FLAGS and every other
program are untouched.

- `JAXSTYLE_XLA_CONV=default|no-ynn` overrides the cached choice (and skips measuring);
- `jaxstyle bench step --tune` measures again and rewrites the cache;
- off the CPU nothing applies.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Optional

from jaxstyle.errors import ConfigError
from jaxstyle.fastconv import NO_YNN_CONV_OPTIONS

ENV = "JAXSTYLE_XLA_CONV"
# name -> jax.jit compiler_options; "default" is XLA's own choice (YNNPACK convolutions).
CONV_PATHS: dict[str, dict[str, str]] = {"default": {}, "no-ynn": NO_YNN_CONV_OPTIONS}
TUNE_SIZE = 160      # px: big enough that the convolutions dominate, small enough to be quick
TUNE_ROUNDS = 5      # turns each candidate takes; the median of its rounds decides
MIN_GAIN = 0.03      # leave XLA's default unless another path is at least this much faster
CACHE_NAME = "cpu-tune.json"


def cpu_flag_set() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo's first `flags` line; empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f
                         if line.startswith("flags")), set())
    except OSError:
        return set()


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor() or platform.machine()


def cpu_signature() -> str:
    """What decides which kernels are fastest: CPU model, vector flags, cores, jax version.

    Example:

    >>> "jax" in jaxstyle.cputune.cpu_signature()
    True
    """
    import jax

    relevant = sorted(f for f in cpu_flag_set() if f.startswith(("avx", "amx", "fma")))
    return f"{cpu_model()} | {' '.join(relevant)} | {os.cpu_count()} cpus | jax {jax.__version__}"


def cache_file() -> Path:
    """The cached choices: `cpu-tune.json` in jaxstyle's cache folder (beside the weights)."""
    from jaxstyle.weights.fetch import weights_cache_dir

    return weights_cache_dir() / CACHE_NAME


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # missing or unreadable: measure again (and rewrite it)
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict) -> None:
    from jaxstyle.files import atomic_write

    try:
        with atomic_write(path) as f:
            f.write(json.dumps(data, indent=1, sort_keys=True).encode())
    except OSError:
        pass  # a read-only cache only means measuring again next time


def measure_conv_paths(size: int = TUNE_SIZE, rounds: int = TUNE_ROUNDS,
                       steps_per_round: int = 2) -> dict[str, float]:
    """Median ms of one step of the seed's objective at `size` px (random VGG19 weights: a
    loss-and-gradient through the network and a clipped gradient step, which is what the
    step's time is) under each conv path, taking turns so a noisy neighbour slows each
    alike. Built from the objective, not engine 1's step module, which imports this one.

    Example:

    >>> times = jaxstyle.cputune.measure_conv_paths(size=32, rounds=1, steps_per_round=1)
    >>> sorted(times)
    ['default', 'no-ynn']
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxstyle.config import StyleConfig
    from jaxstyle.objective import loss_fn, make_targets
    from jaxstyle.vgg import VGG19_CONV_LAYERS, prepare_params

    rng = np.random.default_rng(0)
    params = prepare_params({name: {
        "kernel": (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin)) / 8
                   ).astype(np.float32),
        "bias": np.zeros(cout, np.float32)} for name, cin, cout in VGG19_CONV_LAYERS})
    photo, painting = rng.random((2, size, size, 3), np.float32)
    cfg = StyleConfig()
    targets = make_targets(params, photo, painting, cfg)

    def step_fn(params: Any, targets: Any, image: jax.Array) -> jax.Array:
        grad = jax.grad(lambda x: loss_fn(params, targets, x, cfg)[0].sum())(image)
        return jnp.clip(image - 1e-9 * grad, 0.0, 1.0)

    steps = {name: jax.jit(step_fn, compiler_options=options or None)
             for name, options in CONV_PATHS.items()}
    images = {name: jnp.asarray(photo[None]) for name in steps}
    for name, step in steps.items():  # compile and warm up, untimed
        images[name] = jax.block_until_ready(step(params, targets, images[name]))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(steps_per_round):
                images[name] = step(params, targets, images[name])
            jax.block_until_ready(images[name])
            samples[name].append(1e3 * (time.perf_counter() - started) / steps_per_round)
    return {name: statistics.median(values) for name, values in samples.items()}


def pick(times_ms: dict[str, float]) -> str:
    """The conv path to use: another than XLA's default only if it is MIN_GAIN faster.

    Example:

    >>> jaxstyle.cputune.pick({"default": 100.0, "no-ynn": 90.0})
    'no-ynn'
    >>> jaxstyle.cputune.pick({"default": 100.0, "no-ynn": 99.0})
    'default'
    """
    best = min(times_ms, key=times_ms.__getitem__)
    if best != "default" and times_ms[best] > (1 - MIN_GAIN) * times_ms["default"]:
        return "default"
    return best


def tune(path: Optional[Path] = None, **measure: int) -> dict[str, Any]:
    """Measure the conv paths now and cache the winner for this CPU; returns the entry
    ({'conv': name, 'ms': {...}, 'date': ...})."""
    import datetime

    path = cache_file() if path is None else path
    times = measure_conv_paths(**measure)
    entry = {"conv": pick(times), "ms": {k: round(v, 2) for k, v in times.items()},
             "date": datetime.date.today().isoformat()}
    data = _read_cache(path)
    data[cpu_signature()] = entry
    _write_cache(path, data)
    return entry


def conv_path(path: Optional[Path] = None, measure_if_unknown: bool = True) -> str:
    """The conv path for this machine: `JAXSTYLE_XLA_CONV`, else the cached choice for this
    CPU, else measured now (once) and cached; 'default' if measuring is not wanted.

    Example:

    >>> jaxstyle.cputune.conv_path() in jaxstyle.cputune.CONV_PATHS
    True
    """
    chosen = os.environ.get(ENV)
    if chosen:
        if chosen not in CONV_PATHS:
            raise ConfigError(f"{ENV}={chosen!r}: choose one of {', '.join(CONV_PATHS)}")
        return chosen
    path = cache_file() if path is None else path
    entry = _read_cache(path).get(cpu_signature())
    if isinstance(entry, dict) and entry.get("conv") in CONV_PATHS:
        return entry["conv"]
    if not measure_if_unknown:
        return "default"
    return tune(path)["conv"]


def needs_measuring(path: Optional[Path] = None) -> bool:
    """True when the next CPU step compiled will first measure the conv paths (a few
    seconds, once per machine): a CLI says so before it happens."""
    import jax

    if os.environ.get(ENV) or jax.default_backend() != "cpu":
        return False
    entry = _read_cache(cache_file() if path is None else path).get(cpu_signature())
    return not (isinstance(entry, dict) and entry.get("conv") in CONV_PATHS)


def step_compiler_options() -> Optional[dict[str, str]]:
    """`jax.jit` compiler options for engine 1's step on this machine; None off the CPU or
    where XLA's default is the choice.

    Example:

    >>> options = jaxstyle.cputune.step_compiler_options()
    >>> options is None or options == jaxstyle.cputune.CONV_PATHS["no-ynn"]
    True
    """
    import jax

    if jax.default_backend() != "cpu":
        return None
    return CONV_PATHS[conv_path()] or None


__all__ = ["CONV_PATHS", "ENV", "conv_path", "cpu_flag_set", "cpu_model", "cpu_signature",
           "measure_conv_paths", "needs_measuring", "pick", "step_compiler_options", "tune"]
