"""Feed-forward inference speed: jaxstyle's TransformerNet against PyTorch eager and ONNX Runtime.

Per (size, batch): compile time, median and min ms per call over the timed calls (after
warm-up, every call synchronised), ms per image, images/s, achieved GFLOP/s by
`flops_per_pixel(width) * H * W * N` (H, W rounded up to the multiple of 4 the net computes
on), XLA's temp-buffer size, and each output's largest difference from the first jaxstyle
row's (fp32 by default). The JAX net runs in each precision (fp32, bf16) and XLA conv path
("default", or "no-ynn": `fastconv.NO_YNN_CONV_OPTIONS`, convolutions kept off YNNPACK); the
peers, on the same params and input, in fp32. All run in the same process, alternating in
blocks of calls (`harness.time_runners`), so slow drifts of a shared machine hit every
implementation alike. Each jaxstyle row's `ratio_to_peers` is {peer: jaxstyle ms / peer ms}.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle._types import ParamTree
from jaxstyle.bench.harness import peak_memory_bytes, time_runners
from jaxstyle.bench.timing import machine_info
from jaxstyle.errors import ConfigError
from jaxstyle.vgg import MIN_SIDE

PRECISIONS = ("fp32", "bf16")
XLA_CONV_PATHS = ("default", "no-ynn")
PEERS = ("torch", "onnx")
PEER_AGREEMENT = 1e-3  # a peer's output must match jaxstyle fp32's within this (max abs)
_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def flops_per_call(width: float, height: int, image_width: int, batch: int) -> float:
    """Conv FLOPs of one call on (batch, height, image_width, 3), at the padded size."""
    from jaxstyle.feedforward.network import SIZE_MULTIPLE, flops_per_pixel

    padded = lambda side: side + -side % SIZE_MULTIPLE
    return flops_per_pixel(width) * padded(height) * padded(image_width) * batch


def bench_inputs(batch: int, size: int, num_styles: int,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random (batch, size, size, 3) images and (batch, S) style weights on the simplex."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(batch, size, size, 3)).astype(np.float32)
    style_weights = rng.dirichlet(np.ones(num_styles), size=batch).astype(np.float32)
    return images, style_weights


def xla_compiler_options(conv_path: str) -> dict:
    """Compiler options of an XLA conv path ("default": none; "no-ynn": off YNNPACK on CPU)."""
    from jaxstyle.fastconv import cpu_conv_compiler_options

    if conv_path not in XLA_CONV_PATHS:
        raise ConfigError(f"unknown XLA conv path {conv_path!r}; choose from "
                          f"{', '.join(XLA_CONV_PATHS)}")
    return cpu_conv_compiler_options() if conv_path == "no-ynn" else {}


class JaxNetRunner:
    """jaxstyle's jitted TransformerNet forward pass in one precision, params as an argument."""

    def __init__(self, params: ParamTree, images: Any, style_weights: Any, num_styles: int,
                 width: float,
                 precision: str, conv_path: str = "default"):
        import jax
        import jax.numpy as jnp

        from jaxstyle.feedforward.network import TransformerNet

        self.name = f"jaxstyle-{precision}-{conv_path}"
        self.impl, self.precision, self.conv_path = "jaxstyle", precision, conv_path
        model = TransformerNet(num_styles=num_styles, width=width,
                               dtype=jnp.dtype(_DTYPES[precision]))
        # Params passed, not closed over, so XLA cannot fold them in as constants.
        forward = jax.jit(lambda p, x, w: model.apply({"params": p}, x, w),
                          compiler_options=xla_compiler_options(conv_path) or None)
        self.args = jax.device_put((params, images, style_weights))
        started = time.perf_counter()
        self.forward = forward.lower(*self.args).compile()
        memory = self.forward.memory_analysis()
        self.temp_bytes = int(getattr(memory, "temp_size_in_bytes", 0) or 0)
        self.output = np.asarray(self.forward(*self.args))
        self.compile_s = time.perf_counter() - started

    def step(self) -> None:
        self.forward(*self.args).block_until_ready()


class TorchNetRunner:
    """The same net in PyTorch eager (fp32, under inference_mode); NCHW input made once."""

    def __init__(self, params: dict, images: Any, style_weights: Any, num_styles: int,
                 width: float):
        from jaxstyle.bench.peers import torch_net

        self.name = self.impl = "torch"
        self.precision, self.conv_path = "fp32", None
        self.temp_bytes = None
        started = time.perf_counter()
        torch = torch_net._import_torch()
        self._torch = torch
        self.module = torch_net.build_torch_net(params, num_styles, width)
        self.args = (torch_net.to_nchw(images), torch.from_numpy(style_weights))
        with torch.inference_mode():
            self.output = torch_net.to_nhwc(self.module(*self.args))
        self.compile_s = time.perf_counter() - started

    def step(self) -> None:
        with self._torch.inference_mode():
            self.module(*self.args)


class OnnxNetRunner:
    """The torch net exported to ONNX (static shapes) and run by ONNX Runtime's CPU provider."""

    def __init__(self, params: dict, images: Any, style_weights: Any, num_styles: int,
                 width: float):
        from jaxstyle.bench.peers import torch_net

        self.name = self.impl = "onnx"
        self.precision, self.conv_path = "fp32", None
        self.temp_bytes = None
        started = time.perf_counter()
        module = torch_net.build_torch_net(params, num_styles, width)
        batch, height, image_width = images.shape[:3]
        with tempfile.TemporaryDirectory() as folder:  # the session keeps the graph in memory
            path = torch_net.export_onnx(module, Path(folder) / "net.onnx", height, image_width,
                                         batch=batch)
            self.session = torch_net.onnx_session(path)
        self.feed = {"images": np.ascontiguousarray(images.transpose(0, 3, 1, 2)),
                     "style_weights": style_weights}
        self.output = self.session.run(None, self.feed)[0].transpose(0, 2, 3, 1)
        self.compile_s = time.perf_counter() - started

    def step(self) -> None:
        self.session.run(None, self.feed)


_PEER_RUNNERS: dict[str, type[TorchNetRunner | OnnxNetRunner]] = {
    "torch": TorchNetRunner, "onnx": OnnxNetRunner}


def bench_case(params: dict, num_styles: int, width: float, size: int, batch: int,
               precisions: Sequence[str] = PRECISIONS, peers: Sequence[str] = (),
               steps: int = 10, warmup: int = 2, block: int = 3,
               log: Callable[..., object] = print,
               conv_paths: Sequence[str] = ("default",)) -> list[dict]:
    """Result rows for one (size, batch): jaxstyle per precision and conv path, then peers."""
    from jaxstyle.bench.peers import PeerUnavailable

    images, style_weights = bench_inputs(batch, size, num_styles)
    runners: list[JaxNetRunner | TorchNetRunner | OnnxNetRunner] = [
        JaxNetRunner(params, images, style_weights, num_styles, width, precision, path)
        for precision in precisions for path in conv_paths]
    num_jax = len(runners)
    reference = runners[0].output if runners[0].precision == "fp32" else None
    skipped = []
    for peer in peers:
        if peer not in _PEER_RUNNERS:
            raise ConfigError(f"unknown peer {peer!r}; choose from {', '.join(PEERS)}")
        try:
            peer_runner = _PEER_RUNNERS[peer](params, images, style_weights, num_styles, width)
        except PeerUnavailable as exc:
            log(f"peer {peer} skipped: {exc}")
            skipped.append({"size": size, "batch": batch, "impl": peer, "skipped": str(exc)})
            continue
        if reference is not None:
            difference = float(np.abs(peer_runner.output - reference).max())
            if difference > PEER_AGREEMENT:
                raise ConfigError(f"peer {peer} computes another output at {size}px: max "
                                  f"difference {difference:.3g} from jaxstyle fp32")
        runners.append(peer_runner)
    times = time_runners(runners, steps, warmup, block)
    flops = flops_per_call(width, size, size, batch)
    rows: list[dict[str, Any]] = []
    for runner in runners:
        timed = times[runner.name]
        median = timed.median
        rows.append({
            "size": size, "batch": batch, "impl": runner.impl, "precision": runner.precision,
            "xla_conv": runner.conv_path,
            "ms_per_call": 1e3 * median, "min_ms": 1e3 * timed.min,
            "ms_per_image": 1e3 * median / batch, "images_per_s": batch / median,
            "compile_s": runner.compile_s, "gflops": flops / median / 1e9,
            "flops_per_call": flops, "temp_bytes": runner.temp_bytes, "calls": len(timed.samples),
            "max_abs_diff": (None if reference is None
                             else float(np.abs(runner.output - reference).max())),
        })
    for row in rows[:num_jax]:
        row["ratio_to_peers"] = {peer["impl"]: row["ms_per_call"] / peer["ms_per_call"]
                                 for peer in rows[num_jax:]}
    rows[0]["peak_memory_bytes"] = peak_memory_bytes()
    return rows + skipped


def format_model_table(rows: list[dict]) -> str:
    """The result rows as a fixed-width table; one `/peer` column (jaxstyle ms / peer ms) each."""
    peers = list(dict.fromkeys(peer for row in rows for peer in row.get("ratio_to_peers", {})))
    header = (f"{'size':>6} {'batch':>5} {'impl':<9} {'prec':<5} {'xla conv':<8} {'ms/call':>9} "
              f"{'min ms':>9} {'ms/img':>8} {'img/s':>8} {'compile s':>9} {'GFLOP/s':>8} "
              f"{'XLA temp MiB':>12} {'max |diff|':>10}"
              + "".join(f" {'/' + peer:>7}" for peer in peers))
    lines = [header, "-" * len(header)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"{row['size']:>6} {row['batch']:>5} {row['impl']:<9} skipped")
            continue
        temp = "" if row.get("temp_bytes") is None else f"{row['temp_bytes'] / 2**20:.1f}"
        diff = "" if row.get("max_abs_diff") is None else f"{row['max_abs_diff']:.1e}"
        ratios = row.get("ratio_to_peers", {})
        lines.append(f"{row['size']:>6} {row['batch']:>5} {row['impl']:<9} "
                     f"{row['precision']:<5} {row.get('xla_conv') or '':<8} "
                     f"{row['ms_per_call']:>9.1f} {row['min_ms']:>9.1f} "
                     f"{row['ms_per_image']:>8.1f} {row['images_per_s']:>8.2f} "
                     f"{row['compile_s']:>9.2f} {row['gflops']:>8.1f} {temp:>12} {diff:>10}"
                     + "".join(f" {ratios[peer]:>7.2f}" if peer in ratios else f" {'':>7}"
                               for peer in peers))
    return "\n".join(lines)


def run_model_bench(params: dict, num_styles: int, width: float, sizes: Any,
                    batches: Sequence[int] = (1,), precisions: Sequence[str] = PRECISIONS,
                    peers: Sequence[str] = (), steps: int = 10, warmup: int = 2,
                    block: int = 3, log: Callable[..., object] = print,
                    conv_paths: Sequence[str] = ("default",)) -> dict:
    """Benchmark every (size, batch); returns {'machine': ..., 'config': ..., 'results': [...]}."""
    precisions, conv_paths = tuple(precisions), tuple(conv_paths)
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise ConfigError(f"precisions must be some of {', '.join(PRECISIONS)}, got {precisions}")
    if not conv_paths or any(p not in XLA_CONV_PATHS for p in conv_paths):
        raise ConfigError(f"XLA conv paths must be some of {', '.join(XLA_CONV_PATHS)}, "
                          f"got {conv_paths}")
    results = []
    for size in sizes:
        if size < MIN_SIDE:
            raise ConfigError(f"--sizes: {size} px is below the {MIN_SIDE} px minimum")
        for batch in batches:
            if batch < 1:
                raise ConfigError(f"--batch: {batch} must be at least 1")
            log(f"{size}px, batch {batch} ...")
            results.extend(bench_case(params, num_styles, width, size, batch, precisions,
                                      peers, steps, warmup, block, log, conv_paths))
    config = {"num_styles": num_styles, "width": width, "precisions": list(precisions),
              "xla_conv_paths": list(conv_paths), "peers": list(peers), "steps": steps,
              "warmup": warmup, "block": block}
    return {"machine": machine_info(), "config": config, "results": results}
