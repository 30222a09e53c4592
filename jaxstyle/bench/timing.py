"""The one timing helper and table printer of every `jaxstyle bench` benchmark.

Timing rules (BENCHMARKS.md): untimed warm-up calls first (compiling, caches, lazy loads);
then timed calls, each one finished before the clock stops (the callable must block: use
`jax.block_until_ready` or convert to numpy); medians with min and max, never a mean, as
these machines are shared and noisy. Implementations compared in one run take turns in
blocks (`time_alternating`), so a neighbour's load hits every side alike, and their ratio
is of medians measured side by side.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import NamedTuple, TypeVar

from jaxstyle.cputune import cpu_flag_set, cpu_model  # noqa: F401  (also this module's)

K = TypeVar("K", bound=Hashable)  # how the caller names its callables


class Timing(NamedTuple):
    """Seconds of each timed call."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def summary(self, unit: str = "ms") -> str:
        """'12.3 ms (min 11.9, max 14.0, 9 runs)'."""
        scale = {"ms": 1e3, "s": 1.0}[unit]
        return (f"{self.median * scale:.1f} {unit} (min {self.min * scale:.1f}, max "
                f"{self.max * scale:.1f}, {len(self.samples)} runs)")


def _check_counts(repeats: int, warmup: int, block: int = 1) -> None:
    if repeats < 1 or warmup < 0 or block < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0 and block >= 1; got {repeats}, "
                         f"{warmup}, {block}")


def time_calls(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timing:
    """`warmup` untimed calls of fn, then `repeats` timed ones."""
    return time_alternating({"": fn}, repeats, warmup)[""]


def time_alternating(calls: Mapping[K, Callable[[], object]], repeats: int, warmup: int = 1,
                     block: int = 1) -> dict[K, Timing]:
    """Each named callable's Timing over `repeats` calls, the callables taking turns in blocks
    of `block` calls after `warmup` untimed calls each."""
    _check_counts(repeats, warmup, block)
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    samples: dict[K, list[float]] = {name: [] for name in calls}
    while any(len(s) < repeats for s in samples.values()):
        for name, fn in calls.items():
            for _ in range(min(block, repeats - len(samples[name]))):
                started = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - started)
    return {name: Timing(tuple(s)) for name, s in samples.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (the form BENCHMARKS.md keeps); cells are printed with str()."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a row of {len(row)} cells under {len(headers)} headers")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def cpu_flags() -> str:
    """The vector extensions that decide XLA's CPU kernels: 'AVX-512', 'AVX2' or ''."""
    flags = cpu_flag_set()
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""


def machine_info() -> dict:
    """Date, host, CPU (model, vector flags, count), Python, jax, backend and device."""
    import jax

    device = jax.devices()[0]
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "platform": platform.platform(),
        "processor": cpu_model(), "cpu_flags": cpu_flags(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "jax": jax.__version__,
        "backend": jax.default_backend(), "device": device.device_kind,
        "device_count": jax.device_count(),
    }


def machine_line(info: dict | None = None) -> str:
    """One line naming the machine, for the top of every benchmark's output."""
    m = machine_info() if info is None else info
    flags = f", {m['cpu_flags']}" if m.get("cpu_flags") else ""
    return (f"# {m['date']}  {m['device']} ({m['backend']}, {m['cpus']} CPUs{flags})  "
            f"{m['processor']}  jax {m['jax']}")


__all__ = ["Timing", "cpu_flag_set", "cpu_flags", "machine_info", "machine_line", "markdown_table",
           "time_alternating", "time_calls"]
