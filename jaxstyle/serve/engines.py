"""The studio's work: the three engines called in-process, their compiled programs cached.

`Studio` holds what outlives a job: the VGG params, each trained model's compiled network
(`Stylizer`, compiled once per photo shape), the decoder's (`ArbitraryStylizer`), the last
optimisation's state (a run asked again with only more steps continues from it) and the
uploads. Each `run_*` takes a job and its settings, emits progress events and returns the
result as PNG bytes. The optimiser's compiled step is cached by the library itself
(`jaxstyle.gatys.pipeline`), keyed without the run length.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from jaxstyle._types import ArrayLike
from jaxstyle.demo import DEMO_CONTENT, DEMO_STYLE
from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.images import fit_size, load_image, resize, to_uint8
from jaxstyle.serve.jobs import Job, JobCancelled
from jaxstyle.serve.settings import (
    AnySettings,
    ImageRef,
    JobSettings,
    ModelSettings,
    OptimizeSettings,
    RefineStart,
)
from jaxstyle.serve.uploads import UploadError, UploadStore
from jaxstyle.vgg import MIN_SIDE

PREVIEW_SIDE = 512  # previews are sent at most this size (the result is full size)
KEEP_STARTS = 8  # one-pass pictures kept for a Refine (a PNG each, oldest dropped first)
# A one-pass job whose photo's longer side is over twice this is painted at this size first
# and shown at once: WCT's chain takes seconds at 1024 px on 2 cores and a fraction of one
# at 256, so the page answers a slider before the full size is done.
QUICK_SIDE = 256


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) or (1, H, W, 3) in [0, 1] -> PNG bytes (the same pixels `save_image` writes;
    compression level 1: at 512 px level 6 takes several times as long for ~10% less)."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image), mode="RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def data_url(image: ArrayLike) -> str:
    """A small PNG preview as a data: URL, for an event."""
    pixels = np.asarray(image, np.float32)
    if pixels.ndim == 4:
        pixels = pixels[0]
    size = fit_size(pixels.shape[0], pixels.shape[1], PREVIEW_SIDE)
    if size != pixels.shape[:2]:
        pixels = resize(pixels, size)
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode()


class Studio:
    """Caches and engines behind the page (one per server).

    Example:

    >>> import jaxstyle.serve
    >>> studio = jaxstyle.serve.Studio(params)  # VGG19's params, or a function that loads them
    >>> studio.painting_names(), studio.model_styles()["paintings"]
    (['starry night'], ['starry_night', 'shipwreck', 'woman_with_hat'])
    >>> studio.uploads.close()
    """

    def __init__(self, vgg_params: Optional[Callable[[], dict] | dict] = None,
                 paintings: tuple[Path, ...] = (), models_dir: Optional[Path] = None,
                 decoder: str = "any", uploads: Optional[UploadStore] = None,
                 quick_side: int = QUICK_SIDE) -> None:
        self._vgg_source = vgg_params
        self.quick_side = quick_side  # 0: no quick preview
        self._vgg: Optional[dict] = None
        self.paintings = (DEMO_STYLE, *paintings)
        self.models_dir = models_dir
        self.decoder_name = decoder
        self.uploads = uploads or UploadStore()
        self._models: dict[str, tuple] = {}
        self._decoder: Optional[tuple] = None
        self._last_run: Optional[tuple] = None  # (resume key, steps done, state)
        self._starts: dict[str, bytes] = {}  # one-pass pictures a Refine starts from, by job
        self._lock = threading.Lock()

    # --- what the page can choose from ---

    def model_styles(self) -> dict[str, list[str]]:
        """Each built-in multi-style model file's name and its style names."""
        from jaxstyle.feedforward.apply import builtin_models
        from jaxstyle.feedforward.modelfile import style_names

        found = {}
        for model in builtin_models(self.models_dir):
            if model.style is None and model.name != self.decoder_name:
                try:
                    found[model.name] = style_names(self.model(model.name)[1])
                except Exception:  # a damaged or foreign file: not offered
                    continue
        return found

    def painting_names(self) -> list[str]:
        return [path.stem.replace("_", " ") for path in self.paintings]

    # --- cached resources ---

    @property
    def vgg(self) -> dict:
        with self._lock:
            if self._vgg is None:
                source = self._vgg_source
                if source is None:
                    from jaxstyle.weights.fetch import resolve_params
                    source = resolve_params
                loaded = source() if callable(source) else source
                from jaxstyle.vgg import prepare_params
                self._vgg = prepare_params(loaded)
            return self._vgg

    def model(self, name: str) -> tuple:
        """(params, header, compiled stylizer) of a built-in model, loaded once."""
        from jaxstyle.feedforward.apply import make_stylizer, resolve_model
        from jaxstyle.feedforward.modelfile import load_model

        if name not in self._models:
            path, _ = resolve_model(name, self.models_dir)
            params, header = load_model(path)
            self._models[name] = (params, header, make_stylizer(params, header))
        return self._models[name]

    def _decoder_file(self) -> tuple:
        """(params, header, stylizers by choice) of the arbitrary-style model, loaded once."""
        from jaxstyle.arbitrary.decoderfile import load_decoder
        from jaxstyle.feedforward.apply import resolve_model

        with self._lock:
            if self._decoder is None:
                path = resolve_model(self.decoder_name, self.models_dir)[0]
                self._decoder = (*load_decoder(path), {})
            return self._decoder

    def check_any(self, settings: AnySettings) -> None:
        """ConfigError, before the job is queued, for a choice this studio's model cannot
        take: a whitening other than eigh or a transform other than wct for an AdaIN decoder
        (only WCT whitens and has a transform to choose), or both together."""
        from jaxstyle.arbitrary.apply import check_transform, check_whitening
        from jaxstyle.arbitrary.multilevel import check_transform_name

        if settings.whitening != "eigh":
            check_whitening(settings.whitening, self._decoder_file()[1])
        if settings.transform != "wct":
            check_transform(settings.transform, self._decoder_file()[1])
            try:
                check_transform_name(settings.transform, settings.whitening)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None

    def decoder(self, levels: Optional[int] = None, whitening: str = "eigh",
                transform: str = "wct") -> tuple:
        """(params, header, compiled stylizer) of the arbitrary-style model, loaded once; a
        WCT model's stylizer once per choice of levels, whitening and transform."""
        from jaxstyle.arbitrary.apply import make_any_stylizer

        params, header, stylizers = self._decoder_file()
        key = (levels, whitening, transform)
        if key not in stylizers:
            stylizers[key] = make_any_stylizer(self.vgg, params, header, levels=levels,
                                               whitening=whitening, transform=transform)
        return params, header, stylizers[key]

    def refine_start(self, job: Optional[Job]) -> RefineStart:
        """A finished one-pass job's photo, paintings and model, for a Refine; its picture is
        kept (the last few) for the optimisation to start from exactly."""
        settings = None if job is None else job.settings
        if job is None or job.result is None or not isinstance(settings, (ModelSettings,
                                                                          AnySettings)):
            raise ConfigError("start: no finished one-pass picture with that id; paint one "
                              "with a trained model or any painting first")
        if isinstance(settings, AnySettings):
            blend = tuple(settings.blend) if len(settings.styles) > 1 else None
            origin = RefineStart(settings.photo, settings.styles, blend, self.decoder_name)
        else:
            origin = self._model_refine_start(settings)
        with self._lock:
            self._starts[job.id] = job.result
            while len(self._starts) > KEEP_STARTS:
                self._starts.pop(next(iter(self._starts)))
        return origin

    def _model_refine_start(self, settings: ModelSettings) -> RefineStart:
        """An engine-2 job's styles as paintings of this studio: by the sha256 of the files
        the model was trained on (its header keeps them), else by name, so the packaged
        starry_night.jpg (a smaller copy) stands for the `paintings` model's Starry Night."""
        import hashlib

        header = self.model(settings.model)[1]
        digests = {hashlib.sha256(path.read_bytes()).hexdigest(): i
                   for i, path in enumerate(self.paintings)}
        names = {path.stem.lower(): i for i, path in reversed(list(enumerate(self.paintings)))}
        styles, weights = [], []
        for style, weight in zip(header.get("styles", []), settings.blend):
            if weight <= 0:
                continue
            index = digests.get(str(style.get("sha256")),
                                names.get(str(style.get("name")).lower()))
            if index is None:
                raise ConfigError(f"the model's style {style.get('name')!r} is not among this "
                                  "studio's paintings, so there is nothing to refine towards "
                                  "(start the studio with --paintings DIR holding it)")
            styles.append(ImageRef("painting", index))
            weights.append(float(weight))
        blend = tuple(w / sum(weights) for w in weights) if len(weights) > 1 else None
        return RefineStart(settings.photo, tuple(styles), blend, settings.model)

    def image(self, ref: ImageRef, max_dim: Optional[int]) -> np.ndarray:
        if ref.kind == "upload":
            assert isinstance(ref.key, str)  # image_ref: an upload's key is its id
            path = self.uploads.path(ref.key)
        elif ref.kind == "painting":
            assert isinstance(ref.key, int)  # image_ref: a painting's key is its index
            path = self.paintings[ref.key]
        else:
            path = DEMO_CONTENT
        try:
            return load_image(path, max_dim, self.uploads.max_pixels, what="image")
        except JaxstyleError as exc:  # said without the server's own paths
            raise UploadError(str(exc).replace(f"image {path}", ref.label())) from None

    # --- engines ---

    def run(self, job: Job) -> bytes:
        settings = job.settings
        if isinstance(settings, OptimizeSettings):
            return self.run_optimize(job, settings)
        if isinstance(settings, ModelSettings):
            return self.run_model(job, settings)
        if isinstance(settings, AnySettings):
            return self.run_any(job, settings)
        raise ConfigError(f"unknown job settings {type(settings).__name__}")

    def export_onnx(self, settings: JobSettings) -> bytes:
        """An ONNX file of a one-pass job's model with that job's settings fixed in it (style
        blend, strength; or the painting and alpha), through `jaxstyle.export`, as
        `jaxstyle export` makes it. ConfigError for what a file cannot hold."""
        from jaxstyle.export import any_style_export, feedforward_export, onnx_model

        if getattr(settings, "preserve_color", None) is not None:
            raise ConfigError("colour preservation is not part of an exported file; turn it "
                              "off to download the model")
        if isinstance(settings, ModelSettings):
            params, header, _ = self.model(settings.model)
            spec = feedforward_export(params, header, blend=list(settings.blend),
                                      strength=settings.strength)
        elif isinstance(settings, AnySettings):
            if len(settings.styles) != 1 or settings.levels is not None:
                raise ConfigError("an exported file holds one painting: choose one")
            params, header, _ = self.decoder()
            painting = self.image(settings.styles[0], settings.style_size)
            from jaxstyle.arbitrary.decoderfile import needs_vgg

            spec = any_style_export(self.vgg if needs_vgg(header) else None, params, header,
                                    style_image=painting, alpha=settings.alpha,
                                    structure=settings.structure,
                                    whitening="newton-schulz")  # ONNX: no eigendecomposition
        else:
            raise ConfigError("only a trained model's or any painting's result can be "
                              "downloaded as ONNX")
        return onnx_model(spec).SerializeToString()

    def run_model(self, job: Job, s: ModelSettings) -> bytes:
        from jaxstyle.feedforward.apply import apply_model

        params, header, stylizer = self.model(s.model)
        photo = self.image(s.photo, s.max_dim)
        job.check()
        started = time.perf_counter()
        out = apply_model(params, header, photo, blend=list(s.blend), strength=s.strength,
                          preserve_color=s.preserve_color, stylizer=stylizer)
        job.emit("timing", network_ms=round(1e3 * (time.perf_counter() - started), 1))
        return png_bytes(out)

    def run_any(self, job: Job, s: AnySettings) -> bytes:
        from jaxstyle.arbitrary.apply import apply_any

        params, header, stylizer = self.decoder(s.levels, s.whitening, s.transform)
        photo = self.image(s.photo, s.max_dim)
        styles = [self.image(ref, s.style_size) for ref in s.styles]

        def paint(image: np.ndarray) -> np.ndarray:
            return apply_any(None, params, header, image, styles, alpha=s.alpha,
                             blend=list(s.blend) if len(styles) > 1 else None,
                             preserve_color=s.preserve_color, stylizer=stylizer,
                             structure=s.structure)

        job.check()
        height, width = photo.shape[:2]
        quick_size = fit_size(height, width, self.quick_side)
        # A panorama's preview would be too thin for the network: none then.
        if (self.quick_side and max(height, width) > 2 * self.quick_side
                and min(quick_size) >= MIN_SIDE):
            small = resize(photo, quick_size)
            started = time.perf_counter()
            quick = paint(small)
            job.emit("preview", side=self.quick_side, preview=data_url(quick),
                     network_ms=round(1e3 * (time.perf_counter() - started), 1))
            job.check()  # a job superseded meanwhile (a slider moved on) stops here
        started = time.perf_counter()
        out = paint(photo)
        job.emit("timing", network_ms=round(1e3 * (time.perf_counter() - started), 1))
        return png_bytes(out)

    def run_optimize(self, job: Job, s: OptimizeSettings) -> bytes:
        from jaxstyle.gatys import StylizeInterrupted, stylize
        from jaxstyle.gatys.pipeline import finish_image
        from jaxstyle.gatys.state import output_image

        cfg = s.config()
        content = self.image(s.photo, cfg.max_dim)
        styles = [self.image(ref, cfg.max_dim) for ref in s.styles]
        start = None
        if s.start is not None:
            start = self._start_image(s.start, content.shape[:2])
            job.emit("progress", step=0, total=s.steps, loss=None, steps_per_s=0, eta_s=None,
                     preview=data_url(start))  # the picture it starts from, at once
        state, done = None, 0
        last = self._last_run
        if last is not None and last[0] == s.resume_key() and s.scales == 1 and last[1] < s.steps:
            done, state = last[1], last[2]
            job.emit("resumed", step=done)
        latest = {"state": state}
        clock = {"time": time.perf_counter(), "step": done}

        def progress(step, metrics, step_state):
            latest["state"] = step_state
            if job.cancel.is_set() or job.stop.is_set():
                raise KeyboardInterrupt  # the library's own stop: it returns the state so far
            if step % s.preview_every and step != s.steps:
                return
            image = finish_image(output_image(step_state, cfg), content, cfg)
            now = time.perf_counter()
            rate = (step - clock["step"]) / max(now - clock["time"], 1e-9)
            clock.update(time=now, step=step)
            loss = float(np.mean(np.asarray(metrics["loss"])))
            eta = round((s.steps - step) / rate, 1) if rate > 0 else None
            job.emit("progress", step=step, total=s.steps, loss=loss,
                     steps_per_s=round(rate, 2), eta_s=eta, preview=data_url(image))

        try:
            image, _ = stylize(self.vgg, content, styles if len(styles) > 1 else styles[0],
                               cfg, callback=progress, state=state,
                               init_image=None if state is not None else start)
        except StylizeInterrupted as stopped:
            if job.cancel.is_set():
                raise JobCancelled from None
            image = np.asarray(stopped.image)  # Stop keeps the image as it is
        final = latest["state"]
        if final is not None and s.scales == 1:
            self._last_run = (s.resume_key(), int(np.max(np.asarray(final.step))), final)
        return png_bytes(np.asarray(image))


    def _start_image(self, job_id: str, size: tuple[int, int]) -> np.ndarray:
        """The kept one-pass picture of `job_id` at the run's size, in [0, 1]."""
        with self._lock:
            data = self._starts.get(job_id)
        if data is None:
            raise ConfigError("the picture to refine is no longer kept; paint it again")
        with Image.open(io.BytesIO(data)) as picture:
            image = np.asarray(picture.convert("RGB"), np.float32) / 255
        return resize(image, size)


__all__ = ["Studio", "data_url", "png_bytes"]
