"""Uploaded images: kept in a private temporary folder under names the server makes.

A client never names a file: an upload gets a random 128-bit hex id, and only ids this store
made resolve to a path. Each upload is checked before it is kept: the byte limit (counted
while reading, so a lying Content-Length cannot get past it), then the pixel limit from the
image header (before any decoding: a decompression bomb is refused unopened), then a full
decode (a truncated or corrupt file fails here, with the loader's own one-line message).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections.abc import AsyncIterable
from pathlib import Path
from typing import NamedTuple

from jaxstyle.errors import JaxstyleError
from jaxstyle.images import load_image

DEFAULT_MAX_BYTES = 20 * 2 ** 20
DEFAULT_MAX_PIXELS = 40_000_000
MAX_UPLOADS = 200  # the oldest are forgotten past this, so a client cannot fill the disk


class UploadError(JaxstyleError):
    """An upload was refused; the message says why, in one line."""

    status = 400


class UploadTooLarge(UploadError):
    status = 413  # HTTP's "content too large"


class Upload(NamedTuple):
    id: str
    path: Path
    width: int
    height: int


class UploadStore:
    """Uploads in a private folder (mode 0700), removed by `close()`.

    Example:

    >>> import jaxstyle.serve
    >>> store = jaxstyle.serve.UploadStore(max_bytes=2 ** 20)
    >>> data = jaxstyle.save_image("photo.png", np.zeros((32, 48, 3))).read_bytes()
    >>> upload = store.add(data)  # checked: an image, within the limits
    >>> upload.width, upload.height, store.path(upload.id).is_file()
    (48, 32, True)
    >>> store.close()  # removes the folder
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        self.folder = Path(tempfile.mkdtemp(prefix="jaxstyle-serve-"))  # created 0700
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def add(self, data: bytes) -> Upload:
        """Check and keep one image file's bytes; UploadError says what is wrong."""
        if not data:
            raise UploadError("the upload is empty")
        if len(data) > self.max_bytes:
            raise UploadTooLarge(f"the upload is {len(data) / 2 ** 20:.1f} MB; the limit is "
                              f"{self.max_bytes / 2 ** 20:.0f} MB")
        upload_id = secrets.token_hex(16)
        path = self.folder / f"{upload_id}.img"
        path.write_bytes(data)
        try:
            image = load_image(path, None, self.max_pixels, what="upload")
        except JaxstyleError as exc:
            path.unlink(missing_ok=True)
            # The loader names the file; the client knows it by its own name, not ours.
            raise UploadError(str(exc).replace(f"upload {path}: ", "")) from None
        upload = Upload(upload_id, path, image.shape[1], image.shape[0])
        with self._lock:
            self._uploads[upload_id] = upload
            while len(self._uploads) > MAX_UPLOADS:
                oldest = next(iter(self._uploads))
                self._uploads.pop(oldest).path.unlink(missing_ok=True)
        return upload

    def path(self, upload_id: str) -> Path:
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise UploadError("that upload is gone (the server restarted or forgot it); "
                              "upload the image again")
        return upload.path

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


async def read_limited(stream: AsyncIterable[bytes], max_bytes: int) -> bytes:
    """A request body, refused as soon as it passes max_bytes (whatever its headers said)."""
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > max_bytes:
            raise UploadTooLarge(f"the upload is over the {max_bytes / 2 ** 20:.0f} MB limit")
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["Upload", "UploadError", "UploadTooLarge", "UploadStore", "read_limited"]
