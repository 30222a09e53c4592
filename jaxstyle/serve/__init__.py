"""jaxstyle studio: a local web page over all three engines (`jaxstyle serve`).

`serve/` sits beside `cli/` on the top floor: it parses requests, calls the library in this
process and streams results; nothing in the library imports it. It needs the `serve` extra
(Starlette and uvicorn): `pip install -e ".[serve]"`.
"""

from jaxstyle.serve.engines import Studio
from jaxstyle.serve.jobs import Job, JobQueue
from jaxstyle.serve.uploads import UploadStore

__all__ = ["Job", "JobQueue", "Studio", "UploadStore", "create_app"]


def __getattr__(name):
    if name == "create_app":  # Starlette is imported only when the app is made
        from jaxstyle.serve.app import create_app
        return create_app
    raise AttributeError(name)
