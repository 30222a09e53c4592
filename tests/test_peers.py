"""The benchmark peers (TensorFlow, PyTorch) against a NumPy loss and against each other."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from jaxstyle.bench.peers import PEERS, PeerUnavailable, build, normalised_weights
from jaxstyle.config import StyleConfig
from jaxstyle.errors import ConfigError, JaxstyleError
from jaxstyle.vgg import LAYER_NAMES, VGG19_CONV_LAYERS
from reference import np_vgg

SIZE = 32
# The tiny weights below give features of about 1; this style weight makes the style term as
# large as the content term, so every part of the loss shows in the comparisons.
CFG = StyleConfig(style_weight=1e5)
OTHER_CFG = StyleConfig(content_layers=("block3_conv2", "block4_conv1"),
                        style_layers=("block1_conv2", "block3_conv1"),
                        content_layer_weights=(3.0, 1.0), style_layer_weights=(1.0, 2.0),
                        content_weight=1e3, style_weight=1e4, tv_weight=1e-2, pooling="avg",
                        learning_rate=0.05, beta1=0.9, beta2=0.99, epsilon=1e-3)
CONFIGS = {"default": CFG, "other": OTHER_CFG}
@pytest.fixture(scope="module")
def peer_params():
    """Random VGG19 params, He-scaled; the first layer also by 1/255 so features stay near 1."""
    rng = np.random.default_rng(0)
    params = {}
    for name, cin, cout in VGG19_CONV_LAYERS:
        scale = np.sqrt(2.0 / (9 * cin)) / (255.0 if name == "block1_conv1" else 1.0)
        params[name] = {
            "kernel": (rng.standard_normal((3, 3, cin, cout)) * scale).astype(np.float32),
            "bias": (0.1 * rng.standard_normal(cout)).astype(np.float32),
        }
    return params


@pytest.fixture(scope="module")
def images():
    """Content, style and a third starting image, so the content loss is not zero at start."""
    rng = np.random.default_rng(1)
    return tuple(rng.random((1, SIZE, SIZE, 3), dtype=np.float32) for _ in range(3))


def _tf_peer():
    pytest.importorskip("tensorflow")
    from jaxstyle.bench.peers import tf_peer
    return tf_peer


def _torch_peer():
    pytest.importorskip("torch")
    from jaxstyle.bench.peers import torch_peer
    return torch_peer


PEER_MODULES = {"tf": _tf_peer, "torch": _torch_peer}

# --------------------------------------------------------------------------- NumPy reference


def _features(params, image, pooling):
    return np_vgg(params, image, LAYER_NAMES, pooling)


def _gram(features):
    _, h, w, _ = features.shape
    return np.einsum("bijc,bijd->bcd", features, features) / (h * w)


def numpy_loss(params, content, style, image, cfg):
    """The seed's total loss in float64."""
    content_targets = _features(params, content, cfg.pooling)
    style_targets = _features(params, style, cfg.pooling)
    features = _features(params, image, cfg.pooling)
    content_weights = normalised_weights(cfg.content_layers, cfg.content_layer_weights)
    style_weights = normalised_weights(cfg.style_layers, cfg.style_layer_weights)
    content_term = sum(w * np.mean((features[name] - content_targets[name]) ** 2)
                       for name, w in zip(cfg.content_layers, content_weights, strict=True))
    style_term = sum(w * np.mean((_gram(features[name]) - _gram(style_targets[name])) ** 2)
                     for name, w in zip(cfg.style_layers, style_weights, strict=True))
    x = image.astype(np.float64)
    tv = np.abs(np.diff(x, axis=1)).sum() + np.abs(np.diff(x, axis=2)).sum()
    return (cfg.content_weight * content_term + cfg.style_weight * style_term
            + cfg.tv_weight * tv)


def test_normalised_weights():
    np.testing.assert_allclose(normalised_weights(("a", "b"), None), (0.5, 0.5))
    np.testing.assert_allclose(normalised_weights(("a", "b"), (3.0, 1.0)), (0.75, 0.25))


# --------------------------------------------------------------------------- each peer


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("peer", sorted(PEER_MODULES))
def test_initial_loss_matches_numpy(peer, config, peer_params, images):
    module = PEER_MODULES[peer]()
    content, style, start = images
    cfg = CONFIGS[config]
    expected = numpy_loss(peer_params, content, style, start, cfg)
    step = module.build(peer_params, content, style, cfg, image=start)
    np.testing.assert_allclose(step.loss(), expected, rtol=1e-4)
    # step() returns the loss before its update, and then moves the image.
    np.testing.assert_allclose(step.step(), expected, rtol=1e-4)
    assert not np.array_equal(step.image(), start)


@pytest.mark.parametrize("peer", sorted(PEER_MODULES))
def test_starts_from_content_and_keeps_image_in_unit_range(peer, peer_params, images):
    module = PEER_MODULES[peer]()
    content, style, _ = images
    step = module.build(peer_params, content, style, CFG)
    assert step.name == peer
    np.testing.assert_array_equal(step.image(), content)
    # A huge learning rate pushes pixels far past [0, 1]; the clip must bring them back.
    step = module.build(peer_params, content, style, CFG.replace(learning_rate=10.0))
    step.step()
    image = step.image()
    assert image.shape == content.shape and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert (image == 0.0).any() and (image == 1.0).any()


@pytest.mark.parametrize("peer", sorted(PEER_MODULES))
def test_rejects_bad_images(peer, peer_params, images):
    module = PEER_MODULES[peer]()
    content, style, _ = images
    with pytest.raises(ValueError, match="content must be"):
        module.build(peer_params, content[0], style, CFG)
    with pytest.raises(ValueError, match="at least 32x32"):
        module.build(peer_params, content, style[:, :16, :16], CFG)
    with pytest.raises(ValueError, match="image must have the content's shape"):
        module.build(peer_params, content, style, CFG, image=np.zeros((1, 40, 32, 3)))


# --------------------------------------------------------------------------- peers agree


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_tf_and_torch_agree_after_three_steps(config, peer_params, images):
    tf_peer, torch_peer = _tf_peer(), _torch_peer()
    content, style, start = images
    cfg = CONFIGS[config]
    peers = [module.build(peer_params, content, style, cfg, image=start)
             for module in (tf_peer, torch_peer)]
    for peer in peers:
        first = peer.loss()
        losses = [peer.step() for _ in range(3)]
        assert peer.loss() < first, peer.name
        np.testing.assert_allclose(losses[0], first, rtol=1e-5)
    np.testing.assert_allclose(peers[0].image(), peers[1].image(), atol=1e-4)
    assert np.abs(peers[0].image() - start).max() > 1e-2  # they did move


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_matches_eager(peer_params, images):
    # Two layers keep the compile short (about 35 s cold, 6 s with inductor's cache).
    torch_peer = _torch_peer()
    content, style, start = images
    cfg = CFG.replace(content_layers=("block2_conv1",),
                      style_layers=("block1_conv1", "block2_conv1"))
    compiled = torch_peer.build(peer_params, content, style, cfg, image=start, compile=True)
    eager = torch_peer.build(peer_params, content, style, cfg, image=start)
    assert compiled.name == "torch-compile"
    np.testing.assert_array_equal(compiled.image(), start)  # compiling does not step
    for _ in range(2):
        np.testing.assert_allclose(compiled.step(), eager.step(), rtol=1e-5)
    np.testing.assert_allclose(compiled.image(), eager.image(), atol=1e-5)


def test_torch_compile_failure_is_peer_unavailable(peer_params, images, monkeypatch):
    torch = pytest.importorskip("torch")
    from jaxstyle.bench.peers import torch_peer

    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken_compile)
    content, style, _ = images
    with pytest.raises(PeerUnavailable, match="torch.compile failed: RuntimeError: no C"):
        torch_peer.build(peer_params, content, style, CFG, compile=True)


# --------------------------------------------------------------------------- no framework needed


@pytest.mark.parametrize("peer, framework", [("tf", "tensorflow"), ("torch", "torch"),
                                             ("torch-compile", "torch")])
def test_missing_framework_is_peer_unavailable(peer, framework, peer_params, images,
                                               monkeypatch):
    monkeypatch.setitem(sys.modules, framework, None)  # makes `import framework` fail
    content, style, _ = images
    with pytest.raises(PeerUnavailable, match=r'pip install -e "\.\[peers\]"') as info:
        build(peer, peer_params, content, style, CFG)
    assert isinstance(info.value, ImportError) and isinstance(info.value, JaxstyleError)
    assert framework in str(info.value)


@pytest.mark.parametrize("change, message", [
    ({"optimizer": "lbfgs"}, "Keras Adam"),
    ({"precision": "bf16"}, "fp32"),
    ({"ema": 0.9}, "EMA"),
    ({"style_blend": (1.0, 1.0)}, "one style image"),
])
@pytest.mark.parametrize("peer", PEERS)
def test_unsupported_settings_raise_config_error(peer, change, message, peer_params, images):
    content, style, _ = images
    with pytest.raises(ConfigError, match=message):
        build(peer, peer_params, content, style, CFG.replace(**change))


def test_unknown_peer():
    with pytest.raises(ConfigError, match="unknown peer 'mxnet'"):
        build("mxnet", {}, np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)), CFG)


def test_parity_record_follows_tensorflow_step_for_step(tmp_path, tiny_params, capsys):
    """`bench parity --record`: TF's trajectory is written, and jaxstyle's step follows it."""
    _tf_peer()
    from jaxstyle.bench import parity

    recorded = parity.record_tf(tiny_params, 32, 3)
    path = tmp_path / "tf.npz"
    parity.save_trajectory(str(path), recorded)
    loaded = parity.load_trajectory(str(path))
    np.testing.assert_array_equal(loaded["losses"], recorded["losses"])
    losses, image = parity.run_jaxstyle(tiny_params, 32, 3, "highest")
    found = parity.compare(loaded, losses, image)
    assert found["max_rel_loss"] < 1e-4 and found["max_px"] < 1.0
