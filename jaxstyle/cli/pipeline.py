"""The one-pass commands' image pipeline: read ahead, run the network, write behind.

    decode + resize (a reader thread, one batch ahead)
      -> host-to-device, network, device-to-host (the main thread, one compiled program per
         image shape: a short last batch is filled up to the batch size with copies of its
         last image, which are dropped again, as `jaxstyle.gatys.batch.stylize_many` does)
      -> encode + write (a writer thread, behind)

Pillow's decoders and encoders and XLA's compiled programs all release the GIL, so on a
multi-core CPU the three stages overlap and a folder costs about the network's time per
image. `StageClock` records where every millisecond went (`jaxstyle apply --timings`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

import numpy as np

# "first call": the network's first batch of each image shape, which includes compiling it.
STAGES = ("decode", "resize", "to device", "first call", "network", "to host", "encode")


class StageClock:
    """Seconds and images per pipeline stage, summed over threads (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)
        self.images: dict[str, int] = defaultdict(int)

    @contextlib.contextmanager
    def measure(self, stage: str, images: int = 1) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds[stage] += elapsed
                self.images[stage] += images

    def table(self, wall_seconds: float, images: int) -> str:
        """Per stage: total ms, images and ms per image of that stage; then the sum and the
        wall time per image (less than the sum when the stages overlap)."""
        lines = ["stage        total ms  images   ms/image"]
        for stage in [s for s in STAGES if s in self.seconds] + sorted(
                set(self.seconds) - set(STAGES)):
            count = self.images[stage]
            per_image = self.seconds[stage] * 1e3 / max(count, 1)
            lines.append(f"{stage:<12} {self.seconds[stage] * 1e3:8.1f} {count:7d} "
                         f"{per_image:10.1f}")
        total = sum(self.seconds.values())
        lines.append(f"{'sum':<12} {total * 1e3:8.1f} {images:7d} "
                     f"{total * 1e3 / max(images, 1):10.1f}")
        lines.append(f"{'wall':<12} {wall_seconds * 1e3:8.1f} {images:7d} "
                     f"{wall_seconds * 1e3 / max(images, 1):10.1f}")
        return "\n".join(lines)


def plan_batches(keys: Sequence[Any], batch: int) -> list[list[int]]:
    """Indices grouped by key (an expected image shape), in order of first appearance, cut
    into batches of at most `batch`."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        groups[key].append(index)
    return [members[start:start + batch] for members in groups.values()
            for start in range(0, len(members), batch)]


def fill_batch(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Stack images (all one shape) and fill the batch up to `size` with copies of the last,
    so a short batch runs the program already compiled for full ones."""
    stacked = np.stack(images)
    if len(images) >= size:
        return stacked
    return np.concatenate([stacked, np.repeat(stacked[-1:], size - len(images), axis=0)])


# Below this many cores the reader and writer threads run inline: XLA already keeps every
# core busy with the network, and a decode or PNG encode beside it slowed engine 2's
# network from 90 to 174 ms per 512 px photo on a 2-core machine (issue 36), more than the
# overlap saves. JAXSTYLE_PIPELINE_THREADS=1 or 0 forces either way.
MIN_CORES_TO_OVERLAP = 4


def overlap_stages() -> bool:
    """Whether decode and encode run on threads beside the network on this machine."""
    forced = os.environ.get("JAXSTYLE_PIPELINE_THREADS")
    if forced in ("0", "1"):
        return forced == "1"
    return (os.cpu_count() or 1) >= MIN_CORES_TO_OVERLAP


class _Inline:
    """An executor that runs each task at once, in the caller's thread (a done Future)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as error:  # delivered by .result(), as a thread's would be
            if not isinstance(error, Exception):
                raise  # Ctrl-C and SIGTERM stop the run here, not inside a Future
            future.set_exception(error)
        return future


def run_pipeline(batches: Sequence[Sequence[Any]], load: Callable[[Any], np.ndarray],
                 stylize: Callable[[np.ndarray], Any], write: Callable[[Any, np.ndarray], None],
                 on_done: Callable[[Any], None], on_error: Callable[[Any, Exception], None],
                 errors: tuple[type[Exception], ...],
                 clock: Optional[StageClock] = None, overlap: Optional[bool] = None) -> None:
    """Load, stylise and write every item of `batches`, reading one batch ahead and writing
    behind the network.

    load(item) -> (H, W, 3) image; stylize((B, H, W, 3)) -> (B, H, W, 3) array (jax or
    numpy); write(item, image). An exception of a type in `errors` from load or write fails
    that item alone (on_error(item, error)); on_done(item) after each write, in order. Images
    of one batch whose shapes differ after loading (a misleading header) run as separate
    groups. Every group is filled up to the size of the first group of its shape
    (`fill_batch`; plan full batches first, as `plan_batches` does), so a remainder costs no
    compilation, while a lone image is not padded to a batch it does not need. Written
    outputs are never lost: on an exception (Ctrl-C included) the queued writes finish first.
    `overlap` (default: `overlap_stages()`, on machines of 4 or more cores) runs decode and
    encode on threads beside the network; otherwise each runs in turn with it.
    """
    import jax

    clock = clock or StageClock()
    group_size: dict[tuple, int] = {}

    def load_batch(items: Sequence[Any]) -> tuple[list[tuple[Any, Exception]],
                                                   dict[tuple, list[tuple[Any, np.ndarray]]]]:
        """(the items that failed to load, with their errors; the rest grouped by shape)."""
        failed: list[tuple[Any, Exception]] = []
        loaded: dict[tuple, list[tuple[Any, np.ndarray]]] = defaultdict(list)
        for item in items:
            try:
                image = load(item)
            except errors as error:
                failed.append((item, error))
                continue
            loaded[image.shape].append((item, image))
        return failed, loaded

    def write_one(item: Any, image: np.ndarray) -> None:
        with clock.measure("encode"):
            write(item, image)

    pending: list[tuple[Any, Future]] = []

    def drain(block: bool) -> None:
        while pending and (block or pending[0][1].done()):
            item, future = pending.pop(0)
            try:
                future.result()
            except errors as error:
                on_error(item, error)
            else:
                on_done(item)

    executor: Any = ThreadPoolExecutor if (overlap_stages() if overlap is None
                                           else overlap) else _Inline
    with executor(1, thread_name_prefix="read") as reader, \
            executor(1, thread_name_prefix="write") as writer:
        try:
            upcoming = reader.submit(load_batch, batches[0]) if batches else None
            for index in range(len(batches)):
                assert upcoming is not None  # submitted for every batch before its turn
                failed, loaded = upcoming.result()
                if index + 1 < len(batches):
                    upcoming = reader.submit(load_batch, batches[index + 1])
                for item, error in failed:
                    on_error(item, error)
                for shape, group in loaded.items():
                    first = shape not in group_size  # its call compiles the program
                    size = group_size.setdefault(shape, len(group))
                    with clock.measure("to device", len(group)):
                        batch = jax.device_put(fill_batch([image for _, image in group], size))
                        batch.block_until_ready()
                    with clock.measure("first call" if first else "network", len(group)):
                        out = stylize(batch)
                        if isinstance(out, jax.Array):
                            out.block_until_ready()
                    with clock.measure("to host", len(group)):
                        out = np.asarray(out)[:len(group)]
                    for (item, _), image in zip(group, out):
                        pending.append((item, writer.submit(write_one, item, image)))
                drain(block=False)
        finally:
            drain(block=True)  # every queued write finishes (or fails) before we leave


__all__ = ["MIN_CORES_TO_OVERLAP", "STAGES", "StageClock", "fill_batch", "overlap_stages",
           "plan_batches", "run_pipeline"]
