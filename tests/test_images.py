import numpy as np
import pytest
from PIL import Image

from jaxstyle.errors import ImageError
from jaxstyle.images import check_writable, fit_size, load_image, save_image


def _gradient(width=80, height=60):
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (height, width, 1)),
                           np.broadcast_to(y, (height, width, 1)),
                           np.full((height, width, 1), 128.0)], axis=2).astype(np.uint8)


def test_rgb_png_loads_as_float_in_unit_range(tmp_path):
    pixels = _gradient()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png", max_dim=None)
    assert image.dtype == np.float32 and image.shape == (60, 80, 3)
    np.testing.assert_allclose(image, pixels / 255.0, atol=1e-6)


def test_thumbnail_keeps_aspect_and_never_enlarges(tmp_path):
    Image.fromarray(_gradient(200, 100)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", max_dim=64).shape == (32, 64, 3)
    assert load_image(tmp_path / "a.png", max_dim=1000).shape == (100, 200, 3)
    assert fit_size(100, 200, 64) == (32, 64)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "1"])
def test_odd_modes_become_rgb(tmp_path, mode):
    Image.fromarray(_gradient()).convert(mode).save(tmp_path / "a.tiff")
    image = load_image(tmp_path / "a.tiff", max_dim=None)
    assert image.shape == (60, 80, 3) and 0 <= image.min() and image.max() <= 1


def test_transparency_is_composited_over_white(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :20, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png", max_dim=None)
    np.testing.assert_allclose(image[0, 0], [1, 0, 0])
    np.testing.assert_allclose(image[0, 39], [1, 1, 1])


def test_sixteen_bit_greyscale_uses_full_range(tmp_path):
    values = np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png", max_dim=None)
    assert image[0, 0, 0] == pytest.approx(0.0, abs=1e-6)
    assert image[-1, -1, 0] == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(image[..., 0], image[..., 2])


def test_exif_orientation_is_applied(tmp_path):
    pixels = _gradient(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "a.jpg", exif=exif.tobytes(), quality=100)
    assert load_image(tmp_path / "a.jpg", max_dim=None).shape == (80, 40, 3)


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"hello, not an image", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|corrupt"),
])
def test_bad_files_raise_image_error(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path)


def test_truncated_image_raises(tmp_path):
    Image.fromarray(_gradient(200, 200)).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")


def test_too_small_and_too_large(tmp_path):
    Image.fromarray(_gradient(100, 20)).save(tmp_path / "thin.png")
    with pytest.raises(ImageError, match="at least 32 px"):
        load_image(tmp_path / "thin.png")
    Image.fromarray(_gradient(100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="over the 5,000-pixel limit"):
        load_image(tmp_path / "big.png", max_pixels=5000)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_save_by_extension_round_trips(tmp_path, suffix):
    pixels = _gradient() / 255.0
    path = save_image(tmp_path / "out" / f"result{suffix}", pixels[None])
    back = load_image(path, max_dim=None)
    tolerance = 1 / 255 if suffix == ".png" else 0.06
    np.testing.assert_allclose(back, pixels, atol=tolerance)
    assert not list(path.parent.glob("*.part"))


def test_save_failure_leaves_existing_file_untouched(tmp_path):
    path = tmp_path / "keep.png"
    path.write_bytes(b"precious")
    with pytest.raises(ImageError, match="unknown image type"):
        save_image(tmp_path / "keep.xyz", np.zeros((1, 40, 40, 3)))
    with pytest.raises((TypeError, ValueError)):
        save_image(path, np.zeros((1, 40, 40, 5)))  # Pillow cannot encode 5 channels
    assert path.read_bytes() == b"precious"
    assert not list(tmp_path.glob("*.part"))


def test_check_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageError, match="cannot create folder"):
        check_writable(tmp_path / "file" / "out.png")
    with pytest.raises(ImageError, match="is a folder"):
        (tmp_path / "dir.png").mkdir()
        check_writable(tmp_path / "dir.png")
    check_writable(tmp_path / "new" / "out.png")
    assert (tmp_path / "new").is_dir()


def test_a_shrunk_jpeg_decodes_reduced_with_the_full_decodes_result(tmp_path):
    from jaxstyle.images import decode_image, resize

    rng = np.random.default_rng(0)
    coarse = rng.uniform(size=(25, 34, 3))
    smooth = np.kron(coarse, np.ones((24, 24, 1)))[:600, :800]  # 800x600, JPEG-friendly
    path = tmp_path / "big.jpg"
    Image.fromarray(np.round(smooth * 255).astype(np.uint8)).save(path, quality=95)
    pixels, size = decode_image(path, 96)
    assert size == (72, 96)
    assert max(pixels.shape[:2]) < 600  # JPEG's DCT scaling decoded it smaller...
    assert min(pixels.shape[:2]) >= 2 * 72  # ...but no smaller than twice the final size
    reduced = load_image(path, 96)
    with Image.open(path) as image:
        full = np.asarray(image.convert("RGB"), np.float32) / 255
    expected = resize(full, (72, 96))
    assert reduced.shape == (72, 96, 3)
    assert np.abs(reduced - expected).mean() < 2 / 255

