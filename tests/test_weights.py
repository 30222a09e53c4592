"""Every Keras VGG19 file layout loads to the same params; every bad file gives WeightsError."""

import json
import zipfile

import h5py
import numpy as np
import pytest

from conftest import random_params
from jaxstyle.errors import WeightsError
from jaxstyle.vgg import LAYER_NAMES
from jaxstyle.weights import load_params, load_vgg19, save_params, write_keras_h5

EXTRA_LAYERS = ["input_1", "block1_pool", "block2_pool", "flatten", "fc1", "fc2", "predictions"]


def _names(items):
    return np.array([n.encode() for n in items])


def _add_top(group, weight_name):
    """A classifier head, which the reader must ignore."""
    for name, shape in (("fc1", (512, 8)), ("predictions", (8, 4))):
        layer = group.create_group(name)
        names = [weight_name(name, "kernel"), weight_name(name, "bias")]
        layer.attrs["weight_names"] = _names(names)
        layer.create_dataset(names[0], data=np.ones(shape, np.float32))
        layer.create_dataset(names[1], data=np.ones(shape[1], np.float32))
    for name in ("input_1", "block1_pool", "block2_pool", "flatten", "fc2"):
        group.create_group(name).attrs["weight_names"] = _names([])


def write_named_layout(path, params, layout):
    """Layouts 1-3: `layer_names` / `weight_names` attributes, datasets at varying depth."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if layout == "model" else f
        root.attrs["layer_names"] = _names(EXTRA_LAYERS[:1] + list(LAYER_NAMES) + EXTRA_LAYERS[1:])
        if layout == "classic":
            weight_name = lambda layer, kind: f"{layer}_{'W' if kind == 'kernel' else 'b'}_1:0"
        elif layout == "keras2":
            weight_name = lambda layer, kind: f"{layer}/{kind}:0"
        else:  # full model saved by Keras 3: no ':0'
            weight_name = lambda layer, kind: f"{layer}/{kind}"
        for name in LAYER_NAMES:
            group = root.create_group(name)
            # Bias first: the reader must not depend on the order.
            names = [weight_name(name, "bias"), weight_name(name, "kernel")]
            group.attrs["weight_names"] = _names(names)
            group.create_dataset(names[0], data=params[name]["bias"])
            group.create_dataset(names[1], data=params[name]["kernel"])
        _add_top(root, weight_name)
        if layout == "model":
            f.attrs["keras_version"] = "3.5.0"
            f.attrs["model_config"] = json.dumps({"class_name": "Functional"})


def write_keras3_weights(path_or_file, params, keep_names=False):
    """Layout 4: `layers/conv2d_N/vars/{0,1}` named by class and counter, plus non-conv layers."""
    with h5py.File(path_or_file, "w") as f:
        layers = f.create_group("layers")
        layers.create_group("input_layer").create_group("vars")
        for index, name in enumerate(LAYER_NAMES):
            group_name = name if keep_names else ("conv2d" if index == 0 else f"conv2d_{index}")
            var_group = layers.create_group(group_name).create_group("vars")
            var_group.create_dataset("0", data=params[name]["kernel"])
            var_group.create_dataset("1", data=params[name]["bias"])
        layers.create_group("max_pooling2d").create_group("vars")
        dense = layers.create_group("dense").create_group("vars")
        dense.create_dataset("0", data=np.ones((512, 4), np.float32))
        dense.create_dataset("1", data=np.ones(4, np.float32))
        f.create_group("optimizer").create_group("vars")


def write_keras_archive(path, params):
    """Layout 5: a .keras zip holding model.weights.h5 (layout 4) and config.json."""
    h5_path = path.with_suffix(".inner.h5")
    write_keras3_weights(h5_path, params)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Functional"}))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        archive.write(h5_path, "model.weights.h5")
    h5_path.unlink()


@pytest.fixture(scope="module")
def params():
    return random_params(3)


def assert_same(loaded, params):
    assert sorted(loaded) == sorted(LAYER_NAMES)
    for name in LAYER_NAMES:
        for key in ("kernel", "bias"):
            assert loaded[name][key].dtype == np.float32
            np.testing.assert_array_equal(loaded[name][key], params[name][key])


@pytest.mark.parametrize("layout", ["classic", "keras2", "model"])
def test_named_layouts_load(tmp_path, params, layout):
    path = tmp_path / f"{layout}.h5"
    write_named_layout(path, params, layout)
    assert_same(load_vgg19(path), params)


@pytest.mark.parametrize("keep_names", [False, True])
def test_keras3_weights_layout_loads_in_numeric_order(tmp_path, params, keep_names):
    path = tmp_path / "x.weights.h5"
    write_keras3_weights(path, params, keep_names)
    with h5py.File(path) as f:  # the premise: HDF5 lists conv2d_10 before conv2d_2
        listed = list(f["layers"])
        if not keep_names:
            assert listed.index("conv2d_10") < listed.index("conv2d_2")
    assert_same(load_vgg19(path), params)


def test_keras_archive_loads(tmp_path, params):
    path = tmp_path / "vgg19.keras"
    write_keras_archive(path, params)
    assert_same(load_vgg19(path), params)


def test_library_writer_and_npz_round_trip(tmp_path, params):
    h5 = write_keras_h5(tmp_path / "w.h5", params)
    assert_same(load_vgg19(h5), params)
    npz = save_params(load_vgg19(h5), tmp_path / "w.npz")
    assert_same(load_params(npz), params)
    assert_same(load_vgg19(npz), params)
    assert not list(tmp_path.glob("*.part"))


def _mutated(params, layer, **changes):
    copy = {name: dict(weights) for name, weights in params.items()}
    copy[layer].update(changes)
    return copy


def test_missing_layer_is_named(tmp_path, params):
    path = tmp_path / "missing.h5"
    with h5py.File(path, "w") as f:
        names = [n for n in LAYER_NAMES if n != "block4_conv3"]
        f.attrs["layer_names"] = _names(names)
        for name in names:
            group = f.create_group(name)
            group.attrs["weight_names"] = _names(["k", "b"])
            group.create_dataset("k", data=params[name]["kernel"])
            group.create_dataset("b", data=params[name]["bias"])
    with pytest.raises(WeightsError, match=r"missing\.h5.*block4_conv3 is missing"):
        load_vgg19(path)


def test_wrong_shape_is_named(tmp_path, params):
    bad = _mutated(params, "block2_conv1", kernel=np.zeros((3, 3, 64, 64), np.float32))
    path = tmp_path / "shape.h5"
    write_named_layout(path, bad, "keras2")
    with pytest.raises(WeightsError, match=r"block2_conv1 kernel has shape \(3, 3, 64, 64\)"):
        load_vgg19(path)


def test_non_finite_values_are_named(tmp_path, params):
    bias = params["block5_conv4"]["bias"].copy()
    bias[3] = np.nan
    path = tmp_path / "nan.h5"
    write_named_layout(path, _mutated(params, "block5_conv4", bias=bias), "classic")
    with pytest.raises(WeightsError, match="block5_conv4 bias has non-finite"):
        load_vgg19(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("hello")
    with pytest.raises(WeightsError, match="not an HDF5 file"):
        load_vgg19(path)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="no such file"):
        load_vgg19(tmp_path / "absent.h5")


def test_truncated_file(tmp_path, params):
    path = tmp_path / "full.h5"
    write_keras_h5(path, params)
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut.h5"):
        load_vgg19(cut)


def test_unknown_h5_layout(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsError, match="unknown layout"):
        load_vgg19(path)


def test_keras3_file_of_another_network(tmp_path, params):
    path = tmp_path / "resnet.weights.h5"
    with h5py.File(path, "w") as f:
        for index in range(16):
            group = f.create_group(f"layers/conv2d_{index}/vars")
            group.create_dataset("0", data=np.zeros((1, 1, 3, 8), np.float32))
            group.create_dataset("1", data=np.zeros(8, np.float32))
    with pytest.raises(WeightsError, match="not a VGG19 file"):
        load_vgg19(path)


def test_zip_that_is_not_keras(tmp_path):
    path = tmp_path / "x.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(WeightsError, match="without model.weights.h5"):
        load_vgg19(path)
