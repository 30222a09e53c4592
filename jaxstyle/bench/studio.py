"""`jaxstyle bench studio`: the studio's latencies, through a live server on 127.0.0.1 as the
page sees them.

    jaxstyle bench studio [--size 512] [--repeats 7]

- **Slider to image, engine 2:** the built-in `paintings` model on a photo at --size px; each
  request is a new blend of its three styles (what moving a slider sends), timed from the
  POST to the last byte of the result PNG, after one warm-up request (the compile). Median
  and range.
- **First preview, engine 1:** an optimisation job (the page's defaults, L-BFGS, previews
  every step) from the POST to the first progress event, first a cold run (compile
  included), then warm runs with another step count (the compiled step is reused).
- **Refine, engines 2 and 3 then 1:** the page's Refine button on a finished one-pass job
  (`paintings`, and `any` through the any-painting engine): from the POST to the first
  streamed preview (the one-pass picture, step 0) and to the second (the first optimised
  step: compile included when cold).

Uses only the standard library as the client (urllib and the event stream read by lines).
Needs the serve extra (pip install -e ".[serve]").
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from jaxstyle.errors import ConfigError, JaxstyleError

EXAMPLES = ["jaxstyle bench studio",
            "jaxstyle bench studio --size 256 --repeats 3"]

PHOTO = "coffee.jpg"
REFINE_RUNS = 4  # one cold, then warm ones with another step count
ENGINE1_WARM_RUNS = 3
FINISHED = ("done", "cancelled", "error", "stopped")


class StudioBenchError(JaxstyleError):
    """A request to the live server failed, or a job did not stream what it should."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=512,
                   help="longer side of the photo, px (engine 2 and the refines)")
    p.add_argument("--repeats", type=int, default=7,
                   help="warm slider requests (blends) after the first")


def post(base: str, path: str, body: bytes, kind: str) -> dict:
    request = urllib.request.Request(base + path, data=body, method="POST",
                                     headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise StudioBenchError(f"{path}: {error.code} {error.read().decode()}") from None


def post_job(base: str, body: dict) -> dict:
    return post(base, "/api/jobs", json.dumps(body).encode(), "application/json")


def events(base: str, job_id: str) -> Iterator[dict]:
    with urllib.request.urlopen(f"{base}/api/jobs/{job_id}/events") as stream:
        for line in stream:
            if line.startswith(b"data: "):
                yield json.loads(line[6:])


def wait_done(base: str, job_id: str) -> None:
    for event in events(base, job_id):
        if event["type"] in ("done", "error"):
            if event["type"] != "done":
                raise StudioBenchError(f"job {job_id} failed: {event}")
            return


def model_round_trip(base: str, photo: str, blend: list[float], size: int) -> None:
    """One slider move: the POST of a blend, its job's end, the result PNG's last byte."""
    job = post_job(base, {"engine": "model", "photo": {"upload": photo}, "model": "paintings",
                          "blend": blend, "max_dim": size})
    wait_done(base, job["id"])
    with urllib.request.urlopen(f"{base}/api/jobs/{job['id']}/result.png") as response:
        response.read()


def first_preview(base: str, photo: str, steps: int) -> float:
    """Seconds from the POST of an optimisation job (page defaults) to its first preview."""
    started = time.perf_counter()
    job = post_job(base, {"engine": "optimize", "photo": {"upload": photo},
                          "styles": [{"painting": 0}], "steps": steps, "preview_every": 1})
    waited = None
    for event in events(base, job["id"]):
        if event["type"] == "progress" and waited is None:
            waited = time.perf_counter() - started
            post(base, f"/api/jobs/{job['id']}/cancel", b"{}", "application/json")
        if event["type"] in FINISHED:
            break
    if waited is None:
        raise StudioBenchError(f"optimisation job {job['id']} ended before any preview")
    return waited


def model_job(base: str, photo: str, model: str, size: int) -> str:
    body = {"engine": "model", "photo": {"upload": photo}, "model": model, "max_dim": size,
            "blend": [1, 0, 0]}  # The Starry Night, a painting every studio has
    if model == "any":  # the studio's any-painting engine (its default model, `any`)
        body = {"engine": "any", "photo": {"upload": photo}, "styles": [{"painting": 0}],
                "max_dim": size}
    job = post_job(base, body)
    wait_done(base, job["id"])
    return job["id"]


def refine_previews(base: str, start: str, size: int, steps: int) -> tuple[float, float]:
    """Seconds from the Refine POST to the first and the second streamed preview."""
    started = time.perf_counter()
    job = post_job(base, {"engine": "optimize", "start": start, "styles": [{"painting": 0}],
                          "max_dim": size, "scales": 1, "steps": steps, "optimizer": "adam",
                          "preview_every": 1})
    seen = []
    for event in events(base, job["id"]):
        if event["type"] == "progress":
            seen.append(time.perf_counter() - started)
            if len(seen) == 2:
                post(base, f"/api/jobs/{job['id']}/cancel", b"{}", "application/json")
        if event["type"] in FINISHED:
            break
    if len(seen) < 2:
        raise StudioBenchError(f"refine job {job['id']} ended after {len(seen)} preview(s)")
    return seen[0], seen[1]


def start_server():
    """A live studio on 127.0.0.1 (any free port): (its base URL, the uvicorn server)."""
    try:
        import uvicorn

        from jaxstyle.serve import Studio, create_app
    except ImportError as error:
        raise ConfigError(f"the studio bench needs the serve extra ({error.name} is missing): "
                          "pip install -e \".[serve]\"") from None
    from jaxstyle.cli.serve import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(Studio()), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise StudioBenchError("the studio server did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


def run(args: argparse.Namespace) -> int:
    from jaxstyle.bench.fixtures import image_path
    from jaxstyle.bench.timing import Timing, machine_line, markdown_table, time_calls
    from jaxstyle.images import load_image

    if args.size < 1 or args.repeats < 1:
        raise ConfigError("--size and --repeats must be >= 1")
    photo_path = image_path(PHOTO)
    print(machine_line())
    base, server, thread = start_server()
    try:
        from jaxstyle.serve.engines import png_bytes

        photo = post(base, "/api/uploads", png_bytes(load_image(photo_path, args.size)),
                     "image/png")["id"]
        log = lambda message: print(message, file=sys.stderr, flush=True)
        log("engine 2 slider: the first request (compiles), then a new blend each")
        cold = time_calls(lambda: model_round_trip(base, photo, [1, 0, 0], args.size),
                          repeats=1, warmup=0)
        blends = iter([[1 - i / args.repeats, i / args.repeats, 0.2]
                       for i in range(args.repeats)])
        warm = time_calls(lambda: model_round_trip(base, photo, next(blends), args.size),
                          repeats=args.repeats, warmup=0)
        # Refine first, so its cold figures pay for the optimiser's whole compile.
        refines = {}
        for model in ("paintings", "any"):
            log(f"refine {model}: {REFINE_RUNS} runs, the first cold")
            start = model_job(base, photo, model, args.size)
            refines[model] = [refine_previews(base, start, args.size, 50 + i)
                              for i in range(REFINE_RUNS)]
        log(f"engine 1 first preview: a cold run, then {ENGINE1_WARM_RUNS} warm")
        cold_preview = first_preview(base, photo, 200)
        warm_previews = Timing(tuple(first_preview(base, photo, 200 + i)
                                     for i in range(1, ENGINE1_WARM_RUNS + 1)))
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    print(f"\nThe studio at {args.size} px ({PHOTO}), through a live server on 127.0.0.1:\n")
    print(markdown_table(["what", "time"], [
        [f"engine 2, a slider moved: POST of the new blend to the last byte of the {args.size} "
         "px result PNG (shipped `paintings`), warm",
         f"median {warm.median * 1e3:.0f} ms ({warm.min * 1e3:.0f}-{warm.max * 1e3:.0f} ms "
         f"over {len(warm.samples)} blends)"],
        ["the same, the first request (compiles the network for that shape)",
         f"{cold.median * 1e3:,.0f} ms"],
        ["engine 1, POST to the first streamed preview (the page's defaults: 256 px, L-BFGS), "
         "warm", f"median {warm_previews.median:.2f} s ({warm_previews.min:.2f}-"
                 f"{warm_previews.max:.2f} s over {len(warm_previews.samples)} runs)"],
        ["the same, cold (compiles the step)", f"{cold_preview:.2f} s"],
    ]))
    print(f"\nRefine at {args.size} px (Adam, previews every step; cold: the first refine, "
          f"warm: the median of the {REFINE_RUNS - 1} after it, each with another step "
          "count):\n")
    rows = []
    for model, runs in refines.items():
        first = Timing(tuple(one for one, _ in runs[1:]))
        second = Timing(tuple(two for _, two in runs[1:]))
        label = "`paintings` (engine 2)" if model == "paintings" else \
            "`any` (engine 3, after the first)"
        rows.append([label, f"{runs[0][0]:.2f} s / {first.median:.2f} s",
                     f"{runs[0][1]:.2f} s / {second.median:.2f} s"])
    print(markdown_table(["one-pass job refined", "first preview (the one-pass picture), "
                          "cold / warm", "first optimised preview, cold / warm"], rows))
    return 0
