"""The studio's latencies, through a live server on 127.0.0.1 as the page sees them.

    python scripts/bench_studio.py [--size 512] [--repeats 7]

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
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402

from jaxstyle.cli.serve import bind  # noqa: E402
from jaxstyle.images import load_image  # noqa: E402
from jaxstyle.serve import Studio, create_app  # noqa: E402
from jaxstyle.serve.engines import png_bytes  # noqa: E402

PHOTO = ROOT.parent / "shared" / "images" / "coffee.jpg"


def post(base: str, path: str, body: bytes, kind: str) -> dict:
    request = urllib.request.Request(base + path, data=body, method="POST",
                                     headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{path}: {error.code} {error.read().decode()}") from None


def events(base: str, job_id: str):
    with urllib.request.urlopen(f"{base}/api/jobs/{job_id}/events") as stream:
        for line in stream:
            if line.startswith(b"data: "):
                yield json.loads(line[6:])


def model_round_trip(base: str, photo: str, blend: list[float], size: int) -> float:
    started = time.perf_counter()
    job = post(base, "/api/jobs", json.dumps({
        "engine": "model", "photo": {"upload": photo}, "model": "paintings", "blend": blend,
        "max_dim": size}).encode(), "application/json")
    for event in events(base, job["id"]):
        if event["type"] in ("done", "error"):
            assert event["type"] == "done", event
            break
    with urllib.request.urlopen(f"{base}/api/jobs/{job['id']}/result.png") as response:
        response.read()
    return time.perf_counter() - started


def first_preview(base: str, photo: str, steps: int) -> float:
    started = time.perf_counter()
    job = post(base, "/api/jobs", json.dumps({
        "engine": "optimize", "photo": {"upload": photo}, "styles": [{"painting": 0}],
        "steps": steps, "preview_every": 1}).encode(), "application/json")
    waited = None
    for event in events(base, job["id"]):
        if event["type"] == "progress" and waited is None:
            waited = time.perf_counter() - started
            post(base, f"/api/jobs/{job['id']}/cancel", b"{}", "application/json")
        if event["type"] in ("done", "cancelled", "error", "stopped"):
            break
    return waited


def model_job(base: str, photo: str, model: str, size: int) -> str:
    body = {"engine": "model", "photo": {"upload": photo}, "model": model, "max_dim": size,
            "blend": [1, 0, 0]}  # The Starry Night, a painting every studio has
    if model == "any":  # the studio's any-painting engine (its default model, `any`)
        body = {"engine": "any", "photo": {"upload": photo}, "styles": [{"painting": 0}],
                "max_dim": size}
    job = post(base, "/api/jobs", json.dumps(body).encode(), "application/json")
    for event in events(base, job["id"]):
        if event["type"] in ("done", "error"):
            assert event["type"] == "done", event
            return job["id"]


def refine_previews(base: str, start: str, size: int, steps: int) -> tuple[float, float]:
    """Seconds from the Refine POST to the first and the second streamed preview."""
    started = time.perf_counter()
    job = post(base, "/api/jobs", json.dumps({
        "engine": "optimize", "start": start, "styles": [{"painting": 0}], "max_dim": size,
        "scales": 1, "steps": steps, "optimizer": "adam", "preview_every": 1}).encode(),
        "application/json")
    seen = []
    for event in events(base, job["id"]):
        if event["type"] == "progress":
            seen.append(time.perf_counter() - started)
            if len(seen) == 2:
                post(base, f"/api/jobs/{job['id']}/cancel", b"{}", "application/json")
        if event["type"] in ("done", "cancelled", "error", "stopped"):
            break
    return seen[0], seen[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    studio = Studio()
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(studio), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    photo = post(base, "/api/uploads", png_bytes(load_image(PHOTO, args.size)),
                 "image/png")["id"]
    cold = model_round_trip(base, photo, [1, 0, 0], args.size)
    blends = [[1 - i / args.repeats, i / args.repeats, 0.2] for i in range(args.repeats)]
    warm = [model_round_trip(base, photo, blend, args.size) for blend in blends]
    print(f"engine 2 slider to image at {args.size} px (POST to last PNG byte): median "
          f"{1e3 * statistics.median(warm):.0f} ms, range {1e3 * min(warm):.0f}-"
          f"{1e3 * max(warm):.0f} ms over {len(warm)} blends; first request (compile) "
          f"{1e3 * cold:.0f} ms")
    # Refine first, so its cold figures pay for the optimiser's whole compile.
    for model in ("paintings", "any"):
        start = model_job(base, photo, model, args.size)
        runs = [refine_previews(base, start, args.size, 50 + i) for i in range(4)]
        warm_first = statistics.median(first for first, _ in runs[1:])
        warm_second = statistics.median(second for _, second in runs[1:])
        print(f"refine {model} at {args.size} px (Adam): first preview (the one-pass picture) "
              f"cold {runs[0][0]:.2f} s, warm median {warm_first:.2f} s; first optimised "
              f"preview cold {runs[0][1]:.2f} s (compile included), warm median "
              f"{warm_second:.2f} s")
    cold_preview = first_preview(base, photo, 200)
    warm_previews = [first_preview(base, photo, 200 + i) for i in range(1, 4)]
    print(f"engine 1 first preview (page defaults: 256 px, L-BFGS): cold {cold_preview:.2f} s "
          f"(compile included), warm median {statistics.median(warm_previews):.2f} s")
    server.should_exit = True


if __name__ == "__main__":
    main()
