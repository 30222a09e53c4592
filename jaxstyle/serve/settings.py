"""What a browser may ask for, validated into frozen settings before anything runs.

A job request is JSON. Every field is checked here (type, range, choice); images are named by
the server's own ids (an upload's random hex id, a painting's index, a built-in model's
name), never by a path, so nothing a client sends can reach the file system. Each settings
object also says which `jaxstyle` command line would do the same, for scripting.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError

ENGINES = ("optimize", "model", "any")
OPTIMIZERS = ("adam", "lbfgs")
PRESERVE = (None, "luminance", "histogram")  # histogram: optimisation only
WHITENINGS = ("eigh", "newton-schulz")  # WCT models' whitening (`arbitrary.wct.WHITENINGS`)
TRANSFORMS = ("wct", "efdm")  # WCT models' level transform (`arbitrary.multilevel.TRANSFORMS`)
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
JOB_ID = re.compile(r"[0-9a-f]{24}")
MAX_STYLES = 4
LIMITS = {"steps": (1, 5000), "max_dim": (32, 2048), "preview_every": (1, 1000),
          "scales": (1, 3), "levels": (1, 5)}
PHOTO_SIDE_LIMITS = (32, 2048)  # one-pass engines: the photo's longer side


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """An image the server knows: an upload (by id), a painting (by index) or the demo photo."""

    kind: str   # "upload" | "painting" | "demo"
    key: Union[str, int, None] = None

    def label(self) -> str:
        return {"upload": f"upload-{str(self.key)[:8]}.png", "demo": "chelsea.jpg"}.get(
            self.kind, f"painting-{self.key}")


@dataclasses.dataclass(frozen=True)
class OptimizeSettings:
    photo: ImageRef
    styles: tuple[ImageRef, ...]
    steps: int = 200
    max_dim: int = 256
    style_weight: float = StyleConfig().style_weight
    content_weight: float = StyleConfig().content_weight
    optimizer: str = "lbfgs"
    preserve_color: Optional[str] = None
    scales: int = 1
    preview_every: int = 10
    # Refine: start from a finished one-pass job's picture (its id); `start_model` names the
    # model for the command line (`--init NAME`), `blend` the styles' weights (None: equal).
    start: Optional[str] = None
    start_model: Optional[str] = None
    blend: Optional[tuple[float, ...]] = None

    def config(self) -> StyleConfig:
        """The shared objective's config for this run (validated by StyleConfig itself)."""
        blend = None if len(self.styles) == 1 else (self.blend or tuple(
            1.0 / len(self.styles) for _ in self.styles))
        # The fast preset's optimiser settings; the page chooses the length, so its stop
        # rule is off (the progress bar counts to the steps asked for).
        return StyleConfig.preset("fast", stop_improvement=None,
                                  steps=self.steps, steps_per_epoch=min(self.steps, 100),
                           max_dim=self.max_dim, style_weight=self.style_weight,
                           content_weight=self.content_weight, optimizer=self.optimizer,
                           preserve_color=self.preserve_color, scales=self.scales,
                           style_blend=blend)

    def resume_key(self) -> OptimizeSettings:
        """Everything but the step count: a run with the same key continues the last one."""
        return dataclasses.replace(self, steps=0, preview_every=0)

    def command(self) -> str:
        words = ["jaxstyle", "stylize", self.photo.label(), *(s.label() for s in self.styles),
                 "-o", "out.png", "--steps", str(self.steps), "--max-dim", str(self.max_dim),
                 "--style-weight", f"{self.style_weight:g}", "--content-weight",
                 f"{self.content_weight:g}", "--optimizer", self.optimizer]
        if self.preserve_color:
            words += ["--preserve-color", self.preserve_color]
        if self.scales > 1:
            words += ["--scales", str(self.scales)]
        if self.blend is not None and len(self.styles) > 1:
            words += ["--style-blend", *(f"{w:g}" for w in self.blend)]
        if self.start_model:
            words += ["--init", self.start_model]
        return shlex.join(words)


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    photo: ImageRef
    model: str
    blend: tuple[float, ...]        # one weight per style of the model (normalised later)
    strength: float = 1.0
    preserve_color: Optional[str] = None
    max_dim: int = 512

    def command(self) -> str:
        words = ["jaxstyle", "apply", self.model, self.photo.label(), "-o", "out.png",
                 "--style-blend", *(f"{w:g}" for w in self.blend), "--max-dim",
                 str(self.max_dim)]
        if self.strength != 1:
            words += ["--strength", f"{self.strength:g}"]
        if self.preserve_color:
            words += ["--preserve-color", self.preserve_color]
        return shlex.join(words)


@dataclasses.dataclass(frozen=True)
class AnySettings:
    photo: ImageRef
    styles: tuple[ImageRef, ...]
    blend: tuple[float, ...]
    alpha: float = 1.0
    preserve_color: Optional[str] = None
    max_dim: int = 512
    style_size: int = 512
    levels: Optional[int] = None  # WCT models: relu{N}_1 .. relu1_1; None: the model's own
    whitening: str = "eigh"  # WCT models: "eigh" or "newton-schulz"
    transform: str = "wct"  # WCT models: "wct" (whitening and colouring) or "efdm"
    structure: Optional[float] = None  # the photo's blurred luminance put back; None: model's

    def command(self) -> str:
        words = ["jaxstyle", "apply", "any", self.photo.label(), "--style-image",
                 *(s.label() for s in self.styles), "-o", "out.png", "--alpha",
                 f"{self.alpha:g}", "--max-dim", str(self.max_dim), "--style-size",
                 str(self.style_size)]
        if self.levels is not None:
            words += ["--levels", str(self.levels)]
        if self.whitening != "eigh":
            words += ["--whitening", self.whitening]
        if self.transform != "wct":
            words += ["--transform", self.transform]
        if self.structure is not None:
            words += ["--structure", f"{self.structure:g}"]
        if len(self.styles) > 1:
            words += ["--style-blend", *(f"{w:g}" for w in self.blend)]
        if self.preserve_color:
            words += ["--preserve-color", self.preserve_color]
        return shlex.join(words)


JobSettings = Union[OptimizeSettings, ModelSettings, AnySettings]


@dataclasses.dataclass(frozen=True)
class RefineStart:
    """What a Refine takes from the one-pass job it starts from."""

    photo: ImageRef
    styles: tuple[ImageRef, ...]  # the paintings to optimise towards
    blend: Optional[tuple[float, ...]]  # their weights (None: one painting)
    model: str  # for the command line: `--init MODEL`


# --- Parsing ------------------------------------------------------------------------------------

def _number(payload: dict, name: str, default: float, low: float, high: float) -> float:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low:g}, {high:g}], got {value:g}")
    return float(value)


def _integer(payload: dict, name: str, default: int) -> int:
    low, high = LIMITS.get(name, PHOTO_SIDE_LIMITS)
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def _choice(payload: dict, name: str, default: Any, choices: Sequence[Any]) -> Any:
    value = payload.get(name, default)
    if value == "none":
        value = None
    if value not in choices:
        raise ConfigError(f"{name} must be one of {[c or 'none' for c in choices]}, got {value!r}")
    return value


def image_ref(value: Any, what: str, painting_count: int) -> ImageRef:
    """{"upload": HEX} | {"painting": INDEX} | {"demo": true} -> ImageRef; ConfigError else."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(f"{what} must be an upload, a painting or the demo photo")
    (kind, key), = value.items()
    if kind == "upload" and isinstance(key, str) and UPLOAD_ID.fullmatch(key):
        return ImageRef("upload", key)
    if kind == "painting" and isinstance(key, int) and not isinstance(key, bool) \
            and 0 <= key < painting_count:
        return ImageRef("painting", key)
    if kind == "demo" and key is True:
        return ImageRef("demo")
    raise ConfigError(f"{what}: unknown image {value!r}")


def _styles(payload: dict, painting_count: int) -> tuple[ImageRef, ...]:
    styles = payload.get("styles")
    if not isinstance(styles, list) or not 1 <= len(styles) <= MAX_STYLES:
        raise ConfigError(f"styles must be a list of 1 to {MAX_STYLES} images")
    return tuple(image_ref(s, f"style {i + 1}", painting_count) for i, s in enumerate(styles))


def _blend(payload: dict, count: int) -> tuple[float, ...]:
    blend = payload.get("blend", [1.0] * count)
    if not isinstance(blend, list) or len(blend) != count:
        raise ConfigError(f"blend must be a list of {count} weights")
    weights = tuple(_number({"blend weight": w}, "blend weight", 0, 0.0, 1e6) for w in blend)
    if sum(weights) <= 0:
        raise ConfigError("blend weights must not all be 0")
    return weights


def parse_job(payload: Any, painting_count: int, model_styles: dict[str, int],
              refine_start: Optional[Callable[[str], RefineStart]] = None) -> JobSettings:
    """A job request -> settings; ConfigError with a one-line reason for anything off.

    model_styles: each built-in model's name and number of styles. An optimisation with
    "start": JOB_ID refines that finished one-pass job's picture: `refine_start(JOB_ID)`
    gives its photo, paintings and model (the request's own photo and paintings are unused).
    """
    if not isinstance(payload, dict):
        raise ConfigError("a job must be a JSON object")
    engine = payload.get("engine")
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "optimize" and payload.get("start") is not None:
        start = payload["start"]
        if not isinstance(start, str) or not JOB_ID.fullmatch(start) or refine_start is None:
            raise ConfigError("start must be the id of a finished one-pass job")
        origin = refine_start(start)
        payload = {**payload, "start": None, "photo": {"demo": True},
                   "styles": [{"demo": True}]}  # replaced by the start's own below
        settings = parse_job(payload, painting_count, model_styles)
        assert isinstance(settings, OptimizeSettings)  # the engine is "optimize"
        return dataclasses.replace(settings, photo=origin.photo, styles=origin.styles,
                                   blend=origin.blend, start=start,
                                   start_model=origin.model)
    photo = image_ref(payload.get("photo"), "photo", painting_count)
    if engine == "optimize":
        return OptimizeSettings(
            photo=photo, styles=_styles(payload, painting_count),
            steps=_integer(payload, "steps", 200), max_dim=_integer(payload, "max_dim", 256),
            style_weight=_number(payload, "style_weight", 1e-2, 0.0, 1e6),
            content_weight=_number(payload, "content_weight", 1e4, 0.0, 1e9),
            optimizer=_choice(payload, "optimizer", "lbfgs", OPTIMIZERS),
            preserve_color=_choice(payload, "preserve_color", None, PRESERVE),
            scales=_integer(payload, "scales", 1),
            preview_every=_integer(payload, "preview_every", 10))
    if engine == "model":
        model = payload.get("model")
        if model not in model_styles:
            raise ConfigError(f"model must be one of {sorted(model_styles)}, got {model!r}")
        return ModelSettings(
            photo=photo, model=model, blend=_blend(payload, model_styles[model]),
            strength=_number(payload, "strength", 1.0, 0.0, 1.0),
            preserve_color=_choice(payload, "preserve_color", None, PRESERVE[:2]),
            max_dim=_integer(payload, "max_dim", 512))
    styles = _styles(payload, painting_count)
    return AnySettings(
        photo=photo, styles=styles, blend=_blend(payload, len(styles)),
        alpha=_number(payload, "alpha", 1.0, 0.0, 1.0),
        preserve_color=_choice(payload, "preserve_color", None, PRESERVE[:2]),
        max_dim=_integer(payload, "max_dim", 512), style_size=_integer(payload, "style_size", 512),
        levels=None if payload.get("levels") in (None, 0, "default") else _integer(
            payload, "levels", 0),
        whitening=_choice(payload, "whitening", "eigh", WHITENINGS),
        transform=_choice(payload, "transform", "wct", TRANSFORMS),
        structure=None if payload.get("structure") in (None, "default") else _number(
            payload, "structure", 1.0, 0.0, 1.0))


__all__ = ["AnySettings", "ENGINES", "TRANSFORMS", "WHITENINGS", "ImageRef", "JobSettings",
           "ModelSettings", "OptimizeSettings", "RefineStart", "image_ref", "parse_job"]
