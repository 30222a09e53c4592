"""The README's video strip: consecutive frames of one known-motion clip, one row per model.

    python scripts/make_video_strip.py /tmp/ft/s5e9.jxs /tmp/ft/plain.jxs --style starry_night \
        --photo coffee.jpg --camera pan0.5 --frames 4 --crop-width 176 --out docs/video_strip.png

Each model's frames go in one row (the first model on top), each cropped about its centre to
`--crop-width` after stylizing (the network sees the whole frame). The PNG is palette-quantised
(256 colours, no dithering) so the README stays light; the rows are quantised with one shared
palette, so any difference between them comes from the models and not from the palette.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle.feedforward.apply import make_stylizer, style_weights_for  # noqa: E402
from jaxstyle.feedforward.modelfile import load_model  # noqa: E402
from jaxstyle.flicker import make_motion_clip  # noqa: E402
from jaxstyle.video import to_uint8  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"
CAMERAS = {"pan0.5": ("pan", 0.5), "pan2": ("pan", 2.0), "zoom": ("zoom", 1.0)}
GAP = 4  # white pixels between frames and rows


def stylized_frames(model: Path, style: str, frames: np.ndarray) -> np.ndarray:
    """The model's uint8 outputs for the frames, all in one batch."""
    params, header = load_model(model)
    weights = style_weights_for(header, style)
    images = frames.astype(np.float32) / 255.0
    batch_weights = np.broadcast_to(weights, (len(frames), len(weights)))
    return to_uint8(np.asarray(make_stylizer(params, header)(images, batch_weights)))


def strip(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of frames (each (T, H, W, 3) uint8) laid out on white, GAP px apart."""
    count, height, width = rows[0].shape[:3]
    canvas = np.full((len(rows) * (height + GAP) - GAP, count * (width + GAP) - GAP, 3), 255,
                     np.uint8)
    for r, frames in enumerate(rows):
        for t, frame in enumerate(frames):
            top, left = r * (height + GAP), t * (width + GAP)
            canvas[top:top + height, left:left + width] = frame
    return canvas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="one row each, top to bottom")
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--photo", default="coffee.jpg")
    parser.add_argument("--camera", choices=tuple(CAMERAS), default="pan0.5")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--crop-width", type=int, default=176, help="0: whole frames")
    parser.add_argument("--size", type=int, nargs=2, default=(144, 256), metavar=("H", "W"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "video_strip.png"))
    args = parser.parse_args()
    photo = np.asarray(Image.open(IMAGES / args.photo).convert("RGB"))
    motion, speed = CAMERAS[args.camera]
    clip, _ = make_motion_clip(photo, tuple(args.size), args.frames, motion, speed)
    rows = [stylized_frames(Path(m), args.style, clip) for m in args.models]
    if args.crop_width:
        left = (clip.shape[2] - args.crop_width) // 2
        rows = [frames[:, :, left:left + args.crop_width] for frames in rows]
    picture = Image.fromarray(strip(rows))
    picture.quantize(256, dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(f"{args.out}: {picture.width}x{picture.height} px, "
          f"{Path(args.out).stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    main()
