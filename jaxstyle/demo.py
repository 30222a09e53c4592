"""The demo's inputs, shipped in the package: a CC0 photo and a public-domain painting.

Both are credited in `jaxstyle/assets/README.md`; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxstyle.images import load_image

ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_CONTENT = ASSETS / "chelsea.jpg"  # Chelsea the cat, Stefan van der Walt, CC0
DEMO_STYLE = ASSETS / "starry_night.jpg"  # The Starry Night, Vincent van Gogh 1889, public domain


def demo_content(max_dim: int | None = None) -> np.ndarray:
    """The demo photo (451x300 at most): (H, W, 3) float32 in [0, 1]."""
    return load_image(DEMO_CONTENT, max_dim, what="demo content")


def demo_style(max_dim: int | None = None) -> np.ndarray:
    """The demo painting (512x320 at most): (H, W, 3) float32 in [0, 1]."""
    return load_image(DEMO_STYLE, max_dim, what="demo style")
