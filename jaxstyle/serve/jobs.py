"""One worker thread runs the studio's jobs in arrival order; jobs are data.

A job is its settings, an append-only list of events (what the page streams), a cancel flag
and, at the end, a result (PNG bytes). First come, first served: a second browser's job waits
its turn, sees its place in the queue, and cannot starve the first. Cancelling a queued job
drops it; cancelling a running one sets its flag, which the engine reads between steps. A job
that raises becomes an error event and the worker takes the next one; if the worker thread
ever dies, the next submission starts a new one.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

from jaxstyle.errors import JaxstyleError

KEEP_FINISHED = 64  # finished jobs kept for their results (oldest dropped first)


class JobCancelled(Exception):
    """Raised inside a running job when its cancel flag is set."""


@dataclasses.dataclass
class Job:
    """One piece of the studio's work: its settings, the function that does it (emitting
    events, returning the result PNG), its events (what the page streams), status and result.

    Example:

    >>> import jaxstyle.serve
    >>> import time
    >>> queue = jaxstyle.serve.JobQueue()
    >>> job = queue.submit(jaxstyle.serve.Job(settings=None, run=lambda job: b"PNG bytes"))
    >>> while not job.finished:
    ...     time.sleep(0.01)
    >>> job.status, job.result, [event["type"] for event in job.events]
    ('done', b'PNG bytes', ['started', 'done'])
    >>> queue.close()
    """

    settings: Any
    run: Callable[[Job], bytes]         # the work: emits events, returns the result PNG
    id: str = dataclasses.field(default_factory=lambda: secrets.token_hex(12))
    status: str = "queued"              # queued | running | done | stopped | error | cancelled
    events: list = dataclasses.field(default_factory=list)
    result: Optional[bytes] = None
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    def emit(self, kind: str, **fields: Any) -> None:
        """Append an event for the page (list.append is atomic under the GIL)."""
        self.events.append({"type": kind, "time": time.time(), **fields})

    def check(self) -> None:
        """Raise JobCancelled if the job was cancelled (its tab closed, or the user asked)."""
        if self.cancel.is_set():
            raise JobCancelled

    @property
    def finished(self) -> bool:
        return self.status in ("done", "stopped", "error", "cancelled")


class JobQueue:
    """Runs submitted jobs one at a time, in arrival order, on one worker thread; `position`
    says how many run before a job, `cancel` drops or stops one, `close` ends the worker.

    Example:

    >>> import jaxstyle.serve
    >>> import threading
    >>> queue, release = jaxstyle.serve.JobQueue(), threading.Event()
    >>> first = queue.submit(jaxstyle.serve.Job(None, run=lambda job: release.wait() and b""))
    >>> second = queue.submit(jaxstyle.serve.Job(None, run=lambda job: b""))
    >>> queue.position(second)  # the running job is ahead of it
    1
    >>> queue.cancel(second); release.set()
    >>> second.status
    'cancelled'
    >>> queue.close()
    """

    def __init__(self) -> None:
        self._pending: collections.deque[Job] = collections.deque()
        self._jobs: dict[str, Job] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._lock = threading.Condition()
        self._worker: Optional[threading.Thread] = None
        self._running: Optional[Job] = None
        self._closed = False

    def submit(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
            self._pending.append(job)
            self._lock.notify()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="jaxstyle-jobs",
                                                daemon=True)
                self._worker.start()
        return job

    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """Jobs that run before this one, the running one included (0: it runs now)."""
        with self._lock:
            if job not in self._pending:
                return 0
            return list(self._pending).index(job) + (self._running is not None)

    def cancel(self, job: Job) -> None:
        with self._lock:
            job.cancel.set()
            if job in self._pending:
                self._pending.remove(job)
                self._finish(job, "cancelled")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for job in list(self._pending):
                self.cancel(job)
            self._lock.notify_all()

    def _finish(self, job: Job, status: str) -> None:
        job.status = status
        self._finished.append(job.id)
        while len(self._finished) > KEEP_FINISHED:
            self._jobs.pop(self._finished.popleft(), None)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                job = self._pending.popleft()
                job.status = "running"
                self._running = job
            job.emit("started")
            status = "done"
            try:
                job.result = job.run(job)
                if job.stop.is_set():
                    status = "stopped"
                job.emit(status)
            except JobCancelled:
                status = "cancelled"
                job.emit("cancelled")
            except JaxstyleError as exc:  # bad input, NaN loss: the library's own message
                status = "error"
                job.emit("error", message=str(exc))
            except Exception as exc:  # anything else: one line, and the next job still runs
                status = "error"
                job.emit("error", message=f"the job failed: {type(exc).__name__}: {exc}"
                         .splitlines()[0])
            with self._lock:
                self._running = None
                self._finish(job, status)


__all__ = ["Job", "JobCancelled", "JobQueue"]
