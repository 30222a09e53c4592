"""Engine 3's small encoder: VGG19's shape at a fraction of its channels, distilled from it.

VGG19 to relu4_1 is ~480k multiply-adds x 2 per pixel: at 1024x768 about 380 GFLOP, seconds
on a laptop CPU, and most of engine 3's time. Wang et al. (Collaborative Distillation, CVPR
2020) showed that a much narrower encoder, trained to reproduce VGG19's features, serves
AdaIN as well. Here:

- the encoder is `jaxstyle.vgg.VGG19` with every layer's channels times `width` (0.25: 16, 32,
  64, 128 channels; 1/16 of the FLOPs), so every function that runs VGG19 params (tiles,
  transposed landscape runs, style statistics) runs it unchanged;
- it starts as VGG19 itself, pruned: each layer keeps the channels with the largest mean
  activation over sample images (`prune_vgg`), and a 1x1 linear embedding per layer maps its
  features to VGG19's, fitted by least squares (`fit_embeddings`);
- distillation then regresses the embedded features onto VGG19's at relu1_1 .. relu4_1, in
  units of their mean activation (`FEATURE_MEANS`), on photos and paintings (`distill_loss`).

AdaIN runs on the small encoder's own relu4_1 features, as in the paper; its decoder is
trained for them (`jaxstyle train-decoder --encoder`). The relu4_1 embedding maps that
decoder's AdaIN targets into VGG19's space, where the training loss is computed: the full
VGG19 stays the loss network of every engine.

Params: VGG19's names (`block1_conv1` ... `block4_conv1`: kernel, bias) plus `embed/<layer>`
(kernel (C_small, C_vgg), bias (C_vgg,)).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from jaxstyle._types import ArrayLike, ParamTree
from jaxstyle.arbitrary.decoder import FEATURE_MEANS
from jaxstyle.arbitrary.transfer import ENCODER_CONVS, STATS_LAYERS, conv_params, encode
from jaxstyle.errors import ConfigError
from jaxstyle.paramfile import ModelError, check_shapes, read_param_file, write_param_file
from jaxstyle.training import (
    LoopSettings,
    ParallelStep,
    all_finite,
    check_settings,
    host_copy,
    keep_if_finite,
    run_training,
    training_mesh,
)
from jaxstyle.vgg import VGG19_CONV_LAYERS, scaled_channels

Array = jax.Array
ENCODER_ARCHITECTURE = "distilled-vgg19-relu4_1"
DEFAULT_ENCODER_WIDTH = 0.25
DISTILL_LAYERS = STATS_LAYERS  # relu1_1 .. relu4_1: the layers the decoder's loss looks at


def encoder_shapes(width: float) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Every param's shape, by its flattened path, for an encoder of this width."""
    shapes: dict[tuple[str, ...], tuple[int, ...]] = {}
    for name, cin, cout in VGG19_CONV_LAYERS[:len(ENCODER_CONVS)]:
        small_in = cin if cin == 3 else scaled_channels(cin, width)
        small_out = scaled_channels(cout, width)
        shapes[(name, "kernel")] = (3, 3, small_in, small_out)
        shapes[(name, "bias")] = (small_out,)
        if name in DISTILL_LAYERS:
            shapes[("embed", name, "kernel")] = (small_out, cout)
            shapes[("embed", name, "bias")] = (cout,)
    return shapes


def embed(features: Array, layer_embedding: dict) -> Array:
    """Small-encoder features (N,h,w,c) -> VGG19's (N,h,w,C), both in mean-activation units."""
    return features @ layer_embedding["kernel"] + layer_embedding["bias"]


def normalised_features(params: ParamTree, images: Array,
                        layers: Sequence[str] = DISTILL_LAYERS) -> dict[str, Array]:
    """`encode` in units of each layer's mean activation (`FEATURE_MEANS`)."""
    return {layer: f / FEATURE_MEANS[layer]
            for layer, f in encode(params, images, tuple(layers)).items()}


# --- The starting point: VGG19 pruned, embeddings by least squares ---------------------------

def prune_vgg(vgg_params: ParamTree, images: ArrayLike, width: float) -> dict:
    """VGG19's convs to relu4_1 keeping, per layer, the `width` share of output channels with
    the largest mean activation over `images` (N,H,W,3) in [0, 1]; each kept kernel keeps only
    the inputs its layer below kept. No embeddings (`fit_embeddings` adds them)."""
    activations = encode(vgg_params, jnp.asarray(images, jnp.float32), ENCODER_CONVS)
    small, kept_inputs = {}, np.arange(3)
    for name in ENCODER_CONVS:
        mean_activation = np.asarray(activations[name].mean(axis=(0, 1, 2)))
        count = scaled_channels(mean_activation.size, width)
        kept = np.sort(np.argsort(-mean_activation, kind="stable")[:count])
        kernel = np.asarray(vgg_params[name]["kernel"])[:, :, kept_inputs][..., kept]
        small[name] = {"kernel": kernel, "bias": np.asarray(vgg_params[name]["bias"])[kept]}
        kept_inputs = kept
    return small


def fit_embeddings(vgg_params: ParamTree, small_params: dict, images: ArrayLike) -> dict:
    """Per distilled layer, the 1x1 linear map (kernel, bias) that best takes the small
    encoder's features to VGG19's on `images`, by least squares (mean-activation units)."""
    floats = jnp.asarray(images, jnp.float32)
    target = normalised_features(vgg_params, floats)
    small = normalised_features(conv_params(small_params), floats)
    embeddings = {}
    for layer in DISTILL_LAYERS:
        x = np.asarray(small[layer], np.float64).reshape(-1, small[layer].shape[-1])
        y = np.asarray(target[layer], np.float64).reshape(-1, target[layer].shape[-1])
        design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        solution = np.linalg.lstsq(design, y, rcond=None)[0]
        embeddings[layer] = {"kernel": solution[:-1].astype(np.float32),
                             "bias": solution[-1].astype(np.float32)}
    return embeddings


def initial_encoder(vgg_params: ParamTree, images: ArrayLike, width: float) -> dict:
    """The distillation's start: pruned VGG19 plus least-squares embeddings."""
    small = prune_vgg(vgg_params, images, width)
    return {**small, "embed": fit_embeddings(vgg_params, small, images)}


# --- A decoder for it, from a decoder for VGG19 ----------------------------------------------

def compose_embedding(decoder_params: dict, layer_embedding: dict) -> dict:
    """A VGG19 decoder's params turned into a decoder for the small encoder's features.

    The decoder's first conv is linear in its input, and the embedding is linear too (small
    features -> VGG19's, both in mean-activation units, as the decoder divides its input):
    conv(x W + e, K) = conv(x, W K) + conv(e, K). With reflection padding every tap sees the
    constant e, so the composition is exact; the result decodes the small features as the
    VGG19 decoder decodes their embedding.
    """
    kernel = np.asarray(decoder_params["conv0"]["kernel"])          # (3, 3, 512, C)
    weights = np.asarray(layer_embedding["kernel"])                  # (c, 512)
    shift = np.asarray(layer_embedding["bias"])                      # (512,)
    composed = dict(decoder_params)
    composed["conv0"] = {
        "kernel": np.einsum("ij,hwjo->hwio", weights, kernel).astype(np.float32),
        "bias": (np.asarray(decoder_params["conv0"]["bias"])
                 + np.einsum("j,hwjo->o", shift, kernel)).astype(np.float32)}
    return composed


def prune_decoder(decoder_params: dict, width: float, new_width: float,
                  features: Array) -> dict:
    """A width-`width` decoder cut down to `new_width`: each hidden conv keeps the output
    channels with the largest mean activation on `features` (its inputs, as the decoder
    takes them), and the conv after it keeps only those inputs. A start for fine-tuning."""
    from jaxstyle.arbitrary.decoder import Decoder, decoder_channels

    _, captured = Decoder(width=width).apply({"params": decoder_params},
                                             jnp.asarray(features, jnp.float32),
                                             capture_intermediates=True)
    activations = captured["intermediates"]
    names = sorted((name for name in decoder_params if name.startswith("conv")),
                   key=lambda name: int(name[4:]))
    wanted = dict(zip(decoder_channels(width), decoder_channels(new_width)))  # per level
    pruned, kept_inputs = {}, None
    for name in names:
        kernel = np.asarray(decoder_params[name]["kernel"])
        bias = np.asarray(decoder_params[name]["bias"])
        if kept_inputs is not None:
            kernel = kernel[:, :, kept_inputs]
        if name == names[-1]:  # the RGB output keeps its three channels
            pruned[name] = {"kernel": kernel, "bias": bias}
            break
        out = np.asarray(jax.nn.relu(activations[name]["__call__"][0]))
        count = wanted[kernel.shape[-1]]
        kept = np.sort(np.argsort(-out.mean(axis=(0, 1, 2)), kind="stable")[:count])
        pruned[name] = {"kernel": kernel[..., kept], "bias": bias[kept]}
        kept_inputs = kept
    return pruned


# --- Distillation ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Settings of one distillation run. Frozen and hashable (bound into the step)."""

    width: float = DEFAULT_ENCODER_WIDTH  # channel multiplier of VGG19 (0.25: 1/16 the FLOPs)
    size: int = 128               # side of the square crops, px
    batch: int = 8                # images per step, over all devices and hosts
    steps: int = 20_000
    learning_rate: float = 1e-4   # Adam
    lr_decay: float = 1e-4        # inverse-time decay: lr / (1 + decay * step)
    seed: int = 0
    checkpoint_every: int = 500
    keep: int = 3
    log_every: int = 10

    def __post_init__(self):
        check_settings(self, counts=("batch", "steps", "keep", "log_every"),
                       nonnegative_ints=("checkpoint_every", "seed"),
                       positive_numbers=("learning_rate",),
                       nonnegative_numbers=("lr_decay",))
        if not (isinstance(self.width, (int, float)) and 0 < self.width <= 1):
            raise ConfigError(f"width must be in (0, 1], got {self.width!r}")
        if not isinstance(self.size, int) or self.size < 32 or self.size % 8:
            raise ConfigError(f"size must be a multiple of 8 and >= 32, got {self.size!r}")


class EncoderState(NamedTuple):
    params: Any
    opt_state: Any
    step: Array


def make_optimizer(cfg: EncoderConfig) -> optax.GradientTransformation:
    return optax.adam(lambda step: cfg.learning_rate / (1.0 + cfg.lr_decay * step))


def distill_loss(params: dict, vgg_params: ParamTree,
                 images: Array) -> tuple[Array, dict[str, Array]]:
    """(mean loss, per-layer losses): the mean squared error of the embedded small features
    against VGG19's at relu1_1 .. relu4_1, in mean-activation units, summed over layers."""
    target = jax.lax.stop_gradient(normalised_features(vgg_params, images))
    small = normalised_features(conv_params(params), images)
    parts = {layer: jnp.square(embed(small[layer], params["embed"][layer]) - target[layer])
             .mean() for layer in DISTILL_LAYERS}
    return cast(Array, sum(parts.values())), parts  # an Array: there are four layers


def make_encoder_step_fn(cfg: EncoderConfig) -> Callable:
    """The pure step(vgg_params, state, images_uint8) -> (state, metrics)."""
    tx = make_optimizer(cfg)

    def step(vgg_params: ParamTree, state: EncoderState,
             images: Array) -> tuple[EncoderState, dict[str, Array]]:
        (loss, parts), grads = jax.value_and_grad(distill_loss, has_aux=True)(
            state.params, vgg_params, images.astype(jnp.float32) / 255.0)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & all_finite((params, opt_state))
        params, opt_state = keep_if_finite(finite, (params, opt_state),
                                           (state.params, state.opt_state))
        metrics = {"loss": loss, **{f"relu{layer[5]}_1": v for layer, v in parts.items()},
                   "grad_norm": optax.tree.norm(grads), "finite": finite}
        return EncoderState(params, opt_state, state.step + 1), metrics

    return step


# --- The encoder's file --------------------------------------------------------------------

def check_encoder(params: ParamTree, width: float, context: str) -> None:
    """ModelError starting with `context` unless the params are a width-`width` encoder's."""
    check_shapes(params, encoder_shapes(width), context, f"for a width {width:g} encoder")


def encoder_width_of(header: dict, context: str, key: str = "width") -> float:
    width = header.get(key)
    if not (isinstance(width, (int, float)) and not isinstance(width, bool) and 0 < width <= 1):
        raise ModelError(f"{context}: {key} must be in (0, 1], got {width!r}")
    return float(width)


def save_encoder(path: str | os.PathLike, params: dict, header: dict) -> Path:
    """Write a distilled encoder (header needs `width`) atomically."""
    header = {"architecture": ENCODER_ARCHITECTURE, "training": {}, "data_count": None,
              **header}
    check_encoder(params, encoder_width_of(header, f"cannot save {Path(path).name}"),
                  f"cannot save {Path(path).name}")
    return write_param_file(path, params, header)


def load_encoder(path: str | os.PathLike) -> tuple[dict, dict]:
    """(params, header) of a distilled encoder file; ModelError names any problem."""
    params, header, where = read_param_file(path)
    if header.get("architecture") != ENCODER_ARCHITECTURE:
        raise ModelError(f"{where}: not a distilled encoder (architecture "
                         f"{header.get('architecture')!r}, expected {ENCODER_ARCHITECTURE!r})")
    check_encoder(params, encoder_width_of(header, where), where)
    return params, header


# --- Training ------------------------------------------------------------------------------

class EncoderTrainResult(NamedTuple):
    params: dict
    header: dict
    steps: int
    seconds: float
    skipped_steps: int


def sample_images(paths: Sequence[str | os.PathLike], size: int, count: int = 16) -> np.ndarray:
    """Centre crops (count, size, size, 3) in [0, 1] of the first readable of `paths`, spread
    over the list: the images the pruning and the least-squares fit look at."""
    from jaxstyle.data import read_rgb_uint8
    from jaxstyle.images import resize

    picked = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int)]
    crops = []
    for path in dict.fromkeys(picked):
        try:
            image = read_rgb_uint8(str(path), size).astype(np.float32) / 255.0
        except Exception:  # noqa: BLE001 - an unreadable sample is skipped, as training does
            continue
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        crops.append(np.asarray(resize(image[top:top + side, left:left + side], (size, size))))
    if not crops:
        raise ConfigError("no readable image to start the encoder from")
    return np.stack(crops)


def train_encoder(vgg_params: ParamTree, paths: Sequence[str | os.PathLike],
                  output: str | os.PathLike,
                  cfg: EncoderConfig, *, checkpoint_dir: str | os.PathLike | None = None,
                  resume: bool = False, log_path: str | os.PathLike | None = None,
                  worker_count: Optional[int] = None, mesh: Optional[Mesh] = None,
                  on_log: Optional[Callable[[list[dict]], None]] = None,
                  time_limit: Optional[float] = None,
                  init: Optional[tuple[dict, str]] = None) -> EncoderTrainResult:
    """Distil a small encoder from VGG19 on `paths` (photos and paintings) into `output`.

    init: (params, description) of an encoder of the same width to continue from; otherwise
    the pruned VGG19 (`initial_encoder`). Checkpoints, resume, the log, Ctrl-C and time_limit
    work as for the other trained networks (`jaxstyle.training.run_training`).
    """
    from jaxstyle.data import close_iterator, make_loader
    from jaxstyle.mesh import global_batch

    output = Path(output)
    processes = jax.process_count()
    if cfg.batch % processes:
        raise ConfigError(f"batch {cfg.batch} does not split over {processes} processes")
    step = ParallelStep(make_encoder_step_fn(cfg), cfg.batch,
                        training_mesh() if mesh is None else mesh)
    whole, split = step.replicated, step.batch_sharding
    assert split is not None  # the step has a mesh (training_mesh by default)
    if init is None:
        params = initial_encoder(vgg_params, sample_images(paths, cfg.size), cfg.width)
        started_from = {"initialised_from": "VGG19, pruned"}
    else:
        params, started_from = init[0], {"initialised_from": init[1]}
    check_encoder(params, cfg.width, "--init")
    params = jax.tree.map(lambda x: jnp.array(x, jnp.float32, copy=True), params)
    state = jax.device_put(EncoderState(params, make_optimizer(cfg).init(params),
                                        jnp.zeros([], jnp.int32)), whole)
    vgg_params = jax.device_put(conv_params(vgg_params), whole)
    record = {"width": cfg.width, "data_count": len(paths), "seconds": 0.0}
    header = {}

    def save_model_file(state, steps, seconds, interrupted):
        training = {**dataclasses.asdict(cfg), "steps_planned": cfg.steps, "steps": steps,
                    "seconds": round(seconds, 1), "devices": jax.device_count(),
                    "backend": jax.default_backend(), **started_from,
                    **({"interrupted": True} if interrupted else {})}
        training.pop("width")
        header.update({"width": cfg.width, "training": training, "data_count": len(paths)})
        if jax.process_index() == 0:
            save_encoder(output, host_copy(state.params), header)

    loader = iter(make_loader(paths, cfg.size, cfg.batch // processes, cfg.seed, worker_count))
    try:
        result = run_training(
            lambda state, batch: step(vgg_params, state, batch), state,
            lambda: global_batch(next(loader)["image"], split, cfg.batch), {"dataset": loader},
            LoopSettings(cfg.steps, cfg.batch, cfg.checkpoint_every, cfg.keep, 0,
                         cfg.log_every), output, record=record,
            must_match={"width": "encoder width"}, save_model_file=save_model_file,
            checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, resume=resume,
            log_path=Path(log_path) if log_path else None, on_log=on_log,
            time_limit=time_limit)
    finally:
        close_iterator(loader)
    return EncoderTrainResult(host_copy(result.state.params), header, result.steps,
                              result.seconds, result.skipped_steps)


__all__ = ["DEFAULT_ENCODER_WIDTH", "DISTILL_LAYERS", "ENCODER_ARCHITECTURE", "ENCODER_CONVS",
           "EncoderConfig", "EncoderState", "check_encoder", "compose_embedding",
           "conv_params", "distill_loss", "embed", "encoder_shapes", "fit_embeddings",
           "initial_encoder", "load_encoder", "make_encoder_step_fn", "prune_decoder",
           "prune_vgg", "save_encoder", "train_encoder"]
