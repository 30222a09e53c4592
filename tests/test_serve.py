"""The studio's server without a browser (Starlette's TestClient): pages, uploads and their
limits, hostile requests, the three engines as jobs, the queue, stop, resume and errors.
Tiny random VGG weights, a 0.125-width model and decoder, 32-64 px images."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import random_image
from studio_common import png, tiny_models, tiny_studio

pytest.importorskip("starlette")
pytest.importorskip("httpx2")
from starlette.testclient import TestClient  # noqa: E402

from jaxstyle.feedforward.apply import apply_model, make_stylizer  # noqa: E402
from jaxstyle.feedforward.modelfile import load_model  # noqa: E402
from jaxstyle.serve import Job, JobQueue, Studio, create_app  # noqa: E402
from jaxstyle.serve.settings import ImageRef, parse_job  # noqa: E402


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def studio(tiny_params, models_dir, tmp_path_factory, rng):
    made = tiny_studio(tiny_params, models_dir, tmp_path_factory.mktemp("paintings"), rng)
    yield made
    made.uploads.close()


@pytest.fixture(scope="module")
def client(studio):
    with TestClient(create_app(studio, allowed_hosts=None)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def photo_id(client, rng):
    response = client.post("/api/uploads", content=png(random_image(rng, 48, 64)[0]),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def events_of(client, job_id: str) -> list[dict]:
    """Every event of a job, read from its stream until it ends."""
    found = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[6:]))
    return found


def submit(client, **payload) -> dict:
    response = client.post("/api/jobs", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


# --- pages and hostile requests ------------------------------------------------------------------

def test_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "jaxstyle studio" in page.text
    assert 'src="/app.js"' in page.text and "http" not in page.text.split("<body>")[0]
    assert client.get("/app.js").headers["content-type"].startswith("text/javascript")
    assert "EventSource" in client.get("/app.js").text


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/static/../../pyproject.toml",
                                  "/%2e%2e/%2e%2e/etc/passwd", "/app.js/../../jaxstyle/cli.py",
                                  "/api/jobs/..%2f..%2fetc%2fpasswd/result.png"])
def test_path_traversal_finds_nothing(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "root:" not in response.text and "[project]" not in response.text


def test_info_lists_paintings_and_models(client):
    info = client.get("/api/info").json()
    assert info["paintings"] == ["starry night", "swirls"]
    assert info["models"] == {"tiny": ["waves", "dots"]}  # the decoder is not a model


def test_uploads_are_checked(client, rng):
    good = client.post("/api/uploads", content=png(random_image(rng, 33, 47)[0]),
                       headers={"Content-Type": "image/png"}).json()
    assert len(good["id"]) == 32 and (good["width"], good["height"]) == (47, 33)
    cases = {
        "not an image": (b"hello, this is text" * 10, "not an image"),
        "truncated": (png(random_image(rng, 40, 40)[0])[:120], "not an image|truncated|corrupt"),
        "empty": (b"", "empty"),
    }
    for what, (body, message) in cases.items():
        response = client.post("/api/uploads", content=body, headers={"Content-Type": "image/png"})
        assert response.status_code == 400, what
        assert response.json()["error"] and "\n" not in response.json()["error"]
        assert re.search(message, response.json()["error"]), (what, response.json())


def test_oversized_and_bomb_uploads_are_refused_unread(client, studio):
    too_big = client.post("/api/uploads", content=b"\0" * (studio.uploads.max_bytes + 1),
                          headers={"Content-Type": "image/png"})
    assert too_big.status_code == 413 and "limit" in too_big.json()["error"]
    # A 30000 x 30000 black PNG compresses to ~1 MB... so write one by hand: its header says
    # 900 MP, its data is a few bytes. The pixel limit is read from the header, unopened.
    header = struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data)))
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    response = client.post("/api/uploads", content=bomb, headers={"Content-Type": "image/png"})
    assert response.status_code == 400 and "pixel limit" in response.json()["error"]
    assert client.get("/api/info").status_code == 200  # still serving


def test_state_changing_routes_need_a_body_type_only_this_page_sends(client, photo_id):
    form = client.post("/api/uploads", content=b"x", headers={"Content-Type": "text/plain"})
    assert form.status_code == 400
    job = client.post("/api/jobs", content=json.dumps({"engine": "model"}),
                      headers={"Content-Type": "text/plain"})
    assert job.status_code == 400 and "JSON" in job.json()["error"]


def test_loopback_server_refuses_other_host_names(tiny_params):
    own = Studio(vgg_params=tiny_params)  # an app's exit removes its studio's uploads
    with TestClient(create_app(own), base_url="http://evil.example") as other:
        assert other.get("/").status_code == 400
    with TestClient(create_app(own), base_url="http://127.0.0.1:8000") as local:
        assert local.get("/").status_code == 200
    assert not own.uploads.folder.exists()  # removed when the server stopped


@pytest.mark.parametrize("payload, message", [
    ({"engine": "paint"}, "engine"),
    ({"engine": "model", "photo": {"path": "/etc/passwd"}, "model": "tiny"}, "photo"),
    ({"engine": "model", "photo": {"upload": "../../etc/passwd"}, "model": "tiny"}, "unknown"),
    ({"engine": "model", "photo": {"demo": True}, "model": "/tmp/x.jxs"}, "model"),
    ({"engine": "model", "photo": {"demo": True}, "model": "tiny", "blend": [1]}, "blend"),
    ({"engine": "any", "photo": {"demo": True}, "styles": [{"painting": 7}]}, "unknown"),
    ({"engine": "optimize", "photo": {"demo": True}, "styles": [{"painting": 0}],
      "steps": 1e9}, "steps"),
    ({"engine": "optimize", "photo": {"demo": True}, "styles": [{"painting": 0}],
      "style_weight": "NaN"}, "style_weight"),
    ([1, 2, 3], "object"),
])
def test_bad_jobs_are_one_line_errors(client, payload, message):
    response = client.post("/api/jobs", json=payload)
    assert response.status_code == 400
    assert message in response.json()["error"] and "\n" not in response.json()["error"]


def test_malformed_json_is_an_error_not_a_crash(client):
    response = client.post("/api/jobs", content=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]


# --- engines as jobs -----------------------------------------------------------------------------

def test_model_job_equals_apply_model(client, studio, photo_id, models_dir):
    job = submit(client, engine="model", photo={"upload": photo_id}, model="tiny",
                 blend=[0.3, 0.7], strength=0.8, max_dim=64)
    assert job["command"].startswith("jaxstyle apply tiny upload-")
    assert "--style-blend 0.3 0.7" in job["command"] and "--strength 0.8" in job["command"]
    events = events_of(client, job["id"])
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "done" and "timing" in kinds, events
    result = np.asarray(Image.open(io.BytesIO(client.get(
        f"/api/jobs/{job['id']}/result.png").content)), np.float32) / 255
    params, header = load_model(models_dir / "tiny.jxs")
    photo = np.asarray(Image.open(studio.uploads.path(photo_id)), np.float32) / 255
    want = apply_model(params, header, photo, blend=[0.3, 0.7], strength=0.8,
                       stylizer=make_stylizer(params, header))
    assert np.abs(result - want).max() <= 1 / 255 + 1e-6


def test_any_job_runs_with_an_uploaded_painting(client, photo_id, rng):
    painting = client.post("/api/uploads", content=png(random_image(rng, 40, 40)[0]),
                           headers={"Content-Type": "image/png"}).json()["id"]
    job = submit(client, engine="any", photo={"upload": photo_id},
                 styles=[{"upload": painting}, {"painting": 1}], blend=[0.5, 0.5], alpha=0.6,
                 max_dim=64, style_size=48)
    assert "--style-blend 0.5 0.5" in job["command"]
    assert events_of(client, job["id"])[-1]["type"] == "done"
    image = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/result.png").content))
    assert image.size == (64, 48)


def test_a_large_any_job_shows_a_small_preview_first(client, studio, rng, monkeypatch):
    photo = client.post("/api/uploads", content=png(random_image(rng, 80, 96)[0]),
                        headers={"Content-Type": "image/png"}).json()["id"]
    job = dict(engine="any", photo={"upload": photo}, styles=[{"painting": 1}], max_dim=96,
               style_size=48)
    monkeypatch.setattr(studio, "quick_side", 0)
    plain = submit(client, **job)
    assert "preview" not in [event["type"] for event in events_of(client, plain["id"])]
    monkeypatch.setattr(studio, "quick_side", 40)  # the 96x80 photo is over twice 40
    quick = submit(client, **job)
    events = events_of(client, quick["id"])
    kinds = [event["type"] for event in events]
    assert kinds.index("preview") < kinds.index("timing") < kinds.index("done")
    preview = events[kinds.index("preview")]
    assert preview["side"] == 40 and preview["network_ms"] >= 0
    assert preview_of(preview).shape == (33, 40, 3)
    # The preview is only shown first: the result is the full-size picture, as without it.
    assert np.array_equal(result_of(client, quick["id"]), result_of(client, plain["id"]))
    for side in (48, 36):  # not over twice 48; 36 would leave a side under VGG's 32 px
        monkeypatch.setattr(studio, "quick_side", side)
        kinds = [e["type"] for e in events_of(client, submit(client, **job)["id"])]
        assert "preview" not in kinds and kinds[-1] == "done"


def test_whitening_is_a_wct_choice_refused_when_hostile_or_for_adain(client, tiny_params,
                                                                      tmp_path):
    from test_wct import WIDTH, _wct_params

    from jaxstyle.arbitrary.apply import apply_any
    from jaxstyle.arbitrary.decoderfile import load_decoder, save_wct_level
    from jaxstyle.demo import demo_content
    from jaxstyle.serve import UploadStore

    job = dict(engine="any", photo={"demo": True}, styles=[{"painting": 0}], max_dim=48,
               style_size=64)
    for hostile in ("svd", None, 7, ["eigh"], "newton-schulz; rm -rf /"):
        response = client.post("/api/jobs", json={**job, "whitening": hostile})
        assert response.status_code == 400, hostile
        assert "whitening must be one of" in response.json()["error"]
    # This studio's model is AdaIN: refused when asked, before anything is queued.
    refused = client.post("/api/jobs", json={**job, "whitening": "newton-schulz"})
    assert refused.status_code == 400 and "AdaIN" in refused.json()["error"]
    path = tmp_path / "wct.jxs"
    save_wct_level(path, 3, _wct_params((3,))["relu3_1"], {"width": WIDTH})  # one level: fast
    wct = Studio(vgg_params=tiny_params, decoder=str(path), models_dir=tmp_path,
                 uploads=UploadStore(max_bytes=300_000, max_pixels=2_000_000))
    with TestClient(create_app(wct, allowed_hosts=None)) as wct_client:
        results = {}
        for whitening in ("eigh", "newton-schulz"):
            submitted = submit(wct_client, **job, whitening=whitening)
            assert ("--whitening newton-schulz" in submitted["command"]) == (
                whitening == "newton-schulz")
            assert events_of(wct_client, submitted["id"])[-1]["type"] == "done"
            results[whitening] = result_of(wct_client, submitted["id"])
    params, header = load_decoder(path)
    painting = wct.image(ImageRef("painting", 0), 64)
    want = {w: apply_any(None, params, header, demo_content(48), [painting], whitening=w,
                         stylizer=wct.decoder(None, w)[2])  # the studio's compiled programs
            for w in results}
    for whitening, other in (("eigh", "newton-schulz"), ("newton-schulz", "eigh")):
        own = np.abs(results[whitening] - want[whitening])
        assert own.max() <= 1 / 255 + 1e-6  # the job ran the whitening it was asked for...
        assert (own > 0.5 / 255).sum() < (np.abs(results[whitening] - want[other])
                                          > 0.5 / 255).sum()  # ...not the other one


def test_optimisation_streams_previews_stops_and_resumes(client, photo_id):
    common = dict(engine="optimize", photo={"upload": photo_id}, styles=[{"painting": 1}],
                  max_dim=48, optimizer="adam", preview_every=1)
    job = submit(client, steps=4, **common)
    events = events_of(client, job["id"])
    progress = [e for e in events if e["type"] == "progress"]
    assert len(progress) == 4 and all(e["preview"].startswith("data:image/png") for e in progress)
    # It paints: the loss falls step by step. (With the tiny test weights each step moves the
    # pixels by ~1e-5, less than an 8-bit preview shows.)
    losses = [e["loss"] for e in progress]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    assert [e["step"] for e in events if e["type"] == "progress"] == [1, 2, 3, 4]
    assert events[-1]["type"] == "done"
    # Only the step count grew: the run continues from step 4 instead of starting again.
    again = submit(client, steps=6, **common)
    events = events_of(client, again["id"])
    # The first event after "started" (a "queued" one may come before it when the worker is
    # still closing the last job: a race the test used to lose now and then in CI).
    kinds = [e["type"] for e in events if e["type"] != "queued"]
    assert kinds[:2] == ["started", "resumed"], kinds
    assert next(e for e in events if e["type"] == "resumed")["step"] == 4
    assert [e["step"] for e in events if e["type"] == "progress"] == [5, 6]


def result_of(client, job_id: str) -> np.ndarray:
    data = client.get(f"/api/jobs/{job_id}/result.png").content
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255


def preview_of(event: dict) -> np.ndarray:
    data = base64.b64decode(event["preview"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255


@pytest.mark.parametrize("engine", ["any", "model"])
def test_refine_starts_from_exactly_the_one_pass_picture(client, photo_id, engine):
    if engine == "any":
        one_pass = submit(client, engine="any", photo={"upload": photo_id},
                          styles=[{"painting": 1}], max_dim=64, style_size=48)
    else:
        one_pass = submit(client, engine="model", photo={"upload": photo_id}, model="tiny",
                          blend=[1, 0], max_dim=64)
    assert events_of(client, one_pass["id"])[-1]["type"] == "done"
    start = result_of(client, one_pass["id"])
    refine = dict(engine="optimize", start=one_pass["id"], max_dim=64, optimizer="adam",
                  preview_every=2, photo={"demo": True}, styles=[{"painting": 0}])
    job = submit(client, steps=2, **refine)
    # The command line that does the same, and the page's own photo and paintings unused:
    # the refine paints the one-pass job's photo towards that job's paintings.
    assert f"--init {'any' if engine == 'any' else 'tiny'}" in job["command"]
    assert "upload-" in job["command"]
    assert ("painting-1" if engine == "any" else "painting-0") in job["command"]
    events = events_of(client, job["id"])
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[0]["step"] == 0 and progress[0]["loss"] is None  # the start, at once
    assert [e["step"] for e in progress[1:]] == [2] and events[-1]["type"] == "done"
    # The first preview is the one-pass picture itself, pixel for pixel.
    assert np.array_equal(preview_of(progress[0]), start)
    refined = result_of(client, job["id"])
    # Adam moves a pixel by at most about lr per step whatever the gradient: two steps of
    # lr 0.02 stay within 0.05 of the start (plus one 8-bit level for the PNG).
    assert refined.shape == start.shape and np.abs(refined - start).max() <= 0.05 + 1 / 255
    # The photo start differs: the refine did start from the one-pass picture.
    plain = submit(client, steps=2, **{**refine, "start": None, "photo": {"upload": photo_id},
                                        "styles": [{"painting": 1 if engine == "any" else 0}]})
    assert events_of(client, plain["id"])[-1]["type"] == "done"
    assert np.abs(result_of(client, plain["id"]) - start).mean() > 0.005


def test_refine_errors_are_one_line(client, photo_id):
    common = dict(engine="optimize", max_dim=64, photo={"demo": True}, styles=[{"painting": 0}])
    for start, message in (("0" * 24, "no finished one-pass picture"), ("../x", "start must")):
        response = client.post("/api/jobs", json={**common, "start": start})
        assert response.status_code == 400 and message in response.json()["error"]
    dots = submit(client, engine="model", photo={"upload": photo_id}, model="tiny",
                  blend=[0, 1], max_dim=48)
    assert events_of(client, dots["id"])[-1]["type"] == "done"
    response = client.post("/api/jobs", json={**common, "start": dots["id"]})
    assert response.status_code == 400 and "'dots' is not among" in response.json()["error"]
    optimised = submit(client, **common, steps=1)
    assert events_of(client, optimised["id"])[-1]["type"] == "done", \
        events_of(client, optimised["id"])[-1]
    response = client.post("/api/jobs", json={**common, "start": optimised["id"]})
    assert response.status_code == 400  # only a one-pass picture can be refined


def test_a_refine_finds_a_models_style_by_name_when_its_file_differs(studio, tmp_path):
    from jaxstyle.feedforward import init_params, save_model
    from jaxstyle.serve.settings import ImageRef, ModelSettings

    # Trained on another copy of "swirls" (another sha256): the studio's swirls.png stands in,
    # as the packaged starry_night.jpg does for the `paintings` model's Starry Night.
    save_model(tmp_path / "named.jxs", init_params(0, 2, 0.125, size=32), {"width": 0.125,
               "styles": [{"name": "Swirls", "sha256": "2" * 64, "size": [32, 32]},
                          {"name": "nowhere", "sha256": "3" * 64, "size": [32, 32]}]})
    named = Studio(paintings=studio.paintings[1:], models_dir=tmp_path)
    origin = named._model_refine_start(ModelSettings(ImageRef("demo"), "named", (1.0, 0.0)))
    assert origin.styles == (ImageRef("painting", 1),) and origin.blend is None
    with pytest.raises(Exception, match="'nowhere' is not among"):
        named._model_refine_start(ModelSettings(ImageRef("demo"), "named", (1.0, 1.0)))


def test_stop_keeps_the_image_and_cancel_drops_a_queued_job(client, studio, photo_id):
    queue = client.app.state.queue
    common = dict(engine="optimize", photo={"upload": photo_id}, styles=[{"painting": 1}],
                  max_dim=48, optimizer="adam", preview_every=1, steps=2000)
    first = submit(client, **common)
    second = submit(client, **{**common, "steps": 1999})
    assert second["position"] >= 1, queue.get(first["id"]).events  # waits behind the first
    assert client.post(f"/api/jobs/{second['id']}/cancel", json={}).json()["status"] \
        == "cancelled"
    with client.stream("GET", f"/api/jobs/{first['id']}/events") as stream:
        for line in stream.iter_lines():
            if '"progress"' in line:
                client.post(f"/api/jobs/{first['id']}/stop", json={})
            if '"stopped"' in line or '"done"' in line:
                break
    assert queue.get(first["id"]).status == "stopped", queue.get(first["id"]).events[-1]
    result = client.get(f"/api/jobs/{first['id']}/result.png")
    assert result.status_code == 200 and result.content.startswith(b"\x89PNG")
    assert client.get(f"/api/jobs/{second['id']}/result.png").status_code == 404


def test_a_gone_upload_is_an_error_event_and_the_next_job_runs(client, photo_id):
    job = submit(client, engine="model", photo={"upload": "0" * 32}, model="tiny", blend=[1, 0])
    last = events_of(client, job["id"])[-1]
    assert last["type"] == "error" and "upload the image again" in last["message"]
    job = submit(client, engine="model", photo={"upload": photo_id}, model="tiny", blend=[1, 0])
    assert events_of(client, job["id"])[-1]["type"] == "done"


def test_queue_survives_a_crashing_job_and_keeps_order():
    queue = JobQueue()
    order = []

    def crash(job):
        raise RuntimeError("boom\nwith a second line")

    def work(job):
        order.append(job.settings)
        return b"png"

    jobs = [queue.submit(Job(None, crash)), queue.submit(Job("a", work)),
            queue.submit(Job("b", work))]
    for job in jobs:
        for _ in range(200):
            if job.finished:
                break
            time.sleep(0.01)
    assert jobs[0].status == "error" and jobs[0].events[-1]["message"] == \
        "the job failed: RuntimeError: boom"
    assert [j.status for j in jobs[1:]] == ["done", "done"] and order == ["a", "b"]
    queue.close()


def test_parse_job_commands_name_the_cli_flags():
    settings = parse_job({"engine": "optimize", "photo": {"demo": True},
                          "styles": [{"painting": 0}], "steps": 50, "preserve_color": "luminance",
                          "scales": 2}, 1, {})
    assert settings.command() == ("jaxstyle stylize chelsea.jpg painting-0 -o out.png --steps 50 "
                                  "--max-dim 256 --style-weight 0.01 --content-weight 10000 "
                                  "--optimizer lbfgs --preserve-color luminance --scales 2")


def test_serve_command_reports_a_busy_port_in_one_line(capsys):
    import socket

    from jaxstyle.cli import main
    from jaxstyle.cli.serve import is_loopback

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = main(["serve", "--port", str(taken.getsockname()[1]), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot listen on 127.0.0.1:")
    assert err.count("\n") == 1
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_download_onnx_is_the_jobs_model_with_its_settings(client, photo_id):
    pytest.importorskip("jax2onnx")
    ort = pytest.importorskip("onnxruntime")
    from jaxstyle.demo import demo_content

    job = submit(client, engine="model", photo={"demo": True}, model="tiny", blend=[1, 3],
                 strength=0.7, max_dim=48)
    assert events_of(client, job["id"])[-1]["type"] == "done"
    response = client.get(f"/api/jobs/{job['id']}/model.onnx")
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].endswith('.onnx"')
    session = ort.InferenceSession(response.content, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["photos"]  # the blend is inside
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["style_weights"]) == [0.25, 0.75] and metadata["strength"] == "0.7"
    # The file paints the photo as the job did (its PNG is 8-bit).
    out = session.run(None, {"photos": demo_content(48)[None]})[0][0]
    assert np.abs(out - result_of(client, job["id"])).max() <= 2 / 255
    optimised = submit(client, engine="optimize", photo={"upload": photo_id},
                       styles=[{"painting": 0}], steps=1, max_dim=64)
    assert events_of(client, optimised["id"])[-1]["type"] == "done"
    refused = client.get(f"/api/jobs/{optimised['id']}/model.onnx")
    assert refused.status_code == 400 and "only a trained model" in refused.json()["error"]
    assert client.get(f"/api/jobs/{'0' * 24}/model.onnx").status_code == 404
