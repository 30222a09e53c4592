"""Keras VGG19 ImageNet weights -> Flax params, and a fast converted cache format.

Every layout of the Keras file seen in the wild is read (see `load_vgg19`); the result is
always the same plain params tree, `{'block1_conv1': {'kernel': (3,3,Cin,Cout), 'bias': (Cout,)},
...}`, which is exactly what `jaxstyle.vgg.VGG19` expects under `{'params': ...}`.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from jaxstyle.errors import WeightsError
from jaxstyle.files import atomic_write
from jaxstyle.vgg import LAYER_NAMES, VGG19_CONV_LAYERS

Params = dict[str, dict[str, np.ndarray]]
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def expected_shapes(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Kernel (HWIO) and bias shapes of one VGG19 conv layer.

    Example:

    >>> jaxstyle.weights.expected_shapes("block2_conv1")
    ((3, 3, 64, 128), (128,))
    """
    for layer, cin, cout in VGG19_CONV_LAYERS:
        if layer == name:
            return (3, 3, cin, cout), (cout,)
    raise KeyError(name)


def validate_params(params: Params, source: str = "params") -> Params:
    """Check all 16 layers exist with VGG19 shapes and finite values; return float32 copies.

    Example:

    >>> checked = jaxstyle.weights.validate_params(params)
    >>> len(checked), checked["block5_conv4"]["kernel"].dtype
    (16, dtype('float32'))
    """
    checked: Params = {}
    for name in LAYER_NAMES:
        if name not in params:
            raise WeightsError(f"{source}: layer {name} is missing")
        kernel_shape, bias_shape = expected_shapes(name)
        layer = {}
        for key, shape in (("kernel", kernel_shape), ("bias", bias_shape)):
            if key not in params[name]:
                raise WeightsError(f"{source}: layer {name} has no {key}")
            value = np.asarray(params[name][key])
            if value.shape != shape:
                raise WeightsError(
                    f"{source}: layer {name} {key} has shape {value.shape}, expected {shape}"
                )
            value = value.astype(np.float32)
            if not np.isfinite(value).all():
                raise WeightsError(f"{source}: layer {name} {key} has non-finite values")
            layer[key] = value
        checked[name] = layer
    return checked


# --------------------------------------------------------------------------- Keras h5 layouts


def _decode(names: Iterable[Any]) -> list[str]:
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names]


def _kernel_and_bias(arrays: list[np.ndarray], source: str,
                     layer: str) -> dict[str, np.ndarray]:
    """Pick kernel (4-D) and bias (1-D) out of a layer's weights, whatever their order."""
    kernels = [a for a in arrays if a.ndim == 4]
    biases = [a for a in arrays if a.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
        shapes = [a.shape for a in arrays]
        raise WeightsError(f"{source}: layer {layer} has weights of shapes {shapes}, "
                           "expected one 3x3 kernel and one bias")
    return {"kernel": kernels[0], "bias": biases[0]}


def _read_dataset(dataset: Any, source: str, layer: str) -> np.ndarray:
    try:
        return np.asarray(dataset[()])
    except (OSError, ValueError, KeyError) as exc:  # truncated files fail here, not at open
        raise WeightsError(f"{source}: layer {layer} cannot be read ({exc})") from None


def _read_named_layers(group: h5py.Group, source: str) -> Params:
    """Layouts 1-3: follow `layer_names`/`weight_names` attributes exactly as Keras does."""
    params: Params = {}
    for layer in _decode(group.attrs["layer_names"]):
        if layer not in LAYER_NAMES:
            continue  # pooling, input and classifier layers are not used
        if layer not in group:
            raise WeightsError(f"{source}: layer {layer} is listed but has no group")
        layer_group = group[layer]
        weight_names = _decode(layer_group.attrs.get("weight_names", []))
        if not weight_names:
            raise WeightsError(f"{source}: layer {layer} has no weights")
        arrays = []
        for weight_name in weight_names:
            if weight_name not in layer_group:
                raise WeightsError(f"{source}: layer {layer} weight {weight_name} is missing")
            arrays.append(_read_dataset(layer_group[weight_name], source, layer))
        params[layer] = _kernel_and_bias(arrays, source, layer)
    return params


def _layer_sort_key(name: str) -> tuple[int, str]:
    # Keras 3 names unnamed layers conv2d, conv2d_1, ... conv2d_15; HDF5 lists them
    # alphabetically (conv2d_10 before conv2d_2), so order by the numeric suffix.
    match = re.search(r"_(\d+)$", name)
    return (int(match.group(1)) if match else 0, name)


def _walk_var_groups(group: h5py.Group, path: str = "") -> Iterator[tuple[str, h5py.Group]]:
    for key in group:
        item = group[key]
        if not isinstance(item, h5py.Group):
            continue
        if "vars" in item and isinstance(item["vars"], h5py.Group):
            yield f"{path}{key}", item["vars"]
        if key != "vars":
            yield from _walk_var_groups(item, f"{path}{key}/")


def _read_keras3_vars(group: h5py.Group, source: str) -> Params:
    """Layout 4: `layers/<name>/vars/0` (kernel) and `vars/1` (bias)."""
    convs = []
    for path, vars_group in _walk_var_groups(group):
        names = sorted(vars_group.keys(), key=lambda k: int(k) if k.isdigit() else 1 << 30)
        if not names:
            continue
        first = vars_group[names[0]]
        if isinstance(first, h5py.Dataset) and first.ndim == 4:
            arrays = [_read_dataset(vars_group[n], source, path) for n in names]
            convs.append((path.rsplit("/", 1)[-1], path, arrays))
    by_name = {short: arrays for short, _, arrays in convs}
    if all(name in by_name for name in LAYER_NAMES):  # layers kept their Keras names
        return {name: _kernel_and_bias(by_name[name], source, name) for name in LAYER_NAMES}
    convs.sort(key=lambda c: _layer_sort_key(c[0]))
    if len(convs) != len(LAYER_NAMES):
        raise WeightsError(f"{source}: found {len(convs)} conv layers, VGG19 has 16")
    params: Params = {}
    for name, (_, path, arrays) in zip(LAYER_NAMES, convs):
        layer = _kernel_and_bias(arrays, source, path)
        kernel_shape, _ = expected_shapes(name)
        if layer["kernel"].shape != kernel_shape:
            raise WeightsError(f"{source}: conv layer {path} has kernel {layer['kernel'].shape}, "
                               f"expected {kernel_shape} for {name}; not a VGG19 file")
        params[name] = layer
    return params


def _read_h5(file: h5py.File, source: str) -> Params:
    if "layer_names" in file.attrs:
        return _read_named_layers(file, source)
    if "model_weights" in file and "layer_names" in file["model_weights"].attrs:
        return _read_named_layers(file["model_weights"], source)
    if "layers" in file:
        return _read_keras3_vars(file["layers"], source)
    raise WeightsError(f"{source}: HDF5 file of unknown layout (no layer_names, "
                       "model_weights or layers group); is it a Keras VGG19 file?")


def _open_h5(data: Any, source: str) -> Params:
    try:
        with h5py.File(data, "r") as file:
            return _read_h5(file, source)
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(f"{source}: cannot read HDF5 ({exc})") from None


# --------------------------------------------------------------------------- public API


def read_keras_weights(path: str | os.PathLike) -> Params:
    """Read a Keras VGG19 weights file (.h5 in any layout, or a .keras archive) into params.

    Example:

    >>> path = jaxstyle.weights.write_keras_h5("vgg19_notop.h5", params)
    >>> jaxstyle.read_keras_weights(path)["block3_conv4"]["bias"].shape
    (256,)
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise WeightsError(f"{source}: no such file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        return validate_params(_open_h5(path, source), source)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist():
                raise WeightsError(f"{source}: zip archive without model.weights.h5")
            try:
                data = archive.read("model.weights.h5")
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise WeightsError(f"{source}: corrupt .keras archive ({exc})") from None
        return validate_params(_open_h5(io.BytesIO(data), f"{source}:model.weights.h5"), source)
    raise WeightsError(f"{source}: not an HDF5 file or .keras archive")


def save_params(params: Params, path: str | os.PathLike) -> Path:
    """Save params to one .npz (atomic: temp file + rename); it loads far faster than the h5.

    Example:

    >>> jaxstyle.save_params(params, "vgg19.npz")
    PosixPath('vgg19.npz')
    """
    path = Path(path)
    flat = {f"{layer}/{key}": np.asarray(value) for layer, weights in params.items()
            for key, value in weights.items()}
    with atomic_write(path) as f:
        # No key can be savez's own allow_pickle (they are "layer/key"); numpy's stub types
        # **kwds as if one could.
        np.savez(f, **flat)  # type: ignore[arg-type]
    return path


def load_params(path: str | os.PathLike) -> Params:
    """Load params written by `save_params`.

    Example:

    >>> path = jaxstyle.save_params(params, "vgg19.npz")
    >>> loaded = jaxstyle.weights.load_params(path)
    >>> loaded["block1_conv1"]["kernel"].shape
    (3, 3, 3, 64)
    """
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            params: Params = {}
            for key in data.files:
                layer, _, name = key.partition("/")
                params.setdefault(layer, {})[name] = data[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise WeightsError(f"{source}: cannot read converted weights ({exc})") from None
    return validate_params(params, source)


def _is_npz(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith(".npy") for name in archive.namelist())


def load_vgg19(path: str | os.PathLike) -> Params:
    """Load VGG19 params from a Keras .h5 (any layout), a .keras archive or a converted .npz.

    Example:

    >>> params = jaxstyle.load_vgg19("weights/vgg19.npz")  # doctest: +SKIP
    >>> path = jaxstyle.save_params(params, "vgg19.npz")  # or a Keras .h5 or .keras file
    >>> sorted(jaxstyle.load_vgg19(path))[:2]
    ['block1_conv1', 'block1_conv2']
    """
    path = Path(path)
    if path.is_file() and _is_npz(path):
        return load_params(path)
    return read_keras_weights(path)


def write_keras_h5(path: str | os.PathLike, params: Params) -> Path:
    """Write params as the classic Keras `..._notop.h5` layout (`layer_names`, `*_W_1:0`).

    Example:

    >>> jaxstyle.weights.write_keras_h5("vgg19_notop.h5", params)
    PosixPath('vgg19_notop.h5')
    """
    path = Path(path)
    params = validate_params(params, str(path))
    with atomic_write(path) as f:
        with h5py.File(f, "w") as file:
            file.attrs["layer_names"] = np.array([n.encode() for n in LAYER_NAMES])
            for name in LAYER_NAMES:
                group = file.create_group(name)
                names = [f"{name}_W_1:0", f"{name}_b_1:0"]
                group.attrs["weight_names"] = np.array([n.encode() for n in names])
                group.create_dataset(names[0], data=params[name]["kernel"])
                group.create_dataset(names[1], data=params[name]["bias"])
    return path
