"""The thread plumbing of the pipeline: a worker that records its error, and queue puts and gets
that give up when asked to stop, so Ctrl-C or an error never leaves a thread blocked."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from jaxstyle.video.common import POLL_SECONDS

T = TypeVar("T")


def _chain(first: T, rest: Iterator[T]) -> Iterator[T]:
    """first, then everything in rest."""
    yield first
    yield from rest


# ----------------------------------------------------------------------------- threads

_END = object()  # the decode thread's last item


@dataclass(frozen=True)
class _Finish:
    """Tells the encode thread to flush and close; partial runs end the audio with the video."""

    audio_to_video_end: bool = False


class _Worker(threading.Thread):
    """A daemon thread that keeps its exception and the seconds it spent working."""

    def __init__(self, name: str, target: Callable, *args: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.work, self.args = target, args
        self.error: BaseException | None = None
        self.busy_seconds = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self.work(self, *self.args)
        except BaseException as exc:  # handed to the calling thread, which raises it
            self.error = exc

    def raise_error(self) -> None:
        """Raise what killed the thread (or say it vanished)."""
        if self.error is not None:
            raise self.error
        raise RuntimeError(f"thread {self.name} ended unexpectedly")


def _put(items: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put, waiting while the queue is full; False if asked to stop meanwhile."""
    while not stop.is_set():
        try:
            items.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            pass
    return False


def _get(items: queue.Queue, stop: threading.Event) -> Any:
    """Get, waiting while the queue is empty; None if asked to stop meanwhile."""
    while not stop.is_set():
        try:
            return items.get(timeout=POLL_SECONDS)
        except queue.Empty:
            pass
    return None


def _get_from(items: queue.Queue, worker: _Worker) -> Any:
    """Get an item the worker produces; raise the worker's error if it died."""
    while True:
        try:
            return items.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if not worker.is_alive() and items.empty():
                worker.raise_error()


def _put_to(items: queue.Queue, item: Any, worker: _Worker) -> None:
    """Put an item the worker consumes; raise the worker's error if it died."""
    while True:
        try:
            items.put(item, timeout=POLL_SECONDS)
            return
        except queue.Full:
            if not worker.is_alive():
                worker.raise_error()
