"""A trained model as a file other runtimes load: serialized StableHLO (`jax.export`) or ONNX.

    spec = feedforward_export(params, header, style="starry_night")   # or blend=..., or neither
    spec = any_style_export(encoder_params, params, header, style_image=art)  # or a 2nd input
    write_stablehlo(spec, "starry.stablehlo")     # + starry.stablehlo.json, the metadata
    write_onnx(spec, "starry.onnx")               # needs the `export` extra (jax2onnx)

Every exported program takes photos as (N, H, W, 3) float32 RGB in [0, 1], NHWC, with N, H
and W symbolic: one file serves any photo size (H, W >= 32), none is fixed at export. The
weights are constants inside the file. An engine-2 model either has its style chosen at
export (a style, a blend, a strength) or takes a blend vector (S,) as a second input, so one
file holds every style; an AdaIN model (`any`, `any-vgg`) either has one painting's
statistics baked in or takes the painting (1, Hs, Ws, 3) as a second input; a WCT model
(`wct`) has its painting baked in. Its whitening is an eigendecomposition per photo, which
ONNX has no operator for: its ONNX form whitens by Newton-Schulz iterations instead
(`wct.inverse_sqrt_newton_schulz`, matrix products only), its StableHLO form by `eigh`, as
`jaxstyle apply` does, unless asked otherwise.

This module composes engines 2 and 3, as the command line does; neither imports the other.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional, Union, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxstyle._types import ParamTree
from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.files import atomic_write
from jaxstyle.vgg import MIN_SIDE

FORMATS = ("onnx", "stablehlo")
LAYOUT = "NHWC float32 RGB in [0, 1]; N, H, W any (H, W >= 32)"
PHOTO_DIMS = "n, h, w, 3"
STYLE_DIMS = "1, sh, sw, 3"
ONNX_OPSET = 21


class ExportError(JaxstyleError):
    """A model or setting that cannot be exported, or a missing exporter; one line."""


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """What to export: a pure function, its inputs' names and symbolic shapes, and metadata."""

    function: Callable
    inputs: tuple[tuple[str, str], ...]  # (name, symbolic dims) per argument
    metadata: dict

    def abstract_inputs(self) -> list[jax.ShapeDtypeStruct]:
        """Shapes for `jax.export`: the dims of all inputs share one symbolic scope."""
        names = [name for _, dims in self.inputs for name in dims.replace(" ", "").split(",")
                 if not name.isdigit()]
        constraints = [f"{name} >= {MIN_SIDE}" for name in dict.fromkeys(names)
                       if name not in ("n", "s")]
        shapes = jax.export.symbolic_shape(", ".join(dims for _, dims in self.inputs),
                                           constraints=constraints)
        out, start = [], 0
        for _, dims in self.inputs:
            rank = len(dims.split(","))
            out.append(jax.ShapeDtypeStruct(shapes[start:start + rank], jnp.float32))
            start += rank
        return out


def _check_unit(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and np.isfinite(value) and 0 <= value <= 1):
        raise ConfigError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _base_metadata(header: dict, engine: str) -> dict:
    from jaxstyle import __version__

    return {"producer": "jaxstyle", "jaxstyle_version": __version__, "engine": engine,
            "layout": LAYOUT, "architecture": header.get("architecture"),
            "width": header.get("width")}


def feedforward_export(params: dict, header: dict, style: str | int | None = None,
                       blend: Optional[Sequence[float]] = None,
                       strength: float = 1.0) -> ExportSpec:
    """Engine 2. With `style` or `blend` the style is fixed: `f(photos) -> photos`. With
    neither, `f(photos, style_weights (S,))`: the weights (>= 0, not all 0) are normalised to
    sum 1 inside, so a one-hot row picks a style and any other row blends them."""
    from jaxstyle.feedforward.apply import style_weights_for
    from jaxstyle.feedforward.modelfile import style_names
    from jaxstyle.feedforward.network import TransformerNet

    strength = _check_unit("strength", strength)
    net = TransformerNet(num_styles=int(header["num_styles"]), width=float(header["width"]),
                         identity_start=bool(header.get("identity_start", False)))
    fixed = None
    if style is not None or blend is not None:
        fixed = jnp.asarray(style_weights_for(header, style, blend))

    def paint(photos, weights):
        rows = jnp.broadcast_to(weights / jnp.sum(weights), (photos.shape[0], weights.shape[0]))
        out = cast(jax.Array, net.apply({"params": params}, photos, rows))
        return out if strength == 1 else strength * out + (1 - strength) * photos

    names = style_names(header)
    metadata = {**_base_metadata(header, "feed-forward"), "styles": names, "strength": strength}
    if fixed is not None:
        metadata["style_weights"] = [round(float(w), 6) for w in fixed]
        return ExportSpec(lambda photos: paint(photos, fixed), (("photos", PHOTO_DIMS),),
                          metadata)
    metadata["inputs_note"] = (f"style_weights: {len(names)} weights, one per style in "
                               "'styles' order, normalised inside")
    return ExportSpec(paint, (("photos", PHOTO_DIMS), ("style_weights", f"{len(names)}")),
                      metadata)


def any_style_export(vgg_params: Optional[ParamTree], params: dict, header: dict,
                     style_image: Optional[np.ndarray] = None, alpha: float = 1.0,
                     strength: float = 1.0, whitening: str = "eigh",
                     transform: str = "wct", structure: Optional[float] = None) -> ExportSpec:
    """Engine 3's models (a WCT file: `_wct_export`, whitening by `whitening`, each level's
    transform by `transform`: "wct", or "efdm", which exports to StableHLO only). With
    `style_image` (H, W, 3) its relu4_1 statistics are constants: `f(photos)`; without,
    `f(photos, style (1, Hs, Ws, 3))` takes the painting, at the size that sets its strokes.
    `vgg_params` is None for a model with its own encoder. structure: the share of the
    photo's blurred luminance put back (`apply_any`'s; default the model's own)."""
    from jaxstyle.arbitrary.adain import StyleStats, channel_stats
    from jaxstyle.arbitrary.apply import default_structure
    from jaxstyle.arbitrary.decoder import ENCODER_LAYER
    from jaxstyle.arbitrary.decoderfile import is_wct_header
    from jaxstyle.arbitrary.transfer import (
        conv_params,
        encode,
        pad_for_encoder,
        split_params,
        style_statistics,
        stylize_arrays,
    )

    structure = default_structure(header) if structure is None else _check_unit(
        "structure", structure)
    if is_wct_header(header):
        return _wct_export(vgg_params, params, header, style_image, alpha, strength,
                           whitening, transform, structure)
    if transform != "wct":
        raise ExportError("transform chooses a WCT model's feature transform; this model is "
                          f"an AdaIN decoder ({header.get('architecture')})")
    alpha, strength = _check_unit("alpha", alpha), _check_unit("strength", strength)
    decoder, own_encoder = split_params(params)
    encoder = conv_params(own_encoder) if own_encoder is not None else vgg_params
    if encoder is None:
        raise ExportError("this decoder decodes VGG19's features: give VGG19's params")
    width = float(header["width"])

    def paint(photos, stats):
        out = stylize_arrays(encoder, decoder, width, photos, stats, alpha=alpha,
                             transpose_landscape=False)  # one graph for every orientation
        return _finish(out, photos, structure, strength)

    metadata = {**_base_metadata(header, "any-style AdaIN"), "alpha": alpha,
                "strength": strength, "structure": structure}
    if style_image is not None:
        stats = style_statistics(encoder, jnp.asarray(style_image, jnp.float32))
        metadata["style"] = "baked in at export"
        return ExportSpec(lambda photos: paint(photos, stats), (("photos", PHOTO_DIMS),),
                          metadata)

    def paint_with(photos, style):
        padded, _, _ = pad_for_encoder(style)
        features = encode(encoder, padded)[ENCODER_LAYER]
        return paint(photos, StyleStats(*channel_stats(features)))

    metadata["inputs_note"] = "style: one painting (1, Hs, Ws, 3), its size sets the strokes"
    return ExportSpec(paint_with, (("photos", PHOTO_DIMS), ("style", STYLE_DIMS)), metadata)


def _finish(out: jax.Array, photos: jax.Array, structure: float, strength: float
            ) -> jax.Array:
    """apply_any's last steps, in its order: the photo's layout, then the pixel blend."""
    from jaxstyle.arbitrary.structure import restore_layout

    if structure > 0:
        out = restore_layout(out, photos, structure)
    return out if strength == 1 else strength * out + (1 - strength) * photos


def _write(path: Path, data: bytes) -> None:
    with atomic_write(path) as out:  # an existing file is replaced whole, or left as it was
        out.write(data)


def _wct_export(vgg_params: Optional[ParamTree], params: dict, header: dict,
                style_image: Optional[np.ndarray], alpha: float,
                strength: float, whitening: str, transform: str = "wct",
                structure: float = 1.0) -> ExportSpec:
    """A WCT chain at its default levels with one painting baked in (its colouring matrices
    are constants; as an input it would need a square root with no ridge, which Newton-Schulz
    cannot bound). whitening "eigh" exports to StableHLO only; "newton-schulz" to both.
    transform "efdm" (the painting's quantiles baked in; a sort and a scatter per level)
    exports to StableHLO only, and takes no whitening."""
    from jaxstyle.arbitrary.decoder import level_name
    from jaxstyle.arbitrary.decoderfile import wct_levels_of
    from jaxstyle.arbitrary.multilevel import (
        chain_levels,
        check_transform_name,
        painting_statistics,
        stylize_wct,
    )
    from jaxstyle.arbitrary.wct import WHITENINGS

    if vgg_params is None:
        raise ExportError("WCT decodes VGG19's features: give VGG19's params")
    if style_image is None:
        raise ExportError("a WCT file needs its painting baked in: give --style-image")
    if whitening not in WHITENINGS:
        raise ExportError(f"whitening must be one of {', '.join(WHITENINGS)}")
    try:
        check_transform_name(transform, whitening)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    alpha, strength = _check_unit("alpha", alpha), _check_unit("strength", strength)
    levels = chain_levels(wct_levels_of(header, "model"), header.get("default_levels"))
    decoders = {level_name(k): params[level_name(k)] for k in levels}
    stats = painting_statistics(vgg_params, style_image, levels, transform)

    def paint(photos):
        out = stylize_wct(vgg_params, decoders, float(header["width"]), photos, stats, levels,
                          alpha=alpha, transpose_landscape=False, whitening=whitening,
                          transform=transform)
        return _finish(out, photos, structure, strength)

    metadata = {**_base_metadata(header, "any-style WCT"), "alpha": alpha,
                "strength": strength, "structure": structure, "levels": list(levels),
                "style": "baked in at export"}
    # An efdm chain whitens nothing: its file says its transform, not a whitening.
    metadata.update({"transform": "efdm"} if transform == "efdm" else {"whitening": whitening})
    return ExportSpec(paint, (("photos", PHOTO_DIMS),), metadata)


# --- StableHLO ------------------------------------------------------------------------------

def exported(spec: ExportSpec) -> jax.export.Exported:
    """The spec traced once with symbolic sizes, for the CPU, CUDA and TPU."""
    return jax.export.export(jax.jit(spec.function), platforms=("cpu", "cuda", "tpu"))(
        *spec.abstract_inputs())


def stablehlo_bytes(spec: ExportSpec) -> bytes:
    try:
        return bytes(exported(spec).serialize())
    except ImportError as exc:  # jax's serializer needs the flatbuffers package
        raise ExportError(f"{exc}: pip install -e \".[export]\"") from None


def write_stablehlo(spec: ExportSpec, path: str | os.PathLike) -> Path:
    """FILE: `Exported.serialize()`'s bytes, as `jax.export.deserialize` reads them;
    FILE.json: the metadata (serialized StableHLO has no slot for it)."""
    path = Path(path)
    data = stablehlo_bytes(spec)
    metadata = {**spec.metadata, "format": "stablehlo", "inputs": dict(spec.inputs)}
    _write(path, data)
    _write(Path(f"{path}.json"), (json.dumps(metadata, indent=1) + "\n").encode())
    return path


# --- Portability: what a program lowered for another platform calls ------------------------

# Custom-call targets that only XLA's CPU backend provides: LAPACK's solvers (jnp.linalg on a
# CPU: eigh is lapack_ssyevd_ffi there, cusolver_syevd_ffi for CUDA, Eigh for TPU), DUCC's
# FFTs, and any target naming the CPU, such as the host callbacks (xla_python_cpu_callback,
# xla_ffi_python_cpu_callback) of jax.pure_callback, io_callback and jax.debug on a CPU.
CPU_ONLY_PREFIXES = ("lapack_", "ducc_")
_CUSTOM_CALL = re.compile(r'stablehlo\.custom_call\s+@(?:"((?:[^"\\]|\\.)*)"|([\w.$-]+))'
                          r'|call_target_name\s*=\s*"((?:[^"\\]|\\.)*)"')


def custom_call_targets(mlir_text: str) -> list[str]:
    """Every `stablehlo.custom_call` target in a module's text (pretty or generic form),
    sorted, each once."""
    return sorted({next(group for group in match.groups() if group is not None)
                   for match in _CUSTOM_CALL.finditer(mlir_text)})


def is_cpu_only_target(target: str) -> bool:
    """Whether a custom-call target exists on XLA's CPU backend alone (`CPU_ONLY_PREFIXES`,
    or "cpu" in its name)."""
    name = target.lower()
    return name.startswith(CPU_ONLY_PREFIXES) or "cpu" in name


def cpu_only_custom_calls(mlir_text: str) -> list[str]:
    """The custom-call targets of a lowered module that only a CPU runs (sorted, once each):
    any of them in a module lowered for CUDA or TPU fails there, at load or at run time."""
    return [t for t in custom_call_targets(mlir_text) if is_cpu_only_target(t)]


def lowered_texts(lower: Callable[[str], Union[jax.stages.Lowered, jax.export.Exported]],
                  platforms: Sequence[str] = ("cuda", "tpu")) -> dict[str, str]:
    """{platform: StableHLO text} of a program lowered for each platform, with no device or
    plugin of that platform present. `lower(platform)` returns a `jax.stages.Lowered` (e.g.
    `lambda p: jax.jit(f).trace(*args).lower(lowering_platforms=(p,))`, or
    `lambda p: step.lower(params, targets, state, platforms=(p,))`) or an Exported."""
    texts: dict[str, str] = {}
    for platform in platforms:
        lowered = lower(platform)
        texts[platform] = (lowered.mlir_module() if isinstance(lowered, jax.export.Exported)
                           else lowered.as_text())
    return texts


def check_portable(texts: dict[str, str], what: str = "the program") -> dict[str, list[str]]:
    """ExportError naming every CPU-only custom call in modules lowered for other platforms
    ({platform: text}, `lowered_texts`); else each platform's custom-call targets."""
    found = {platform: cpu_only_custom_calls(text) for platform, text in texts.items()
             if platform != "cpu"}
    bad = {platform: targets for platform, targets in found.items() if targets}
    if bad:
        raise ExportError(f"{what} calls what only a CPU has: " + "; ".join(
            f"{platform}: {', '.join(targets)}" for platform, targets in bad.items()))
    return {platform: custom_call_targets(text) for platform, text in texts.items()}


# --- ONNX -----------------------------------------------------------------------------------

def onnx_model(spec: ExportSpec) -> Any:
    """The spec as an onnx.ModelProto through jax2onnx, with symbolic N, H, W and the
    metadata in its metadata_props."""
    import logging

    if spec.metadata.get("transform") == "efdm":
        raise ExportError("transform 'efdm' exports to StableHLO only (its per-channel sort "
                          "and scatter are not converted to ONNX here)")
    if spec.metadata.get("whitening") == "eigh":
        raise ExportError("a WCT whitening by eigendecomposition exports to StableHLO only "
                          "(ONNX has no such operator): use whitening \"newton-schulz\"")
    logging.getLogger("onnx_ir").setLevel(logging.ERROR)  # a warning per shape constant
    try:
        from jax2onnx import to_onnx
    except ImportError:
        raise ExportError("ONNX export needs jax2onnx: pip install -e \".[export]\"") from None
    # Our own symbolic shapes, with their constraints (H, W >= 32), which jax2onnx keeps.
    from jaxstyle.onnx_ops import reflect_pads_as_onnx

    with reflect_pads_as_onnx():  # each conv's reflect pad as one Pad node, not gathers
        model = to_onnx(spec.function, spec.abstract_inputs(), model_name="jaxstyle",
                        opset=ONNX_OPSET)
    renamed = {value.name: name for (name, _), value in zip(spec.inputs, model.graph.input)}
    for value in model.graph.input:  # "photos", "style_weights": what the README calls them
        value.name = renamed[value.name]
    for node in _nodes(model.graph):
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    for key, value in {**spec.metadata, "inputs": json.dumps(dict(spec.inputs))}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    return model


def _nodes(graph):
    """Every node of an ONNX graph, those in subgraphs (If, Loop, Scan) included."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in [attribute.g, *attribute.graphs] if attribute.HasField("g") else \
                    attribute.graphs:
                yield from _nodes(sub)


def write_onnx(spec: ExportSpec, path: str | os.PathLike) -> Path:
    model = onnx_model(spec)
    path = Path(path)
    _write(path, model.SerializeToString())
    return path


def format_for(path: str | os.PathLike, given: Optional[str]) -> str:
    """--format as given, else from the file's suffix: .onnx, .stablehlo or .bin."""
    if given is not None:
        if given not in FORMATS:
            raise ConfigError(f"format must be one of {FORMATS}, got {given!r}")
        return given
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".stablehlo", ".bin"):
        return "stablehlo"
    raise ConfigError(f"{Path(path).name}: say --format onnx or stablehlo (or name the file "
                      ".onnx, .stablehlo or .bin)")


__all__ = ["CPU_ONLY_PREFIXES", "ExportError", "ExportSpec", "FORMATS", "LAYOUT",
           "any_style_export", "check_portable", "cpu_only_custom_calls", "custom_call_targets",
           "exported", "feedforward_export", "format_for", "is_cpu_only_target",
           "lowered_texts", "onnx_model", "stablehlo_bytes", "write_onnx", "write_stablehlo"]
