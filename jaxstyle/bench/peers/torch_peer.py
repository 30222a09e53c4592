"""The seed's step in PyTorch: eager (`torch`) or with `torch.compile` (`torch-compile`).

Tensors are NCHW in `channels_last` memory: oneDNN's CPU convolutions take it without layout
conversions between layers (about 15% faster here at 256 px than contiguous NCHW). The
weights never require grad, so backward computes only the image's gradient.

Adam is written out rather than `torch.optim.Adam`, which adds epsilon to the bias-corrected
sqrt(v_hat); this is Keras's form (eps added to the uncorrected sqrt(v)), so losses match the
TensorFlow seed step for step.

Threads: nothing is set. PyTorch's default intra-op pool has one thread per physical core
(`torch.get_num_threads()`); changing it with `torch.set_num_threads` would affect every later
torch call in the process, and it is not needed here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jaxstyle.bench.peers import (
    PeerUnavailable,
    check_config,
    check_images,
    missing_framework,
    needed_params,
    normalised_weights,
)
from jaxstyle.config import StyleConfig
from jaxstyle.vgg import BGR_MEAN
from jaxstyle.weights import Params


def _import_torch():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as exc:
        raise missing_framework("torch", exc) from None
    return torch, F


def _to_nchw(torch: Any, image: np.ndarray) -> Any:
    """(1, H, W, 3) NHWC numpy -> (1, 3, H, W) torch tensor in channels_last memory."""
    return torch.from_numpy(image).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last)


class TorchStep:
    """Image, Adam moments and step count as tensors, and the (optionally compiled) step."""

    def __init__(self, params: Params, content: np.ndarray, style: np.ndarray,
                 image: np.ndarray, cfg: StyleConfig, compile: bool,
                 compile_mode: str | None):
        torch, F = _import_torch()
        self._torch, self._F, self._cfg = torch, F, cfg
        self.name = "torch-compile" if compile else "torch"
        # HWIO -> OIHW, then channels_last like the activations.
        self._weights = [
            (name,
             torch.from_numpy(np.ascontiguousarray(layer["kernel"].transpose(3, 2, 0, 1)))
             .contiguous(memory_format=torch.channels_last),
             torch.from_numpy(layer["bias"]))
            for name, layer in params.items()
        ]
        self._wanted = set(cfg.content_layers) | set(cfg.style_layers)
        self._mean = torch.tensor(BGR_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self._content_weights = normalised_weights(cfg.content_layers, cfg.content_layer_weights)
        self._style_weights = normalised_weights(cfg.style_layers, cfg.style_layer_weights)

        with torch.no_grad():
            content_features = self._features(_to_nchw(torch, content))
            style_features = self._features(_to_nchw(torch, style))
            self._content_targets = [content_features[name] for name in cfg.content_layers]
            self._style_targets = [self._gram(style_features[name])
                                   for name in cfg.style_layers]

        self._image = _to_nchw(torch, image)
        self._m = torch.zeros_like(self._image)
        self._v = torch.zeros_like(self._image)
        self._t = torch.zeros((), dtype=torch.float32)

        # The eager functions, or their torch.compile'd forms (`_compile`).
        self._loss_and_grad: Callable[..., Any] = self._loss_and_grad_fn
        self._update: Callable[..., Any] = self._update_fn
        if compile:
            self._compile(compile_mode)

    def _compile(self, mode: str | None) -> None:
        """Compile both halves of the step and run them once, so compile errors surface here."""
        torch = self._torch
        try:
            loss_fn = torch.compile(self._total_loss, mode=mode, dynamic=False)
            self._loss_and_grad = lambda image: self._loss_and_grad_fn(image, loss_fn)
            self._update = torch.compile(self._update_fn, mode=mode, dynamic=False)
            _, grad = self._loss_and_grad(self._image)
            # Warm the update on copies, so building does not move the image; under no_grad
            # as in step(), since grad mode is part of what a compiled graph is guarded on.
            with torch.no_grad():
                self._update(self._image.clone(), grad, self._m.clone(), self._v.clone(),
                             self._t.clone())
        except Exception as exc:  # inductor raises many types (no compiler, codegen errors)
            raise PeerUnavailable(f"torch.compile failed: {type(exc).__name__}: {exc}") from exc

    def _features(self, image):
        """(1, 3, H, W) RGB in [0, 1] -> {layer: post-ReLU activation} for the loss layers."""
        F = self._F
        x = (image * 255.0).flip(1) - self._mean  # Keras 'caffe': RGB -> BGR, minus mean
        outputs = {}
        for name, kernel, bias in self._weights:
            if name.endswith("_conv1") and not name.startswith("block1_"):
                x = (F.max_pool2d if self._cfg.pooling == "max" else F.avg_pool2d)(x, 2, 2)
            x = F.relu(F.conv2d(x, kernel, bias, padding=1))
            if name in self._wanted:
                outputs[name] = x
        return outputs

    def _gram(self, features):
        _, _, h, w = features.shape
        return self._torch.einsum("bchw,bdhw->bcd", features, features) / (h * w)

    def _total_loss(self, image):
        cfg = self._cfg
        features = self._features(image)
        content = sum(w * (features[name] - target).square().mean()
                      for name, w, target in zip(cfg.content_layers, self._content_weights,
                                                 self._content_targets, strict=True))
        style = sum(w * (self._gram(features[name]) - target).square().mean()
                    for name, w, target in zip(cfg.style_layers, self._style_weights,
                                               self._style_targets, strict=True))
        # tf.image.total_variation: L1 differences of vertical and horizontal neighbours.
        tv = ((image[:, :, 1:, :] - image[:, :, :-1, :]).abs().sum()
              + (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().sum())
        return cfg.content_weight * content + cfg.style_weight * style + cfg.tv_weight * tv

    def _loss_and_grad_fn(self, image, loss_fn=None):
        leaf = image.detach().requires_grad_(True)
        loss = (loss_fn or self._total_loss)(leaf)
        (grad,) = self._torch.autograd.grad(loss, leaf)
        return loss.detach(), grad

    def _update_fn(self, image, grad, m, v, t):
        """Keras Adam on `image` in place, then clip to [0, 1]; `t` is the step count."""
        torch, cfg = self._torch, self._cfg
        t.add_(1.0)
        # Bias corrections in float32, as Keras computes them.
        alpha = cfg.learning_rate * torch.sqrt(1.0 - torch.pow(cfg.beta2, t)) / (
            1.0 - torch.pow(cfg.beta1, t))
        m.add_((grad - m) * (1.0 - cfg.beta1))
        v.add_((grad.square() - v) * (1.0 - cfg.beta2))
        image.sub_(m * alpha / (v.sqrt() + cfg.epsilon))
        image.clamp_(0.0, 1.0)

    def loss(self) -> float:
        with self._torch.no_grad():
            return float(self._total_loss(self._image))

    def step(self) -> float:
        loss, grad = self._loss_and_grad(self._image)
        with self._torch.no_grad():
            self._update(self._image, grad, self._m, self._v, self._t)
        return float(loss)

    def image(self) -> np.ndarray:
        return self._image.permute(0, 2, 3, 1).numpy().copy()


def build(params: Params, content: np.ndarray, style: np.ndarray, cfg: StyleConfig,
          image: np.ndarray | None = None, compile: bool = False,
          compile_mode: str | None = None) -> TorchStep:
    """The seed's step in PyTorch, starting from `image` (default: the content image).

    content, style, image: (1, H, W, 3) float32 RGB in [0, 1]. `compile=True` wraps the loss,
    its backward and the update in `torch.compile` (with `mode=compile_mode`) and compiles
    them here. Raises PeerUnavailable when torch is missing or compilation fails,
    ConfigError for settings the peers do not implement.
    """
    check_config(cfg)
    content, style, image = check_images(content, style, image)
    return TorchStep(needed_params(params, cfg), content, style, image, cfg, compile,
                     compile_mode)
