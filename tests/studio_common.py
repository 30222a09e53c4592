"""What the studio's tests share: a tiny model and decoder, a tiny studio, PNG bytes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from conftest import random_image
from jaxstyle.arbitrary.decoder import ENCODER_LAYER, FEATURE_MEANS, init_decoder
from jaxstyle.arbitrary.decoderfile import save_decoder
from jaxstyle.demo import DEMO_STYLE
from jaxstyle.feedforward import init_params, save_model
from jaxstyle.serve import Studio, UploadStore

WIDTH = 0.125


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.asarray(image) * 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def tiny_models(folder: Path) -> Path:
    """A 2-style 0.125-width model `tiny.jxs` (styles waves, dots) and a decoder `any.jxs`."""
    params = init_params(0, 2, WIDTH, size=32)
    # "waves" was trained on the demo painting (a Refine finds it by the file's sha256);
    # "dots" on a painting no studio has.
    demo = hashlib.sha256(DEMO_STYLE.read_bytes()).hexdigest()
    save_model(folder / "tiny.jxs", params, {"width": WIDTH, "styles": [
        {"name": "waves", "sha256": demo, "size": [32, 32]},
        {"name": "dots", "sha256": "1" * 64, "size": [32, 32]}]})
    decoder = jax.tree.map(np.asarray, init_decoder(0, WIDTH))
    # The tiny VGG gives O(1) features where the decoder expects relu4_1's ~600 (see
    # test_arbitrary's decoder fixture), so its first conv is scaled back up.
    decoder["conv0"]["kernel"] = decoder["conv0"]["kernel"] * FEATURE_MEANS[ENCODER_LAYER]
    save_decoder(folder / "any.jxs", decoder, {"width": WIDTH})
    return folder


def tiny_studio(vgg_params, models_dir: Path, paintings_dir: Path, rng) -> Studio:
    """A studio over the tiny models, with one 48x40 painting `swirls.png` besides the demo's."""
    painting = paintings_dir / "swirls.png"
    painting.write_bytes(png(random_image(rng, 40, 48)[0]))
    return Studio(vgg_params=vgg_params, paintings=(painting,), models_dir=models_dir,
                  uploads=UploadStore(max_bytes=300_000, max_pixels=2_000_000))
