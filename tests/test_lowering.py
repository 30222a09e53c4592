"""Every compiled program lowered for CUDA and TPU, with no such device here (issue 35, item 6):
none may call what only XLA's CPU backend has (LAPACK, DUCC, a CPU host callback). Engine 1's
step for one image and for a batch (its spatially sharded form: tests/scripts/
sharded_equals_single.py, in test_scaling.py), engine 2's network, engine 3's AdaIN pass and
the WCT chain by either whitening. Tiny random weights, 32-40 px."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle
from conftest import random_image
from jaxstyle.arbitrary.decoder import ENCODER_LAYER, FEATURE_MEANS, init_decoder
from jaxstyle.arbitrary.multilevel import WCTStylizer
from jaxstyle.arbitrary.transfer import ArbitraryStylizer
from jaxstyle.export import (
    ExportError,
    check_portable,
    cpu_only_custom_calls,
    custom_call_targets,
    lowered_texts,
)
from jaxstyle.feedforward import init_params
from jaxstyle.feedforward.apply import make_stylizer
from jaxstyle.gatys.batch import stack_targets

PLATFORMS = ("cuda", "tpu")
WIDTH = 0.125
LAYERS = dict(content_layers=("block2_conv2",), style_layers=("block1_conv1", "block2_conv1"))
CFG = jaxstyle.StyleConfig(steps=2, max_dim=64, **LAYERS)


def lowered(jitted, *args) -> dict[str, str]:
    """A jitted program's StableHLO text for CUDA and TPU (traced once)."""
    traced = jitted.trace(*args)
    return lowered_texts(lambda platform: traced.lower(lowering_platforms=(platform,)),
                         PLATFORMS)


def portable_targets(texts: dict[str, str], what: str) -> dict[str, list[str]]:
    assert set(texts) == set(PLATFORMS)
    return check_portable(texts, what)  # ExportError (a failure) on a CPU-only call


# --- the scanner itself: it finds what it must (the negative controls) ------------------------

def test_the_scanner_flags_the_cpus_own_calls_and_nothing_else():
    eigh = jax.jit(lambda x: jnp.linalg.eigh(x)[0]).trace(
        jax.ShapeDtypeStruct((4, 4), jnp.float32))
    texts = lowered_texts(lambda p: eigh.lower(lowering_platforms=(p,)), ("cpu", *PLATFORMS))
    assert cpu_only_custom_calls(texts["cpu"]) == ["lapack_ssyevd_ffi"]
    with pytest.raises(ExportError, match="cuda: lapack_ssyevd_ffi"):
        check_portable({"cuda": texts["cpu"], "tpu": texts["tpu"]}, "eigh")
    # Lowered for CUDA and TPU, eigh is their own solver: no plugin needed to lower it.
    assert portable_targets({p: texts[p] for p in PLATFORMS}, "eigh") == {
        "cuda": ["cusolver_syevd_ffi"], "tpu": ["Eigh"]}
    callback = jax.jit(lambda x: jax.pure_callback(
        lambda a: np.asarray(a) * 2, jax.ShapeDtypeStruct((4,), jnp.float32), x))
    text = callback.trace(jax.ShapeDtypeStruct((4,), jnp.float32)).lower(
        lowering_platforms=("cpu",)).as_text()
    assert cpu_only_custom_calls(text) == ["xla_ffi_python_cpu_callback"]
    generic = ('%0 = "stablehlo.custom_call"(%arg0) <{call_target_name = "ducc_fft", '
               'has_side_effect = false}> : (tensor<8xf32>) -> tensor<8xf32>\n'
               '%1 = stablehlo.custom_call @"xla_python_cpu_callback"(%0)\n'
               '%2 = stablehlo.custom_call @Sharding(%1)\n')
    assert custom_call_targets(generic) == ["Sharding", "ducc_fft", "xla_python_cpu_callback"]
    assert cpu_only_custom_calls(generic) == ["ducc_fft", "xla_python_cpu_callback"]


# --- engine 1: the optimisation step ------------------------------------------------------------

@pytest.fixture(scope="module")
def params(tiny_params):
    return jaxstyle.prepare_params(
        {k: v for k, v in tiny_params.items() if k.startswith(("block1", "block2"))})


def test_the_step_for_one_image_and_for_a_batch_lowers_for_cuda_and_tpu(params, rng):
    photos = [random_image(rng, 32, 40)[0] for _ in range(2)]
    painting = random_image(rng, 32, 32)[0]
    targets = jaxstyle.make_targets(params, photos[0], painting, CFG)
    state = jaxstyle.init_state(photos[0], CFG)
    step = jaxstyle.make_step(CFG, donate=False)
    single = lowered_texts(lambda p: step.lower(params, targets, state, platforms=(p,)),
                           PLATFORMS)
    assert "HIGHEST" in single["cuda"]  # the step itself, at its configured precision
    portable_targets(single, "the step")
    batch_targets = stack_targets([jaxstyle.make_targets(params, x, painting, CFG)
                                   for x in photos])
    batch_state = jax.tree.map(lambda *leaves: np.stack(leaves),
                               *[jax.device_get(jaxstyle.init_state(x, CFG)) for x in photos])
    batched = jaxstyle.make_step(CFG, batched=True, donate=False)
    texts = lowered_texts(lambda p: batched.lower(params, batch_targets, batch_state,
                                                  platforms=(p,)), PLATFORMS)
    assert "tensor<2x1x32x40x3xf32>" in texts["tpu"]  # two jobs' images in one program
    portable_targets(texts, "the batched step")


# --- engine 2: a network trained for its styles ------------------------------------------------

def test_the_feedforward_network_lowers_for_cuda_and_tpu(rng):
    stylizer = make_stylizer(init_params(0, 2, WIDTH, size=32),
                             {"num_styles": 2, "width": WIDTH})
    photos = jnp.asarray(random_image(rng, 32, 40))
    weights = jnp.asarray([[0.3, 0.7]], jnp.float32)
    texts = lowered(stylizer._jitted, stylizer.params, photos, weights)  # what a call runs
    assert "stablehlo.convolution" in texts["cuda"]
    portable_targets(texts, "the feed-forward network")


# --- engine 3: AdaIN, and WCT by each whitening ------------------------------------------------

def _pass_args(stylizer, rng):
    photos = random_image(rng, 32, 40)
    stats = stylizer.style_stats([random_image(rng, 32, 32)[0]])
    return (stylizer.vgg_params, stylizer.model_params, jnp.asarray(photos), stats, None, None,
            jnp.ones(1, jnp.float32))


def test_the_adain_pass_lowers_for_cuda_and_tpu(tiny_params, rng):
    decoder = jax.tree.map(np.asarray, init_decoder(0, WIDTH))
    decoder["conv0"]["kernel"] = decoder["conv0"]["kernel"] * FEATURE_MEANS[ENCODER_LAYER]
    stylizer = ArbitraryStylizer(tiny_params, decoder, WIDTH)
    texts = lowered(stylizer._jitted, *_pass_args(stylizer, rng))
    portable_targets(texts, "the AdaIN pass")


@pytest.mark.parametrize("whitening, solvers", [
    ("eigh", {"cuda": ["cusolver_syevd_ffi"], "tpu": ["Eigh"]}),
    ("newton-schulz", {"cuda": [], "tpu": []}),  # matrix products only
])
def test_the_wct_chain_lowers_for_cuda_and_tpu_by_either_whitening(tiny_params, rng,
                                                                   whitening, solvers):
    from test_wct import _wct_params

    stylizer = WCTStylizer(tiny_params, _wct_params((2, 1)), WIDTH, whitening=whitening)
    texts = lowered(stylizer._jitted, *_pass_args(stylizer, rng))
    found = portable_targets(texts, f"the WCT chain ({whitening})")
    assert {p: [t for t in targets if "syevd" in t or t == "Eigh"]
            for p, targets in found.items()} == solvers, found


def test_the_wct_chain_lowers_for_cuda_and_tpu_with_efdm(tiny_params, rng):
    from test_wct import _wct_params

    stylizer = WCTStylizer(tiny_params, _wct_params((2, 1)), WIDTH, transform="efdm")
    texts = lowered(stylizer._jitted, *_pass_args(stylizer, rng))
    found = portable_targets(texts, "the WCT chain (efdm)")
    # Each channel's sort and the scatter back to positions: no solver, no custom call.
    assert all("stablehlo.sort" in text and "stablehlo.scatter" in text
               for text in texts.values()), found
    assert not any("syevd" in t or t == "Eigh" for targets in found.values() for t in targets)
