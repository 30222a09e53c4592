"""The studio's HTTP side: one page, a small JSON API and one event stream per job (Starlette).

Thin like the CLI: requests are parsed and validated (`settings.parse_job`), become jobs in
the queue (`jobs.JobQueue`), and the engines (`engines.Studio`) do the work. Routes:

    GET  /                          the page (and /app.js, /style.css: fixed names, no folder)
    GET  /api/info                  paintings, built-in models and their styles, limits
    POST /api/uploads               an image file as the raw body -> {id, width, height}
    POST /api/jobs                  JSON settings -> {id, position, command}; an optimisation
                                    with "start": ID refines that one-pass job's picture
    GET  /api/jobs/{id}/events      server-sent events: queued, started, progress, done, error
    POST /api/jobs/{id}/stop        finish now, keeping the image (optimisation)
    POST /api/jobs/{id}/cancel      drop the job
    GET  /api/jobs/{id}/result.png  the result
    GET  /api/jobs/{id}/model.onnx  a one-pass job's model and settings as ONNX (jaxstyle export)

Cross-site requests: a page elsewhere can make a browser send "simple" requests to
localhost. Every state-changing route needs a JSON or image body type, which only a page of
this origin can send (other types would need a CORS pre-flight this server never grants),
and the Host header must name this machine when it is bound to loopback (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from jaxstyle.errors import JaxstyleError
from jaxstyle.serve.engines import Studio
from jaxstyle.serve.jobs import Job, JobQueue
from jaxstyle.serve.settings import JOB_ID, AnySettings, parse_job
from jaxstyle.serve.uploads import UploadError, read_limited

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]
EVENT_POLL_S = 0.05
UPLOAD_TYPES = ("image/", "application/octet-stream")


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("jaxstyle.serve") / "static"
    return {route: ((folder / name).read_bytes(), kind) for route, (name, kind) in STATIC.items()}


def create_app(studio: Studio, queue: JobQueue | None = None,
               allowed_hosts: list[str] | None = LOOPBACK_HOSTS) -> Starlette:
    """The ASGI app over `studio`. allowed_hosts None accepts any Host header (a server bound
    to another interface, by the user's choice).

    Example:

    >>> import jaxstyle.serve
    >>> studio = jaxstyle.serve.Studio(params)
    >>> app = jaxstyle.serve.create_app(studio)  # an ASGI app (Starlette)
    >>> "/api/info" in [route.path for route in app.routes]
    True
    >>> import uvicorn
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
    """
    queue = queue or JobQueue()
    pages = static_files()

    async def page(request: Request) -> Response:
        body, kind = pages[request.url.path]
        return Response(body, media_type=kind, headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> JSONResponse:
        models = await asyncio.to_thread(studio.model_styles)
        return JSONResponse({"paintings": studio.painting_names(), "models": models,
                             "max_upload_mb": studio.uploads.max_bytes / 2 ** 20,
                             "max_pixels": studio.uploads.max_pixels})

    async def upload(request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").startswith(UPLOAD_TYPES):
            return error("send the image file itself as the request body")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > studio.uploads.max_bytes:
            return error(f"the upload is over the {studio.uploads.max_bytes / 2 ** 20:.0f} MB "
                         "limit", 413)
        try:
            data = await read_limited(request.stream(), studio.uploads.max_bytes)
            added = await asyncio.to_thread(studio.uploads.add, data)
        except UploadError as exc:
            return error(str(exc), exc.status)
        return JSONResponse({"id": added.id, "width": added.width, "height": added.height})

    async def submit(request: Request) -> JSONResponse:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error("send the job as JSON (Content-Type: application/json)")
        try:
            payload = json.loads(await read_limited(request.stream(), 64 * 1024))
            models = await asyncio.to_thread(studio.model_styles)
            settings = await asyncio.to_thread(
                parse_job, payload, len(studio.paintings),
                {name: len(styles) for name, styles in models.items()},
                lambda start: studio.refine_start(queue.get(start)))
            if isinstance(settings, AnySettings):
                await asyncio.to_thread(studio.check_any, settings)
        except (ValueError, JaxstyleError) as exc:  # bad JSON, or a bad value in it
            return error(str(exc).splitlines()[0] if str(exc) else "malformed job")
        job = queue.submit(Job(settings, studio.run))
        return JSONResponse({"id": job.id, "position": queue.position(job),
                             "command": settings.command()})

    def find(request: Request) -> Job | None:
        job_id = request.path_params["job_id"]
        return queue.get(job_id) if JOB_ID.fullmatch(job_id) else None

    async def events(request: Request) -> Response:
        job = find(request)
        if job is None:
            return error("no such job", 404)

        async def stream():
            sent, position = 0, None
            try:
                while True:
                    if job.status == "queued":
                        now = queue.position(job)
                        if now != position:
                            position = now
                            yield f"data: {json.dumps({'type': 'queued', 'position': now})}\n\n"
                    while sent < len(job.events):
                        yield f"data: {json.dumps(job.events[sent])}\n\n"
                        sent += 1
                    if job.finished and sent == len(job.events):
                        return
                    if await request.is_disconnected():
                        queue.cancel(job)  # the tab was closed: nobody waits for this job
                        return
                    await asyncio.sleep(EVENT_POLL_S)
            except asyncio.CancelledError:
                queue.cancel(job)
                raise

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def control(request: Request) -> JSONResponse:
        job = find(request)
        if job is None:
            return error("no such job", 404)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error("send a JSON body ({})")
        if request.path_params["action"] not in ("stop", "cancel"):
            return error("no such action", 404)
        if request.path_params["action"] == "stop":
            job.stop.set()
        else:
            queue.cancel(job)
        return JSONResponse({"status": job.status})

    async def result(request: Request) -> Response:
        job = find(request)
        if job is None or job.result is None:
            return error("no result for that job", 404)
        return Response(job.result, media_type="image/png", headers={
            "Content-Disposition": f'attachment; filename="jaxstyle-{job.id[:8]}.png"',
            "Cache-Control": "no-store"})

    exports: dict[str, bytes] = {}  # job id -> its ONNX file (a conversion takes seconds)

    async def export_onnx(request: Request) -> Response:
        job = find(request)
        if job is None or job.result is None:
            return error("no result for that job", 404)
        if job.id not in exports:
            from starlette.concurrency import run_in_threadpool

            try:  # jax2onnx traces and converts for seconds: off the event loop
                exports[job.id] = await run_in_threadpool(studio.export_onnx, job.settings)
            except JaxstyleError as exc:
                return error(str(exc))
            while len(exports) > 4:
                exports.pop(next(iter(exports)))
        return Response(exports[job.id], media_type="application/octet-stream", headers={
            "Content-Disposition": f'attachment; filename="jaxstyle-{job.id[:8]}.onnx"',
            "Cache-Control": "no-store"})

    routes = [*(Route(path, page) for path in STATIC),
              Route("/api/info", info),
              Route("/api/uploads", upload, methods=["POST"]),
              Route("/api/jobs", submit, methods=["POST"]),
              Route("/api/jobs/{job_id}/events", events),
              Route("/api/jobs/{job_id}/{action:str}", control, methods=["POST"]),
              Route("/api/jobs/{job_id}/result.png", result),
              Route("/api/jobs/{job_id}/model.onnx", export_onnx)]
    middleware = [] if allowed_hosts is None else [
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:  # the uploads folder is removed at exit, whatever ended the server
            queue.close()
            studio.uploads.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.studio, app.state.queue = studio, queue
    return app


__all__ = ["create_app"]
