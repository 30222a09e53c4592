"""Training-image pipeline: listing, scanning, grain loader, determinism, sharding, checkpoints."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxstyle.data import (
    DataError,
    DropUndecodable,
    RandomResizedCrop,
    close_iterator,
    describe,
    find_training_images,
    iterator_checkpoint_args,
    list_images,
    make_loader,
    make_sampler,
    restore_iterator,
    scan_images,
    shard_options,
)
from jaxstyle.errors import JaxstyleError

SIZE = 16
BATCH = 4
NO_SHARDING = shard_options(0, 1)  # explicit, so tests never need jax.process_index()

# (relative path, (width, height)) of the usable images, odd aspect ratios included.
GOOD_IMAGES = [
    ("a.jpg", (48, 40)),
    ("b.PNG", (64, 32)),
    ("wide.png", (64, 32)),
    ("tall.jpeg", (32, 64)),
    ("nested/c.webp", (40, 56)),
    ("nested/d.bmp", (33, 60)),
    ("nested/deeper/e.tiff", (64, 64)),
    ("nested/deeper/f.gif", (36, 36)),
    ("nested/g_alpha.png", (40, 40)),
]


def write_image(path: Path, width: int, height: int, seed: int, mode: str = "RGB") -> None:
    """A random image file; noise makes every crop position distinguishable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 4 if mode == "RGBA" else 3
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    image = Image.fromarray(pixels, mode)
    if path.suffix.lower() == ".gif":
        image = image.convert("P")
    image.save(path)


def png_bytes(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path) -> Path:
    """Good images in nested folders plus every kind of file the pipeline must skip."""
    root = tmp_path / "photos"
    for seed, (name, (width, height)) in enumerate(GOOD_IMAGES):
        write_image(root / name, width, height, seed, "RGBA" if "alpha" in name else "RGB")
    write_image(root / ".hidden" / "h.png", 40, 40, 90)      # hidden folder: not listed
    write_image(root / ".dotfile.png", 40, 40, 91)           # hidden file: not listed
    (root / "notes.txt").write_text("not an image")          # wrong extension: not listed
    (root / "photo.jpg").write_text("a text file wearing a .jpg name")
    (root / "nested" / "corrupt.png").write_bytes(png_bytes(40, 40, 92)[:16] + b"garbage" * 20)
    write_image(root / "tiny.png", 10, 10, 93)
    return root


def truncated_png(tmp_path: Path) -> Path:
    """A PNG whose header is fine (passes the scan) but whose pixel data is cut off."""
    path = tmp_path / "truncated.png"
    data = png_bytes(64, 64, 94)
    path.write_bytes(data[: len(data) // 2])
    return path


def good_paths(root: Path) -> list[Path]:
    return sorted(root / name for name, _ in GOOD_IMAGES)


def take(iterator, count: int) -> list[dict]:
    """The next `count` batches, copied (worker batches may live in reused shared memory)."""
    return [{key: np.array(value) for key, value in next(iterator).items()} for _ in range(count)]


def assert_same_batches(first: list[dict], second: list[dict]) -> None:
    assert len(first) == len(second)
    for one, other in zip(first, second):
        np.testing.assert_array_equal(one["record"], other["record"])
        np.testing.assert_array_equal(one["image"], other["image"])


def loader(paths, seed=0, batch_size=BATCH, worker_count=0, shards=NO_SHARDING):
    return make_loader(paths, size=SIZE, batch_size=batch_size, seed=seed,
                       worker_count=worker_count, shards=shards)


# --- listing and scanning -------------------------------------------------------------------------

def test_list_images_recursive_by_extension_skipping_hidden(folder):
    listed = list_images(folder)
    names = [path.relative_to(folder).as_posix() for path in listed]
    expected = sorted([name for name, _ in GOOD_IMAGES]
                      + ["photo.jpg", "nested/corrupt.png", "tiny.png"])
    assert sorted(names) == expected
    assert listed == sorted(listed)


def test_list_images_follows_symlinked_folders_once(tmp_path, rng):
    outside = tmp_path / "disk" / "photos"
    outside.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(outside / "x.png")
    root = tmp_path / "data"
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "again").symlink_to(outside, target_is_directory=True)  # the same folder twice
    (outside / "loop").symlink_to(root, target_is_directory=True)  # and a link back up
    listed = list_images(root)
    assert len(listed) == 1 and listed[0].name == "x.png"


def test_list_images_missing_or_file_is_data_error(folder):
    with pytest.raises(DataError, match="no such folder"):
        list_images(folder / "missing")
    with pytest.raises(DataError, match="not a folder") as raised:
        list_images(folder / "a.jpg")
    assert isinstance(raised.value, JaxstyleError)
    assert "\n" not in str(raised.value)


def test_scan_skips_unreadable_files_with_reasons(folder):
    scan = scan_images(list_images(folder))
    assert sorted(scan.usable) == good_paths(folder)
    reasons = {path.name: reason for path, reason in scan.skipped}
    assert set(reasons) == {"photo.jpg", "corrupt.png", "tiny.png"}
    assert "not an image" in reasons["photo.jpg"]
    assert "not an image" in reasons["corrupt.png"]
    assert "too small" in reasons["tiny.png"] and "10x10" in reasons["tiny.png"]


def test_find_training_images_and_describe(folder):
    scan = find_training_images(folder, batch_size=BATCH)
    assert describe(scan, folder) == f"{len(GOOD_IMAGES)} training images in {folder} (3 skipped)"


def test_too_few_usable_images_is_one_line_error(folder):
    with pytest.raises(DataError) as raised:
        find_training_images(folder, batch_size=10)
    message = str(raised.value)
    assert message == (f"need at least 10 images, found {len(GOOD_IMAGES)} usable in {folder} "
                       "(3 skipped)")


# --- transforms -----------------------------------------------------------------------------------

def test_random_resized_crop_box_stays_inside_and_respects_bounds():
    crop = RandomResizedCrop(SIZE)
    rng = np.random.default_rng(0)
    for height, width in [(40, 48), (32, 200), (200, 32), (64, 64)]:
        for _ in range(20):
            top, left, crop_height, crop_width = crop.crop_box(height, width, rng)
            assert 0 <= top and top + crop_height <= height
            assert 0 <= left and left + crop_width <= width
            # Fallback crops of very elongated images also keep the ratio near the allowed range.
            assert 3 / 4 - 0.05 <= crop_width / crop_height <= 4 / 3 + 0.05


def test_drop_undecodable_gives_up_after_many_failures_in_a_row():
    drop = DropUndecodable(max_consecutive_failures=3)
    assert drop.filter({"image": None}) is False
    assert drop.filter({"image": np.zeros((1, 1, 3), np.uint8)}) is True  # resets the count
    drop.filter({"image": None})
    drop.filter({"image": None})
    with pytest.raises(DataError, match="3 training images in a row"):
        drop.filter({"image": None})


# --- loader ---------------------------------------------------------------------------------------

def test_batches_are_uint8_crops_of_known_records(folder):
    batches = take(iter(loader(good_paths(folder))), 3)
    for batch in batches:
        assert batch["image"].shape == (BATCH, SIZE, SIZE, 3)
        assert batch["image"].dtype == np.uint8
        assert batch["record"].shape == (BATCH,)
        assert set(batch["record"].tolist()) <= set(range(len(GOOD_IMAGES)))
        assert batch["image"].std() > 10  # decoded noise, not blank placeholders


def test_worker_processes_give_the_same_shapes(folder):
    iterator = iter(loader(good_paths(folder), worker_count=2))
    try:
        batches = take(iterator, 2)
    finally:
        close_iterator(iterator)
    for batch in batches:
        assert batch["image"].shape == (BATCH, SIZE, SIZE, 3)
        assert batch["image"].dtype == np.uint8
        assert set(batch["record"].tolist()) <= set(range(len(GOOD_IMAGES)))


def test_same_seed_same_batches_other_seed_differs(folder):
    paths = good_paths(folder)
    first = take(iter(loader(paths, seed=7)), 3)
    assert_same_batches(first, take(iter(loader(paths, seed=7)), 3))
    other = take(iter(loader(paths, seed=8)), 3)
    assert not all(np.array_equal(one["image"], two["image"]) for one, two in zip(first, other))


def test_sampler_reshuffles_every_epoch():
    sampler = make_sampler(8, seed=0, shards=NO_SHARDING)
    epochs = [[sampler[epoch * 8 + i].record_key for i in range(8)] for epoch in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(8))
    assert len({tuple(order) for order in epochs}) == 3


def test_neighbouring_seeds_do_not_share_shifted_augmentation_streams():
    # Grain seeds record i's RNG with seed + i; unmixed seeds 0 and 1 would collide here.
    first, second = make_sampler(8, 0, NO_SHARDING), make_sampler(8, 1, NO_SHARDING)
    assert first[1].rng.random() != second[0].rng.random()


def test_undecodable_file_is_replaced_and_batches_stay_full(folder, tmp_path):
    paths = good_paths(folder) + [truncated_png(tmp_path)]
    broken = len(paths) - 1
    assert not scan_images(paths).skipped  # the scan cannot see it; decoding fails later
    batches = take(iter(loader(paths)), 6)  # 24 records: more than two epochs of 10
    records = np.concatenate([batch["record"] for batch in batches])
    assert broken not in records
    assert set(records.tolist()) == set(range(broken))
    assert all(batch["image"].shape == (BATCH, SIZE, SIZE, 3) for batch in batches)


def test_all_undecodable_raises_instead_of_spinning(tmp_path):
    paths = [truncated_png(tmp_path)]
    with pytest.raises(DataError, match="in a row failed to decode"):
        next(iter(loader(paths, batch_size=1)))


def test_shards_are_disjoint_and_cover_an_epoch(folder):
    paths = good_paths(folder)
    assert len(paths) == 9  # odd, so the shards differ in size: 5 and 4
    seen = []
    for index, length in [(0, 5), (1, 4)]:
        iterator = iter(loader(paths, batch_size=1, shards=shard_options(index, 2)))
        records = [int(batch["record"][0]) for batch in take(iterator, 2 * length)]
        assert sorted(records[:length]) == sorted(records[length:])  # same shard every epoch
        assert len(set(records[:length])) == length
        seen.append(set(records[:length]))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(len(paths)))


# --- iterator state -------------------------------------------------------------------------------

def test_state_restore_continues_identically(folder):
    paths = good_paths(folder)
    iterator = iter(loader(paths, seed=3))
    take(iterator, 2)
    state = iterator.get_state()
    expected = take(iterator, 3)
    resumed = restore_iterator(loader(paths, seed=3), state)
    assert_same_batches(take(resumed, 3), expected)
    from_start = take(iter(loader(paths, seed=3)), 1)[0]
    assert not np.array_equal(expected[0]["image"], from_start["image"])  # really resumed


def test_state_from_another_pipeline_is_refused(folder):
    paths = good_paths(folder)
    iterator = iter(loader(paths, seed=3))
    take(iterator, 1)
    with pytest.raises(DataError, match="does not fit"):
        restore_iterator(loader(paths, seed=4), iterator.get_state())
    with pytest.raises(DataError, match="does not fit"):
        restore_iterator(loader(paths[:-1], seed=3), iterator.get_state())


def test_orbax_checkpoint_manager_round_trip(folder, tmp_path):
    import orbax.checkpoint as ocp

    paths = good_paths(folder)
    iterator = iter(loader(paths, seed=5))
    take(iterator, 2)
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
    with ocp.CheckpointManager(tmp_path / "checkpoints", options=options) as manager:
        manager.save(2, args=ocp.args.Composite(dataset=iterator_checkpoint_args(iterator)))
        manager.wait_until_finished()
    expected = take(iterator, 3)

    resumed = iter(loader(paths, seed=5))
    with ocp.CheckpointManager(tmp_path / "checkpoints", options=options) as manager:
        assert manager.latest_step() == 2
        manager.restore(2, args=ocp.args.Composite(
            dataset=iterator_checkpoint_args(resumed, restore=True)))
    assert_same_batches(take(resumed, 3), expected)
