"""Image files <-> float32 RGB arrays in [0, 1], and the resizing the tool needs.

Loading follows the seed (any Pillow-readable file, RGB, longer side limited to max_dim) with
two departures: EXIF orientation is applied, and images are only ever shrunk (the seed also
enlarges small images to 512 px, which adds pixels to optimise but no detail).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxstyle.errors import ImageError
from jaxstyle.files import atomic_write
from jaxstyle.vgg import MIN_SIDE

DEFAULT_MAX_PIXELS = 50_000_000  # refuse bigger files before decoding them (memory guard)
# Files a folder scan picks up as images (by extension, any case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def image_files_under(root: str | os.PathLike[str]) -> list[Path]:
    """Every image file under a folder (recursive, by extension, hidden entries skipped), sorted.

    Symlinked subfolders are followed (datasets are often linked in from another disk), each
    real folder once, so a link back up the tree cannot loop.
    """
    found: list[Path] = []
    seen = {os.path.realpath(root)}
    for folder, subfolders, files in os.walk(root, followlinks=True):
        # Pruning in place stops os.walk from descending into hidden folders (.git, .cache, ...)
        # and into folders already walked through another link.
        kept = []
        for name in subfolders:
            real = os.path.realpath(os.path.join(folder, name))
            if not name.startswith(".") and real not in seen:
                seen.add(real)
                kept.append(name)
        subfolders[:] = kept
        found.extend(Path(folder, name) for name in files
                     if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def expand_image_paths(patterns: Iterable[str | os.PathLike[str]],
                       what: str = "input") -> list[Path]:
    """Files, folders (every image under them) and glob patterns -> image paths, in order.

    A plain path that does not exist is kept, so that loading it reports it; a glob or a
    folder that matches no image is an ImageError.
    """
    import glob

    paths: list[Path] = []
    for pattern in map(str, patterns):
        if Path(pattern).is_dir():
            found = image_files_under(pattern)
            if not found:
                raise ImageError(f"{what} {pattern}: folder holds no images")
            paths.extend(found)
        elif glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True)
                           if Path(p).is_file())
            if not found:
                raise ImageError(f"{what} {pattern}: no file matches")
            paths.extend(found)
        else:
            paths.append(Path(pattern))
    return list(dict.fromkeys(paths))  # a file named twice is one job


def _to_float_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) float32 in [0, 1]; transparency is composited over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        # 16-bit greyscale PNG/TIFF; 'I' files with 8-bit content stay on the 0-255 scale.
        scale = 65535.0 if values.max(initial=0) > 255 else 255.0
        grey = np.clip(values / scale, 0, 1).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "F":
        grey = np.asarray(image, dtype=np.float32)
        if grey.max(initial=0) > 1.0:
            grey = grey / 255.0
        return np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased (Lanczos) resize of (H, W, C) float32 to (height, width)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F")
                           .resize((width, height), Image.Resampling.LANCZOS))
                for c in range(image.shape[2])]
    return np.clip(np.stack(channels, axis=2), 0, 1).astype(np.float32)


def fit_size(height: int, width: int, max_dim: int | None) -> tuple[int, int]:
    """Size with the longer side at most max_dim, aspect kept (never enlarges)."""
    if max_dim is None or max(height, width) <= max_dim:
        return height, width
    scale = max_dim / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def working_size(path: str | os.PathLike, max_dim: int | None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> tuple[int, int]:
    """(height, width) that `load_image(path, max_dim)` will return, read from the header only
    (EXIF rotations by 90 degrees swap the sides), so jobs can be planned before loading."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: transposed
                width, height = height, width
    except FileNotFoundError:
        raise ImageError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{what} {path}: is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} {path}: not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{what} {path}: corrupt or truncated image ({exc})") from None
    if width * height > max_pixels:
        raise ImageError(f"{what} {path}: {width}x{height} px is over the {max_pixels:,}-pixel "
                         "limit (--max-pixels)")
    size = fit_size(height, width, max_dim)
    if min(size) < MIN_SIDE:
        raise ImageError(f"{what} {path}: {size[1]}x{size[0]} px (after --max-dim) is too small;"
                         f" each side needs at least {MIN_SIDE} px")
    return size


def _pixels(image: Image.Image) -> np.ndarray:
    """(H, W, 3): uint8 for 8-bit images (most files; resized faster as such), float32 in
    [0, 1] for 16-bit and float ones (kept at their precision)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _to_float_rgb(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("RGB"))


def decode_image(path: str | os.PathLike, max_dim: int | None = 512,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 what: str = "image") -> tuple[np.ndarray, tuple[int, int]]:
    """(pixels, final size): the file's pixels, EXIF-rotated, as (h, w, 3) uint8, or float32
    in [0, 1] for 16-bit and float files (`_pixels`), and the (H, W) that `max_dim` gives the
    full-size image; ImageError names any problem. A JPEG that `max_dim` will shrink by 4x or
    more is decoded at a reduced scale (JPEG's own DCT scaling, to no less than twice the
    final size, so the Lanczos resize after it still has pixels to average): a 12 MP photo
    shrunk to 1024 px decodes several times faster. `resize_to` finishes the job."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{what} {path}: no such file")
    if path.is_dir():
        raise ImageError(f"{what} {path}: is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # our own max_pixels guard below, with our message
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(f"{what} {path}: {width}x{height} px is over the "
                                     f"{max_pixels:,}-pixel limit (--max-pixels)")
                image.seek(0)
                final_height, final_width = fit_size(height, width, max_dim)
                if image.format == "JPEG" and max_dim is not None:
                    image.draft("RGB", (2 * final_width, 2 * final_height))
                rotated = image.getexif().get(0x0112) in (5, 6, 7, 8)  # by 90 degrees
                image = ImageOps.exif_transpose(image)
                final = (final_width, final_height) if rotated else (final_height, final_width)
                return _pixels(image), final
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{what} {path}: permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} {path}: not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{what} {path}: corrupt or truncated image ({exc})") from None


def resize_to(pixels: np.ndarray, size: tuple[int, int], path: str | os.PathLike = "",
              what: str = "image") -> np.ndarray:
    """`decode_image`'s pixels at its final size (H, W): float32 in [0, 1]. 8-bit pixels are
    resized as such (Pillow's Lanczos on RGB, several times faster than on three float
    planes; the error is below one 8-bit level). ImageError if a side is under MIN_SIDE."""
    height, width = size
    if pixels.dtype == np.uint8:
        if (height, width) != pixels.shape[:2]:
            pixels = np.asarray(Image.fromarray(pixels, mode="RGB").resize(
                (width, height), Image.Resampling.LANCZOS))
        array = pixels.astype(np.float32) / 255.0
    else:
        array = resize(pixels.astype(np.float32), (height, width))
    if min(array.shape[:2]) < MIN_SIDE:
        raise ImageError(f"{what} {path}: {array.shape[1]}x{array.shape[0]} px (after --max-dim)"
                         f" is too small; each side needs at least {MIN_SIDE} px")
    return array


def load_image(path: str | os.PathLike, max_dim: int | None = 512,
               max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> np.ndarray:
    """Read an image file as (H, W, 3) float32 in [0, 1], longer side shrunk to max_dim.

    Example:

    >>> path = jaxstyle.save_image("photo.png", np.full((64, 96, 3), 0.5))
    >>> image = jaxstyle.load_image(path, max_dim=48)
    >>> image.shape, image.dtype
    ((32, 48, 3), dtype('float32'))
    """
    pixels, size = decode_image(path, max_dim, max_pixels, what)
    return resize_to(pixels, size, path, what)


PNG_COMPRESS_LEVEL = 1


def save_format(path: str | os.PathLike) -> str:
    """Pillow format name for an output path's extension; ImageError if unsupported."""
    suffix = Path(path).suffix.lower()
    if suffix not in SAVE_FORMATS:
        raise ImageError(f"output {path}: unknown image type {suffix or '(no extension)'!r}; "
                         f"use one of {', '.join(sorted(SAVE_FORMATS))}")
    return SAVE_FORMATS[suffix]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float in [0, 1] -> uint8 of the same shape; a batch of one, (1, H, W, 3), -> (H, W, 3)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def save_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write one image, (H, W, 3) or (1, H, W, 3), by extension (PNG, JPEG q95, ...), atomically.

    Example:

    >>> jaxstyle.save_image("grey.png", np.full((1, 32, 32, 3), 0.5))
    PosixPath('grey.png')
    >>> jaxstyle.load_image("grey.png")[0, 0] * 255  # 8 bits per channel
    array([128., 128., 128.], dtype=float32)
    """
    path = Path(path)
    if np.ndim(image) == 4 and np.shape(image)[0] != 1:
        raise ValueError(f"save_image writes one image, got a batch of {np.shape(image)[0]}")
    fmt = save_format(path)
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "PNG":
        # zlib level 1: a stylised 1024x768 PNG encoded in 53 ms and 1.25 MB, against 229 ms
        # and 1.16 MB at Pillow's default 6 (BENCHMARKS.md, "The CLI, stage by stage"), so
        # writing no longer rivals a 0.1-0.5 s network pass.
        options = {"compress_level": PNG_COMPRESS_LEVEL}
    try:
        with atomic_write(path) as f:
            Image.fromarray(to_uint8(image), mode="RGB").save(f, format=fmt, **options)
    except PermissionError:
        raise ImageError(f"output {path}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"output {path}: cannot write ({exc.strerror or exc})") from None
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Fail early (before minutes of work) if `path` cannot be written as an image."""
    path = Path(path)
    save_format(path)
    if path.is_dir():
        raise ImageError(f"output {path}: is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"output {path}: cannot create folder {path.parent} "
                         f"({exc.strerror or exc})") from None
    try:  # a real write: os.access says yes to root even on read-only file systems
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise ImageError(f"output {path}: folder not writable ({exc.strerror or exc})") from None
