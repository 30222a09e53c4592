"""An independent float64 NumPy VGG19 (no lax.conv), the reference several tests compare to."""

from __future__ import annotations

import numpy as np

from jaxstyle.vgg import LAYER_NAMES

BGR_MEAN = np.array([103.939, 116.779, 123.68])


def np_preprocess(images):
    """Keras 'caffe' mode: RGB [0, 1] -> BGR [0, 255] minus the ImageNet means."""
    return images[..., ::-1] * 255.0 - BGR_MEAN


def np_conv_relu(x, kernel, bias):
    """3x3 SAME conv as a sum of nine shifted matrix products, + bias, ReLU."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[3]))
    for dy in range(3):
        for dx in range(3):
            out += padded[:, dy:dy + h, dx:dx + w, :] @ kernel[dy, dx]
    return np.maximum(out + bias, 0)


def np_pool(x, kind):
    n, h, w, c = x.shape
    windows = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return windows.max(axis=(2, 4)) if kind == "max" else windows.mean(axis=(2, 4))


def np_vgg(params, images, layers, pooling="max"):
    """{layer: activations} for `layers`, running only as deep as the deepest one."""
    x = np_preprocess(images.astype(np.float64))
    out = {}
    for name in LAYER_NAMES[: max(LAYER_NAMES.index(n) for n in layers) + 1]:
        if name.endswith("conv1") and name != "block1_conv1":
            x = np_pool(x, pooling)
        x = np_conv_relu(x, params[name]["kernel"].astype(np.float64),
                         params[name]["bias"].astype(np.float64))
        out[name] = x
    return {name: out[name] for name in layers}
