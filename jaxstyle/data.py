"""Training images -> an endless, shuffled, sharded, checkpointable stream of uint8 crops (grain).

    scan = find_training_images("photos/", batch_size=8)  # list, cheap header scan, checks
    print(describe(scan, "photos/"))  # "1234 training images in photos/ (3 skipped)"
    loader = make_loader(scan.usable, size=256, batch_size=8, seed=0)
    iterator = iter(loader)
    batch = next(iterator)        # {"image": (8, 256, 256, 3) uint8, "record": (8,) int32}

Pipeline per record: path -> DecodeImage -> DropUndecodable -> RandomResizedCrop -> RandomFlip,
then Batch(drop_remainder=True). Batches stay uint8 so the worker -> main-process copy is 4x
smaller than float32; the trainer converts to float on the device.

Determinism: the same paths, seed, worker_count and shard options give the same batches. The
worker count matters because each worker batches its own slice of the sampler's stream.

Files that fail to decode at load time (truncated after a valid header, say) do not crash
training: DecodeImage logs them and returns image=None, DropUndecodable filters them out and the
batch is filled by the next record of that worker's stream. The replacement is therefore
deterministic (same file, same seed -> same substitute), and batches stay full.

Iterator state (the data position) is checkpointed with orbax next to the model:

    import orbax.checkpoint as ocp
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(train_state),
        dataset=iterator_checkpoint_args(iterator)))  # grain.checkpoint.CheckpointSave
    manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        dataset=iterator_checkpoint_args(iterator, restore=True)))  # ...CheckpointRestore

The restore sets the state of `iterator` in place (grain's handler writes and reads one JSON
file per JAX process, `process_<i>-of-<n>.json`). The state holds sampler positions only; it is
accepted only by a loader with the same worker_count, sampler (seed, shard options) and image
list (ImagePathSource's repr carries a fingerprint of it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grain
import numpy as np
from absl import flags
from PIL import Image, ImageOps, UnidentifiedImageError

from jaxstyle.errors import JaxstyleError
from jaxstyle.images import IMAGE_EXTENSIONS, MIN_SIDE, image_files_under, load_image  # noqa: F401

MAX_PIXELS = 50_000_000          # larger files are skipped by the scan (decoding one costs GBs)
MAX_CONSECUTIVE_FAILURES = 100   # that many undecodable files in a row: the data is broken, stop

logger = logging.getLogger(__name__)


class DataError(JaxstyleError):
    """The training-image folder is missing, not a folder, or has too few usable images."""


# --- Finding and scanning files -----------------------------------------------------------------

def list_images(root: str | os.PathLike) -> list[Path]:
    """Every image file under root (recursive, by extension, hidden entries skipped), sorted."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"training images {root}: no such folder")
    if not root.is_dir():
        raise DataError(f"training images {root}: is a file, not a folder")
    return image_files_under(root)


class ImageScan(NamedTuple):
    """Result of scan_images: the usable paths and (path, reason) for each skipped file."""
    usable: list[Path]
    skipped: list[tuple[Path, str]]


def header_problem(path: Path, min_side: int = MIN_SIDE,
                   max_pixels: int = MAX_PIXELS) -> str | None:
    """Why a file cannot be a training image, judged by its header alone; None if it looks fine."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:  # reads the header only; pixels stay on disk
                width, height = image.size
    except UnidentifiedImageError:
        return "not an image, or corrupt"
    except Image.DecompressionBombError:
        return "too large"
    except Exception as error:  # Pillow raises many types (OSError, SyntaxError, ...) on bad files
        return f"unreadable ({type(error).__name__}: {error})"
    if min(width, height) < min_side:
        return f"too small ({width}x{height}, needs {min_side} px on the short side)"
    if width * height > max_pixels:
        return f"too large ({width}x{height})"
    return None


def scan_images(paths: Sequence[str | os.PathLike], min_side: int = MIN_SIDE,
                max_pixels: int = MAX_PIXELS) -> ImageScan:
    """Split paths into usable ones and skipped (path, reason) by opening each file's header."""
    usable, skipped = [], []
    for path in map(Path, paths):
        problem = header_problem(path, min_side, max_pixels)
        if problem is None:
            usable.append(path)
        else:
            skipped.append((path, problem))
    return ImageScan(usable, skipped)


def find_training_images(root: str | os.PathLike, batch_size: int) -> ImageScan:
    """List and scan the images under root; DataError if fewer than one batch is usable."""
    scan = scan_images(list_images(root))
    if len(scan.usable) < batch_size:
        raise DataError(f"need at least {batch_size} images, found {len(scan.usable)} usable "
                        f"in {root} ({len(scan.skipped)} skipped)")
    return scan


def describe(scan: ImageScan, root: str | os.PathLike) -> str:
    """One line for the CLI, e.g. '1234 training images in photos/ (3 skipped)'."""
    count = len(scan.usable)
    noun = "image" if count == 1 else "images"
    return f"{count} training {noun} in {root} ({len(scan.skipped)} skipped)"


# --- Grain data source and per-record transforms ------------------------------------------------

def fingerprint(paths: Sequence[str | os.PathLike]) -> str:
    """Short hash of the image list relative to its common folder (moving the folder keeps it)."""
    paths = [os.path.abspath(path) for path in paths]
    base = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    digest = hashlib.sha1()
    for path in paths:
        digest.update(os.path.relpath(path, base).encode() + b"\0")
    return digest.hexdigest()[:16]


class ImagePathSource(grain.sources.RandomAccessDataSource):
    """Random access to image paths: record i -> {"path": str, "record": i}."""

    def __init__(self, paths: Sequence[str | os.PathLike]):
        if not paths:
            raise DataError("no training images to load")
        self._paths = [os.fspath(path) for path in paths]
        self._fingerprint = fingerprint(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, record: int) -> dict[str, Any]:
        return {"path": self._paths[record], "record": np.int32(record)}

    def __repr__(self) -> str:
        # Grain stores repr(source) in the iterator state and refuses a state from another
        # source, so it must be short, stable across runs, and change when the list changes.
        return f"ImagePathSource(count={len(self)}, fingerprint={self._fingerprint})"


def to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """A Pillow image in any 8-bit mode -> (H, W, 3) uint8; transparency goes over white."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_rgb_uint8(path: str, min_side: int = 0) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8, EXIF orientation applied.

    JPEGs much larger than needed are decoded at 1/2, 1/4 or 1/8 scale (Pillow's draft mode),
    keeping the short side >= min_side: several times faster for large photos.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            width, height = image.size
            if min_side and min(width, height) > 2 * min_side:
                shrink = min_side / min(width, height)
                image.draft(image.mode, (math.ceil(width * shrink), math.ceil(height * shrink)))
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                # Rare high-bit-depth files: the float loader knows how to scale them.
                return np.round(load_image(path, max_dim=None) * 255).astype(np.uint8)
            return to_rgb_uint8(ImageOps.exif_transpose(image))


@dataclasses.dataclass(frozen=True)
class DecodeImage(grain.transforms.Map):
    """{"path", "record"} -> {"image": (H, W, 3) uint8 or None if undecodable, "record"}."""
    min_side: int = 0  # draft-decode large JPEGs no smaller than this on the short side

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        try:
            image = read_rgb_uint8(element["path"], self.min_side)
        except Exception as error:  # any decoder failure means: skip this file, never crash
            logger.warning("skipping training image %s: %s: %s",
                           element["path"], type(error).__name__, error)
            image = None
        return {"image": image, "record": element["record"]}


@dataclasses.dataclass
class DropUndecodable(grain.transforms.Filter):
    """Drops records whose decode failed; raises DataError after too many failures in a row."""
    max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES
    consecutive_failures: int = 0  # per worker process; only decides when to give up

    def filter(self, element: dict[str, Any]) -> bool:
        if element["image"] is not None:
            self.consecutive_failures = 0
            return True
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.max_consecutive_failures:
            # With an endless sampler, a folder of undecodable files would otherwise spin forever.
            raise DataError(f"{self.consecutive_failures} training images in a row failed to "
                            "decode; check the image folder")
        return False


@dataclasses.dataclass(frozen=True)
class RandomResizedCrop(grain.transforms.RandomMap):
    """Crop a random area fraction (scale) and aspect ratio (ratio), resized to (size, size)."""
    size: int
    scale: tuple[float, float] = (0.25, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    attempts: int = 10

    def crop_box(self, height: int, width: int,
                 rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(top, left, crop_height, crop_width) inside a height x width image."""
        log_ratio = np.log(self.ratio)
        for _ in range(self.attempts):
            area = height * width * rng.uniform(*self.scale)
            aspect = np.exp(rng.uniform(*log_ratio))
            crop_width = round(math.sqrt(area * aspect))
            crop_height = round(math.sqrt(area / aspect))
            if 0 < crop_width <= width and 0 < crop_height <= height:
                top = int(rng.integers(0, height - crop_height + 1))
                left = int(rng.integers(0, width - crop_width + 1))
                return top, left, crop_height, crop_width
        # Very elongated images rarely fit a sampled box: take the largest centred crop whose
        # aspect ratio is clamped into the allowed range.
        aspect = min(max(width / height, self.ratio[0]), self.ratio[1])
        crop_width = min(width, round(height * aspect))
        crop_height = min(height, round(width / aspect))
        return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        image = element["image"]
        height, width = image.shape[:2]
        top, left, crop_height, crop_width = self.crop_box(height, width, rng)
        # Pillow's resize with a box crops and resamples in one antialiased step.
        resized = Image.fromarray(image).resize(
            (self.size, self.size), Image.Resampling.BICUBIC,
            box=(left, top, left + crop_width, top + crop_height))
        return {**element, "image": np.asarray(resized, dtype=np.uint8)}


@dataclasses.dataclass(frozen=True)
class RandomFlip(grain.transforms.RandomMap):
    """Mirror the image left-right with probability 1/2."""

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        if rng.random() < 0.5:
            # Contiguous so grain can copy the batch into shared memory without a fallback.
            return {**element, "image": np.ascontiguousarray(element["image"][:, ::-1])}
        return element


# --- Loader ---------------------------------------------------------------------------------------

def default_worker_count() -> int:
    """Worker processes for decoding: min(4, CPU count)."""
    return min(4, os.cpu_count() or 1)


def shard_options(shard_index: int | None = None,
                  shard_count: int | None = None) -> grain.sharding.ShardOptions:
    """This process's share of the images: explicit (index, count), else by JAX process."""
    # drop_remainder=False: the sampler is endless, so shards that differ by one image never run
    # dry, and no image is left out of training.
    if shard_index is None and shard_count is None:
        return grain.sharding.ShardByJaxProcess(drop_remainder=False)
    if shard_index is None or shard_count is None:
        raise ValueError("give both shard_index and shard_count, or neither")
    return grain.sharding.ShardOptions(shard_index, shard_count, drop_remainder=False)


def sampler_seed(seed: int) -> int:
    """A well-mixed 32-bit seed for grain's sampler.

    Grain seeds record i's RNG with seed + i, so raw seeds s and s + 1 would give shifted copies of
    the same augmentation stream; mixing makes neighbouring seeds unrelated.
    """
    return int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint32)[0])


def make_sampler(count: int, seed: int,
                 shards: grain.sharding.ShardOptions) -> grain.samplers.IndexSampler:
    """Endless sampler (num_epochs=None) that reshuffles every epoch, within this shard."""
    return grain.samplers.IndexSampler(num_records=count, shard_options=shards, shuffle=True,
                                       num_epochs=None, seed=sampler_seed(seed))


def allow_grain_workers() -> None:
    """Let grain 0.2.18 start worker processes in a program that does not parse absl flags.

    Grain reads an absl flag (worker profiling) when it starts workers and raises
    UnparsedFlagAccessError unless flags were parsed (google/grain#1355, fixed after 0.2.18).
    Marking them parsed keeps every flag at its default.
    """
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def make_loader(paths: Sequence[str | os.PathLike], size: int, batch_size: int, seed: int,
                worker_count: int | None = None,
                shards: grain.sharding.ShardOptions | None = None,
                scale: tuple[float, float] = (0.25, 1.0)) -> grain.DataLoader:
    """Grain DataLoader yielding {"image": (B, size, size, 3) uint8, "record": (B,) int32} forever.

    worker_count: decoding processes (0 decodes in this process; default min(4, CPUs)).
    shards: from shard_options(); default shards by JAX process.
    """
    if size < 1 or batch_size < 1:
        raise ValueError(f"size and batch_size must be positive, got {size} and {batch_size}")
    worker_count = default_worker_count() if worker_count is None else worker_count
    shards = shard_options() if shards is None else shards
    if worker_count > 0:
        allow_grain_workers()
    source = ImagePathSource(paths)
    crop = RandomResizedCrop(size, scale=scale)
    # Smallest crop side relative to the image's short side, to decode large JPEGs no smaller.
    smallest_crop = math.sqrt(scale[0] * min(crop.ratio[0], 1 / crop.ratio[1]))
    operations = [
        DecodeImage(min_side=math.ceil(size / smallest_crop)),
        DropUndecodable(),
        crop,
        RandomFlip(),
        grain.transforms.Batch(batch_size, drop_remainder=True),
    ]
    return grain.DataLoader(
        data_source=source,
        sampler=make_sampler(len(source), seed, shards),
        operations=operations,
        worker_count=worker_count,
        shard_options=shards,
        # The source only hands out paths (decoding happens in the transforms), so one reader
        # thread with a small buffer is plenty; grain's default is 16 threads per process.
        read_options=grain.ReadOptions(num_threads=1, prefetch_buffer_size=4 * batch_size),
    )


# --- Iterator state -----------------------------------------------------------------------------

def restore_iterator(loader: grain.DataLoader, state: bytes) -> grain.DataLoaderIterator:
    """A fresh iterator over loader positioned where the iterator that gave `state` was."""
    iterator = iter(loader)
    try:
        iterator.set_state(state)
    except ValueError as error:
        # Grain refuses states from a different worker count, sampler (seed, shards) or image list.
        raise DataError(f"saved data position does not fit this data pipeline: "
                        f"{str(error).splitlines()[0]}") from error
    return iterator


def close_iterator(iterator: grain.DataLoaderIterator) -> None:
    """Stop the iterator's worker processes now rather than at garbage collection."""
    if hasattr(iterator, "close"):
        iterator.close()
    else:  # DataLoaderIterator has no close() in grain 0.2.18; the iterator it wraps does
        iterator._iterator.close()  # pylint: disable=protected-access


def iterator_checkpoint_args(iterator: grain.DataLoaderIterator, restore: bool = False) -> Any:
    """Orbax args saving (or restoring in place) the iterator's state, for ocp.args.Composite."""
    # grain.checkpoint registers these args with its CheckpointHandler only when orbax imports.
    if restore:
        return grain.checkpoint.CheckpointRestore(iterator)
    return grain.checkpoint.CheckpointSave(iterator)
