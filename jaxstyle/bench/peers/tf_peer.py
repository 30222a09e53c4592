"""The seed's TensorFlow step: a `tf.function` with a variable image, GradientTape, Keras Adam.

The seed builds a `tf.keras` VGG19 and calls it inside the step; here the same ops (conv,
bias add, ReLU, pooling) are written with `tf.nn` on non-trainable variables, which traces to
the same graph without constructing a Keras model or downloading weights.

Threads: nothing is set. TensorFlow's default intra-op pool has one thread per logical core.
`TF_CPP_MIN_LOG_LEVEL` defaults to 2 (warnings and errors only) unless already set, to keep
TensorFlow's start-up notes out of benchmark output; it affects TensorFlow alone.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jaxstyle.bench.peers import (
    check_config,
    check_images,
    missing_framework,
    needed_params,
    normalised_weights,
)
from jaxstyle.config import StyleConfig
from jaxstyle.vgg import BGR_MEAN
from jaxstyle.weights import Params


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise missing_framework("tensorflow", exc) from None
    return tf


class TFStep:
    """The seed's optimisation state (variable image, Keras Adam) and its `tf.function` step."""

    name = "tf"

    def __init__(self, tf: Any, params: Params, content: np.ndarray, style: np.ndarray,
                 image: np.ndarray, cfg: StyleConfig):
        self._tf = tf
        self._cfg = cfg
        # Non-trainable, so the tape never watches them: only the image's gradient is computed.
        self._weights = [
            (name, tf.Variable(layer["kernel"], trainable=False, name=f"{name}_kernel"),
             tf.Variable(layer["bias"], trainable=False, name=f"{name}_bias"))
            for name, layer in params.items()
        ]
        self._wanted = set(cfg.content_layers) | set(cfg.style_layers)
        self._content_weights = normalised_weights(cfg.content_layers, cfg.content_layer_weights)
        self._style_weights = normalised_weights(cfg.style_layers, cfg.style_layer_weights)

        # Targets are computed once, outside the step, as the seed does.
        content_features = self._features(tf.constant(content))
        style_features = self._features(tf.constant(style))
        self._content_targets = [tf.constant(content_features[name])
                                 for name in cfg.content_layers]
        self._style_targets = [tf.constant(self._gram(style_features[name]))
                               for name in cfg.style_layers]

        self._image = tf.Variable(image, name="image")
        self._optimizer = tf.keras.optimizers.Adam(
            learning_rate=cfg.learning_rate, beta_1=cfg.beta1, beta_2=cfg.beta2,
            epsilon=cfg.epsilon)
        # Create the slots now rather than while tracing the step.
        self._optimizer.build([self._image])
        self._train_step = tf.function(self._train_step_fn)
        self._loss = tf.function(self._total_loss)

    def _features(self, image):
        """RGB image in [0, 1] -> {layer: activation} for the content and style layers."""
        tf = self._tf
        x = image * 255.0
        x = tf.reverse(x, axis=[-1]) - tf.constant(BGR_MEAN, tf.float32)
        outputs = {}
        for name, kernel, bias in self._weights:
            if name.endswith("_conv1") and not name.startswith("block1_"):
                pool = tf.nn.max_pool2d if self._cfg.pooling == "max" else tf.nn.avg_pool2d
                x = pool(x, ksize=2, strides=2, padding="VALID")
            x = tf.nn.relu(tf.nn.bias_add(
                tf.nn.conv2d(x, kernel, strides=1, padding="SAME"), bias))
            if name in self._wanted:
                outputs[name] = x
        return outputs

    def _gram(self, features):
        tf = self._tf
        gram = tf.linalg.einsum("bijc,bijd->bcd", features, features)
        shape = tf.shape(features)
        return gram / tf.cast(shape[1] * shape[2], tf.float32)

    def _total_loss(self, image):
        tf, cfg = self._tf, self._cfg
        features = self._features(image)
        content = tf.add_n([
            w * tf.reduce_mean(tf.square(features[name] - target))
            for name, w, target in zip(cfg.content_layers, self._content_weights,
                                       self._content_targets, strict=True)])
        style = tf.add_n([
            w * tf.reduce_mean(tf.square(self._gram(features[name]) - target))
            for name, w, target in zip(cfg.style_layers, self._style_weights,
                                       self._style_targets, strict=True)])
        tv = tf.reduce_sum(tf.image.total_variation(image))  # batch of one -> scalar
        return cfg.content_weight * content + cfg.style_weight * style + cfg.tv_weight * tv

    def _train_step_fn(self):
        tf, image = self._tf, self._image
        with tf.GradientTape() as tape:
            loss = self._total_loss(image)
        grad = tape.gradient(loss, image)
        self._optimizer.apply_gradients([(grad, image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return loss

    def loss(self) -> float:
        return float(self._loss(self._image))

    def step(self) -> float:
        return float(self._train_step())

    def image(self) -> np.ndarray:
        return self._image.numpy()


def build(params: Params, content: np.ndarray, style: np.ndarray, cfg: StyleConfig,
          image: np.ndarray | None = None) -> TFStep:
    """The seed's TensorFlow step starting from `image` (default: the content image).

    content, style, image: (1, H, W, 3) float32 RGB in [0, 1]. Raises PeerUnavailable when
    TensorFlow is not installed, ConfigError for settings the peers do not implement.
    """
    check_config(cfg)
    content, style, image = check_images(content, style, image)
    tf = _import_tf()
    return TFStep(tf, needed_params(params, cfg), content, style, image, cfg)
