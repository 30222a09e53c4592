"""The seed's style-transfer step in peer frameworks, for `jaxstyle bench --peer tf|torch`.

Each peer module (`tf_peer`, `torch_peer`) has `build(params, content, style, cfg, **options)`
returning a `PeerStep` that owns its image and optimizer state, so a benchmark can time the
same step as jaxstyle's in the same process. The frameworks are imported only inside
`build`; a missing one raises `PeerUnavailable`.

Every peer computes, in float32 (the seed's TensorFlow tutorial maths):
    features  VGG19 with Keras 'caffe' preprocessing, run only as deep as the deepest layer
    content   sum_l w_l * mean((F_l - P_l)^2), w_l normalised to sum 1 (None: equal mean)
    style     sum_l w_l * mean((G_l - A_l)^2), G = einsum('bijc,bijd->bcd', F, F) / (H*W)
    tv        tf.image.total_variation: sum of |vertical| + |horizontal| neighbour differences
    total     content_weight * content + style_weight * style + tv_weight * tv
then one Keras-semantics Adam update of the image (alpha_t = lr sqrt(1-b2^t) / (1-b1^t),
x -= alpha_t m / (sqrt(v) + eps)) and a clip to [0, 1].
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.vgg import LAYER_NAMES, MIN_SIDE
from jaxstyle.weights import Params, validate_params

PEERS = ("tf", "torch", "torch-compile")
INSTALL_HINT = 'pip install -e ".[peers]"'


class PeerUnavailable(JaxstyleError, ImportError):
    """A peer framework is not installed, or (torch.compile) cannot compile the step."""


class PeerStep(Protocol):
    """One peer's optimisation state and its step; every method synchronises."""

    name: str

    def loss(self) -> float:
        """Total loss of the current image, without updating it."""

    def step(self) -> float:
        """One loss + gradient + Adam + clip step; returns that step's (pre-update) loss."""

    def image(self) -> np.ndarray:
        """The current image: (1, H, W, 3) float32 in [0, 1]."""


def missing_framework(framework: str, exc: ImportError) -> PeerUnavailable:
    """The error raised when `framework` cannot be imported."""
    return PeerUnavailable(f"peer {framework!r} needs {framework}, which cannot be imported "
                           f"({exc}); install the peers with {INSTALL_HINT}")


def check_images(content: np.ndarray, style: np.ndarray,
                 image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check (1, H, W, 3) images and return float32 copies; `image` defaults to the content."""
    checked: list[np.ndarray] = []
    for label, value in (("content", content), ("style", style), ("image", image)):
        if value is None:
            checked.append(checked[0].copy())
            continue
        value = np.asarray(value, dtype=np.float32)
        if value.ndim != 4 or value.shape[0] != 1 or value.shape[-1] != 3:
            raise ValueError(f"{label} must be (1, H, W, 3), got shape {value.shape}")
        if min(value.shape[1:3]) < MIN_SIDE:
            raise ValueError(f"{label} must be at least {MIN_SIDE}x{MIN_SIDE}, got {value.shape}")
        checked.append(value.copy())
    if checked[2].shape != checked[0].shape:
        raise ValueError(f"image must have the content's shape {checked[0].shape}, "
                         f"got {checked[2].shape}")
    return checked[0], checked[1], checked[2]


def check_config(cfg: StyleConfig) -> None:
    """Raise ConfigError for settings that change the step in ways the peers do not implement.

    Settings outside the step (epochs, image sizes, init, colour preservation, scales) are
    ignored; so is `remat`, which saves memory but does not change the numbers.
    """
    if cfg.optimizer != "adam":
        raise ConfigError(f"peers implement only the seed's Keras Adam, not {cfg.optimizer!r}")
    if cfg.precision != "fp32":
        raise ConfigError(f"peers compute in fp32 only, not {cfg.precision!r}")
    if cfg.ema is not None:
        raise ConfigError("peers do not keep an image EMA; set ema=None")
    if cfg.style_blend is not None and len(cfg.style_blend) != 1:
        raise ConfigError("peers take one style image; style_blend must be None")


def normalised_weights(layers: tuple[str, ...],
                       weights: tuple[float, ...] | None) -> tuple[float, ...]:
    """Per-layer loss weights summing to 1 (None: the seed's equal mean)."""
    if weights is None:
        return tuple(1.0 / len(layers) for _ in layers)
    total = float(sum(weights))
    return tuple(float(w) / total for w in weights)


def layers_to_run(cfg: StyleConfig) -> tuple[str, ...]:
    """The conv layers up to the deepest content or style layer, in network order."""
    deepest = max(LAYER_NAMES.index(name) for name in cfg.content_layers + cfg.style_layers)
    return LAYER_NAMES[: deepest + 1]


def needed_params(params: Params, cfg: StyleConfig) -> Params:
    """Validated float32 params of only the layers the loss needs."""
    params = validate_params(params)
    return {name: params[name] for name in layers_to_run(cfg)}


def build(peer: str, params: Params, content: np.ndarray, style: np.ndarray,
          cfg: StyleConfig, **options: Any) -> PeerStep:
    """Build the named peer ('tf', 'torch' or 'torch-compile'); see the peer modules."""
    if peer == "tf":
        from jaxstyle.bench.peers import tf_peer
        return tf_peer.build(params, content, style, cfg, **options)
    if peer in ("torch", "torch-compile"):
        from jaxstyle.bench.peers import torch_peer
        return torch_peer.build(params, content, style, cfg, compile=peer == "torch-compile",
                                **options)
    raise ConfigError(f"unknown peer {peer!r}; choose from {', '.join(PEERS)}")
