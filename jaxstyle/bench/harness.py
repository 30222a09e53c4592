"""`jaxstyle bench`: time the compiled step (and peer frameworks' steps) on square images.

Per size: compile time, median and min ms/step over the timed steps (after warm-up, every step
synchronised), achieved GFLOP/s by the FLOP model in BENCHMARKS.md, XLA's temp-buffer size for
the step, peak memory (device stats on GPU/TPU, process peak RSS on CPU) and the device kind.
Peers run in the same process, alternating with jaxstyle in blocks of steps, so slow drifts of
a shared machine hit both sides alike.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import numpy as np

from jaxstyle._types import ParamTree
from jaxstyle.bench import timing
from jaxstyle.bench.timing import machine_info
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError
from jaxstyle.vgg import MIN_SIDE

LOSS_AGREEMENT = 1e-3  # peers must compute the same first-step loss within this relative error


def flops_per_step(height: int, width: int) -> int:
    """Model of one default Gatys step's FLOPs (see BENCHMARKS.md): 1,551,104 * H * W."""
    return 1_551_104 * height * width


def peak_memory_bytes() -> int:
    """Device peak bytes in use on GPU/TPU; the process's peak RSS on CPU."""
    import jax

    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return int(stats["peak_bytes_in_use"])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def bench_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square demo content and style images of `size` px, (1, size, size, 3)."""
    from jaxstyle.demo import demo_content, demo_style
    from jaxstyle.images import resize

    content = resize(demo_content(), (size, size))[None]
    style = resize(demo_style(), (size, size))[None]
    return content, style


class JaxRunner:
    """jaxstyle's compiled step with its own state, timed one synchronised step at a time."""

    name = "jaxstyle"

    def __init__(self, params: ParamTree, content: Any, style: Any, cfg: StyleConfig):
        import jax

        from jaxstyle.gatys import init_state, make_step
        from jaxstyle.objective import make_targets
        from jaxstyle.vgg import prepare_params

        self.params = jax.device_put(prepare_params(params))
        self.targets = make_targets(self.params, content, style, cfg)
        self.state = init_state(content, cfg)
        started = time.perf_counter()
        self.step_fn = make_step(cfg).lower(self.params, self.targets, self.state).compile()
        memory = self.step_fn.memory_analysis()
        self.temp_bytes = int(getattr(memory, "temp_size_in_bytes", 0) or 0)
        self.state, metrics = self.step_fn(self.params, self.targets, self.state)
        self.first_loss = float(metrics["loss"].mean())
        self.compile_s = time.perf_counter() - started

    def step(self) -> Any:
        """One step, waited for; returns its loss (a device array)."""
        import jax

        self.state, metrics = self.step_fn(self.params, self.targets, self.state)
        jax.block_until_ready(self.state.image)
        return metrics["loss"].mean()


class BatchedJaxRunner:
    """The vmapped many-image step on a batch of `batch` copies of the job, sharded over every
    device when there are several; one synchronised step at a time."""

    def __init__(self, params: ParamTree, content: Any, style: Any, cfg: StyleConfig, batch: int):
        import jax

        from jaxstyle.gatys.batch import BatchRunner, job_state, job_targets, make_jobs
        from jaxstyle.mesh import data_mesh
        from jaxstyle.objective import stack_targets

        mesh = data_mesh() if jax.device_count() > 1 else None
        runner = BatchRunner(params, cfg, mesh)
        jobs = make_jobs([content[0]], [style[0]]) * batch
        size = content.shape[1:3]
        self.name = f"jaxstyle x{batch}"
        self.batch = batch
        self.params, self.step_fn = runner.params, runner.step
        self.targets = runner._place(stack_targets(
            [job_targets(runner.params, job, cfg, size, False) for job in jobs]), batch)
        self.state = runner._place(jax.tree.map(
            lambda *leaves: np.stack(leaves),
            *[jax.device_get(job_state(job, cfg, size)) for job in jobs]), batch)
        started = time.perf_counter()
        compiled = self.step_fn.lower(self.params, self.targets, self.state).compile()
        memory = compiled.memory_analysis()
        self.temp_bytes = int(getattr(memory, "temp_size_in_bytes", 0) or 0)
        self.state, metrics = self.step_fn(self.params, self.targets, self.state)
        self.first_loss = float(np.mean(metrics["loss"]))
        self.compile_s = time.perf_counter() - started

    def step(self) -> Any:
        """One step, waited for; returns its loss (a device array)."""
        import jax

        self.state, metrics = self.step_fn(self.params, self.targets, self.state)
        jax.block_until_ready(self.state.image)
        return metrics["loss"]


def bench_batches(params: ParamTree, size: int, cfg: StyleConfig, batches: Any, steps: int,
                  warmup: int,
                  block: int) -> list[dict]:
    """Rows per batch size: ms/step, images/s, and images/s over batch 1's (efficiency)."""
    content, style = bench_images(size)
    runners = [BatchedJaxRunner(params, content, style, cfg, b) for b in batches]
    times = time_runners(runners, steps, warmup, block)
    rows: list[dict[str, Any]] = []
    for runner in runners:
        median = times[runner.name].median
        rows.append({"size": size, "impl": runner.name, "batch": runner.batch,
                     "precision": cfg.precision, "remat": cfg.remat,
                     "ms_per_step": 1e3 * median, "min_ms": 1e3 * times[runner.name].min,
                     "compile_s": runner.compile_s, "images_per_s": runner.batch / median,
                     "gflops": runner.batch * flops_per_step(size, size) / median / 1e9,
                     "temp_bytes": runner.temp_bytes, "first_loss": runner.first_loss})
    single = next((r["images_per_s"] for r in rows if r["batch"] == 1), None)
    for row in rows:
        row["efficiency"] = None if single is None else row["images_per_s"] / single
    rows[-1]["peak_memory_bytes"] = peak_memory_bytes()
    return rows


def format_batch_table(rows: list[dict]) -> str:
    header = (f"{'size':>6} {'batch':>5} {'ms/step':>9} {'images/s':>9} {'vs batch 1':>10} "
              f"{'GFLOP/s':>8} {'XLA temp MiB/device':>19} {'compile s':>9}")
    lines = [header, "-" * len(header)]
    for row in rows:
        efficiency = "" if row["efficiency"] is None else f"{row['efficiency']:.2f}x"
        lines.append(f"{row['size']:>6} {row['batch']:>5} {row['ms_per_step']:>9.1f} "
                     f"{row['images_per_s']:>9.2f} {efficiency:>10} {row['gflops']:>8.1f} "
                     f"{row['temp_bytes'] / 2**20:>19.0f} {row['compile_s']:>9.2f}")
    return "\n".join(lines)


class PeerRunner:
    """A peer framework's step behind the same interface."""

    def __init__(self, peer: str, params: dict, content: Any, style: Any, cfg: StyleConfig):
        from jaxstyle.bench import peers

        started = time.perf_counter()
        self.impl = peers.build(peer, params, content, style, cfg)
        self.name = self.impl.name
        self.first_loss = self.impl.step()  # the first call compiles (tf.function, torch.compile)
        self.compile_s = time.perf_counter() - started
        self.temp_bytes = None

    def step(self) -> float:
        return self.impl.step()


def time_runners(runners: Any, steps: int, warmup: int, block: int) -> dict[str, timing.Timing]:
    """Each runner's Timing of its steps, the runners taking turns in blocks of `block`."""
    return timing.time_alternating({r.name: r.step for r in runners}, steps, warmup, block)


def bench_size(params: dict, size: int, cfg: StyleConfig, peer_names: Any, steps: int,
               warmup: int,
               block: int, log: Callable[..., object] = print) -> list[dict]:
    """Results rows for one image size: jaxstyle first, then each peer with its ratio."""
    content, style = bench_images(size)
    runners: list[Union[JaxRunner, PeerRunner]] = [JaxRunner(params, content, style, cfg)]
    skipped = []
    for peer in peer_names:
        from jaxstyle.bench.peers import PeerUnavailable

        try:
            candidate = PeerRunner(peer, params, content, style, cfg)
        except (PeerUnavailable, ConfigError) as exc:  # not installed, or e.g. no bf16 there
            log(f"peer {peer} skipped: {exc}")
            skipped.append({"size": size, "impl": peer, "skipped": str(exc)})
            continue
        agreement = (abs(candidate.first_loss - runners[0].first_loss)
                     / abs(runners[0].first_loss))
        if agreement > LOSS_AGREEMENT:
            raise ConfigError(f"peer {candidate.name} computes another loss at {size}px: "
                              f"{candidate.first_loss:.6g} vs jaxstyle "
                              f"{runners[0].first_loss:.6g}")
        runners.append(candidate)
    times = time_runners(runners, steps, warmup, block)
    flops = flops_per_step(size, size)
    rows: list[dict[str, Any]] = []
    for runner in runners:
        timed = times[runner.name]
        median = timed.median
        rows.append({
            "size": size, "impl": runner.name, "precision": cfg.precision, "remat": cfg.remat,
            "ms_per_step": 1e3 * median, "min_ms": 1e3 * timed.min,
            "compile_s": runner.compile_s, "gflops": flops / median / 1e9,
            "flops_per_step": flops, "first_loss": runner.first_loss,
            "temp_bytes": runner.temp_bytes, "steps": len(timed.samples),
        })
    for row in rows[1:]:
        row["ratio_jaxstyle_to_peer"] = rows[0]["ms_per_step"] / row["ms_per_step"]
    rows[0]["peak_memory_bytes"] = peak_memory_bytes()
    return rows + skipped


def format_table(rows: list[dict]) -> str:
    header = (f"{'size':>6} {'impl':<14} {'ms/step':>9} {'min ms':>9} {'compile s':>9} "
              f"{'GFLOP/s':>8} {'XLA temp MiB':>12} {'peak MiB':>9} {'jax/peer':>9}")
    lines = [header, "-" * len(header)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"{row['size']:>6} {row['impl']:<14} skipped")
            continue
        temp = "" if row.get("temp_bytes") is None else f"{row['temp_bytes'] / 2**20:.0f}"
        peak = "" if "peak_memory_bytes" not in row else f"{row['peak_memory_bytes'] / 2**20:.0f}"
        ratio = f"{row['ratio_jaxstyle_to_peer']:.2f}" if "ratio_jaxstyle_to_peer" in row else ""
        lines.append(f"{row['size']:>6} {row['impl']:<14} {row['ms_per_step']:>9.1f} "
                     f"{row['min_ms']:>9.1f} {row['compile_s']:>9.2f} {row['gflops']:>8.1f} "
                     f"{temp:>12} {peak:>9} {ratio:>9}")
    return "\n".join(lines)


def run_bench(params: dict, sizes: Any, cfg: StyleConfig, peers: Sequence[str] = (),
              steps: int = 20, warmup: int = 3, block: int = 5,
              log: Callable[..., object] = print, batches: Optional[Sequence[int]] = None) -> dict:
    """Benchmark every size; returns {'machine': {...}, 'results': [...]}.

    With `batches`, times the vmapped many-image step at each batch size instead (peers are
    single-image only).
    """
    results = []
    for size in sizes:
        if size < MIN_SIDE:
            raise ConfigError(f"--sizes: {size} px is below the {MIN_SIDE} px minimum")
        if batches:
            results.extend(bench_batches(params, size, cfg, batches, steps, warmup, block))
        else:
            results.extend(bench_size(params, size, cfg, peers, steps, warmup, block, log))
    return {"machine": machine_info(), "config": {"precision": cfg.precision,
                                                  "remat": cfg.remat, "steps": steps,
                                                  "warmup": warmup, "batches": batches},
            "results": results}
