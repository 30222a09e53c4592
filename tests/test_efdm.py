"""Engine 3 by EFDM (issue 37): the exact feature distribution matching transform against its
definition, its controls, the WCT chain with transform="efdm" whole and in tiles, the
library's and the CLI's choice of it, its export. Tiny random weights, 16-120 px."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from test_wct import WIDTH, _wct_params

from conftest import random_image
from jaxstyle.arbitrary.apply import apply_any, check_transform, make_any_stylizer
from jaxstyle.arbitrary.decoderfile import load_decoder, save_wct_level
from jaxstyle.arbitrary.efdm import (
    EFDMStats,
    content_quantiles,
    efdm_target,
    merge_quantiles,
    quantile_stats,
    stack_efdm_stats,
)
from jaxstyle.arbitrary.multilevel import WCTStylizer
from jaxstyle.errors import ConfigError

WCT_HEADER = {"width": WIDTH, "architecture": "wct-vgg19", "levels": [2, 1]}


def _continuous(rng, shape, scale=1.0, shift=0.0):
    """Features with no ties (ties are the one place where EFDM's order is a convention)."""
    return jnp.asarray(shift + scale * rng.normal(size=shape), jnp.float32)


def _sorted_channels(x):
    return np.sort(np.asarray(x).reshape(-1, x.shape[-1]), axis=0)


def test_same_size_output_takes_the_paintings_values_in_the_contents_order(rng):
    content = _continuous(rng, (1, 6, 8, 5))
    painting = jnp.asarray(rng.gamma(2.0, size=(1, 8, 6, 5)), jnp.float32)  # skewed: not AdaIN
    out = efdm_target(content, quantile_stats(painting, count=48))  # Q = P: no resampling
    np.testing.assert_allclose(_sorted_channels(out), _sorted_channels(painting), atol=1e-5)
    flat_in = np.asarray(content).reshape(-1, 5)
    flat_out = np.asarray(out).reshape(-1, 5)
    for c in range(5):  # the rank order of every channel is the content's
        assert (np.argsort(flat_out[:, c]) == np.argsort(flat_in[:, c])).all()


def test_other_sizes_take_the_paintings_quantiles(rng):
    content = _continuous(rng, (2, 10, 10, 3))  # two photos: each ranked on its own
    painting = _continuous(rng, (1, 16, 16, 3), scale=3.0, shift=5.0)
    stats = quantile_stats(painting)
    out = np.asarray(efdm_target(content, stats))
    levels = (np.arange(100) + 0.5) / 100
    want = np.quantile(np.asarray(painting).reshape(-1, 3), levels, axis=0,
                       method="hazen")  # hazen: value i at level (i + 0.5) / P, as here
    for n in range(2):
        got = np.sort(out[n].reshape(-1, 3), axis=0)
        # Sampled at 1024 levels and read between them: a small share of the values' gaps.
        np.testing.assert_allclose(got, want, atol=0.05 * 3.0)
        assert np.abs(got - want).mean() < 5e-3
    assert stats.quantiles.shape == (1, 1024, 3)


def test_alpha_zero_is_the_content_and_alpha_blends_linearly(rng):
    content = _continuous(rng, (2, 8, 8, 4))
    stats = quantile_stats(_continuous(rng, (1, 8, 8, 4), shift=3.0))
    np.testing.assert_allclose(efdm_target(content, stats, alpha=0.0), content, atol=1e-6)
    full = efdm_target(content, stats)
    per_image = efdm_target(content, stats, alpha=jnp.asarray([0.25, 1.0]))
    np.testing.assert_allclose(per_image[0], 0.25 * full[0] + 0.75 * content[0], atol=1e-5)
    np.testing.assert_allclose(per_image[1], full[1], atol=1e-6)
    assert np.abs(np.asarray(full - content)).mean() > 1.0  # the transform did something


def test_weights_average_the_quantile_functions(rng):
    content = _continuous(rng, (1, 8, 8, 3))
    paintings = [_continuous(rng, (1, 8, 8, 3), shift=-4.0),
                 _continuous(rng, (1, 8, 8, 3), scale=2.0, shift=4.0)]
    each = [quantile_stats(p, count=64) for p in paintings]
    stats = stack_efdm_stats(each)
    half = efdm_target(content, stats, weights=jnp.asarray([[0.5, 0.5]]))
    barycentre = EFDMStats(0.5 * (each[0].quantiles + each[1].quantiles))
    np.testing.assert_allclose(half, efdm_target(content, barycentre), atol=1e-5)
    np.testing.assert_allclose(_sorted_channels(half), np.asarray(barycentre.quantiles[0]),
                               atol=1e-5)
    one_hot = efdm_target(content, stats, weights=jnp.asarray([[0.0, 1.0]]))
    np.testing.assert_allclose(one_hot, efdm_target(content, each[1]), atol=1e-5)
    with pytest.raises(ValueError, match="2 styles need weights"):
        efdm_target(content, stats)


def test_each_region_gets_its_own_paintings_distribution(rng):
    content = _continuous(rng, (1, 8, 8, 2))
    paintings = [_continuous(rng, (1, 4, 8, 2), shift=-10.0),
                 _continuous(rng, (1, 4, 8, 2), scale=0.5, shift=10.0)]
    stats = stack_efdm_stats([quantile_stats(p, count=32) for p in paintings])
    left = np.zeros((1, 8, 8), np.float32)
    left[:, :, :4] = 1.0
    masks = jnp.asarray(np.stack([left, 1.0 - left], -1))
    out = np.asarray(efdm_target(content, stats, masks=masks))
    for k, region in enumerate((out[0, :, :4], out[0, :, 4:])):
        # 32 positions, 32 painting values: region k holds exactly painting k's values...
        np.testing.assert_allclose(np.sort(region.reshape(-1, 2), axis=0),
                                   _sorted_channels(paintings[k]), atol=1e-4)
        # ...in the order of the content's values within that region.
        inside = np.asarray(content)[0, :, 4 * k:4 * k + 4].reshape(-1, 2)
        assert (np.argsort(region.reshape(-1, 2)[:, 0]) == np.argsort(inside[:, 0])).all()
    with pytest.raises(ValueError, match="masks must be"):
        efdm_target(content, stats, masks=masks[..., :1])


def test_masked_statistics_count_positions_by_weight():
    values = jnp.asarray([3.0, 0.0, 1.0, 2.0]).reshape(1, 1, 4, 1)
    inside = jnp.asarray([1.0, 0.0, 1.0, 0.0]).reshape(1, 1, 4)
    np.testing.assert_allclose(quantile_stats(values, inside, count=2).quantiles[0, :, 0],
                               [1.0, 3.0], atol=1e-6)  # only the region's values, 1 and 3
    # A uniform soft weight is the plain statistics; an uneven one moves the quantiles.
    plain = quantile_stats(values, count=8).quantiles
    np.testing.assert_allclose(quantile_stats(values, 0.3 * jnp.ones((1, 1, 4)), count=8)
                               .quantiles, plain, atol=1e-6)
    heavy_top = quantile_stats(values, jnp.asarray([[[4.0, 1.0, 1.0, 1.0]]]), count=8)
    assert float(heavy_top.quantiles[0, 4, 0]) > float(plain[0, 4, 0]) + 0.5


def test_given_content_quantiles_give_nearly_the_exact_result(rng):
    content = _continuous(rng, (1, 24, 24, 4))
    stats = quantile_stats(_continuous(rng, (1, 16, 16, 4), scale=2.0, shift=1.0))
    exact = np.asarray(efdm_target(content, stats))
    interpolated = np.asarray(efdm_target(content, stats, own=content_quantiles(content)))
    difference = np.abs(exact - interpolated)
    # The content's CDF read off 1024 levels instead of its 576 ranks: measured mean 2.4e-3,
    # 99th percentile 2.8e-2, of a painting spread of 2.0 (the extremes, beyond the first
    # and last level, move most). Another photo's quantiles are far off.
    assert difference.mean() < 5e-3 and np.quantile(difference, 0.99) < 0.05
    wrong = np.asarray(efdm_target(content, stats, own=content_quantiles(2.0 * content)))
    assert np.abs(wrong - exact).mean() > 0.2
    assert np.abs(exact - np.asarray(content)).mean() > 0.5
    with pytest.raises(ValueError, match="own holds the whole photo"):
        efdm_target(content, EFDMStats(stats.quantiles), masks=jnp.ones((1, 24, 24, 1)),
                    own=content_quantiles(content))


def test_tiles_quantiles_merge_to_the_whole_photos(rng):
    photo = _continuous(rng, (1, 32, 32, 3))
    parts = [(content_quantiles(photo[:, :16], count=512), 512),
             (content_quantiles(photo[:, 16:], count=512), 512)]
    merged = merge_quantiles(parts)
    whole = np.asarray(content_quantiles(photo, count=512))
    # Each part's 512 positions kept exactly: the merge is the whole's sorted values, read
    # between neighbours at the tails where the two parts' levels interleave.
    assert merged.shape == whole.shape and np.abs(merged - whole).mean() < 1e-3
    unequal = merge_quantiles([(parts[0][0], 512), (parts[1][0], 1536)])  # the second weighs 3x
    assert np.abs(unequal - whole).mean() > 1e-2


@pytest.fixture(scope="module")
def chain(tiny_params):
    params = _wct_params((2, 1))
    rng = np.random.default_rng(37)  # its own: the tiled gap depends on the photo
    return params, random_image(rng, 120, 128), random_image(rng, 40, 48)[0]


def test_the_efdm_chain_runs_differs_from_wct_and_its_tiles_match_it(tiny_params, chain):
    params, photo, painting = chain
    whole = WCTStylizer(tiny_params, params, WIDTH, tile=None, transform="efdm")
    tiled = WCTStylizer(tiny_params, params, WIDTH, tile=56, transform="efdm")
    wct = WCTStylizer(tiny_params, params, WIDTH, tile=None)
    stats = whole.style_stats([painting])
    assert isinstance(stats["relu2_1"], EFDMStats) and tiled.runs_tiled(120, 128)
    first = np.asarray(whole(photo, stats))
    assert first.shape == photo.shape and np.isfinite(first).all()
    against_wct = np.abs(first - np.asarray(wct(photo, wct.style_stats([painting]))))
    assert against_wct.mean() > 0.02
    # Tiles rank by the whole photo's quantiles merged from theirs; the untiled chain by a
    # sort, ties (ReLU's zeros) sharing their run's middle rank in both. What is left is the
    # merged quantiles' interpolation: mean 0.0021, median 0.0007, 99th percentile 0.024
    # here (ranking ties by position instead made the mean 0.021).
    difference = np.abs(np.asarray(tiled(photo, stats)) - first)
    assert difference.mean() < 0.005 and np.quantile(difference, 0.5) < 0.002
    timings = whole.level_milliseconds(photo, stats)
    assert list(timings) == ["relu2_1", "relu1_1"] and min(timings.values()) > 0
    two = {name: stack_efdm_stats([value, value]) for name, value in stats.items()}
    with pytest.raises(ValueError, match="takes no masks"):
        tiled(photo, two, masks=np.full((1, 120, 128, 2), 0.5, np.float32))


def test_library_choices_of_transform(tiny_params, chain):
    params, photo, painting = chain
    small, style = photo[0, :32, :32], painting[:32, :32]
    efdm = apply_any(tiny_params, params, WCT_HEADER, small, [style], transform="efdm")
    wct = apply_any(tiny_params, params, WCT_HEADER, small, [style])
    assert efdm.shape == small.shape and np.abs(efdm - wct).max() > 1e-2
    assert check_transform(None, WCT_HEADER) == "wct"
    assert check_transform("efdm", WCT_HEADER) == "efdm"
    with pytest.raises(ConfigError, match="transform must be one of wct, efdm, got 'adain'"):
        check_transform("adain", WCT_HEADER)
    with pytest.raises(ConfigError, match="transform chooses a WCT model's feature transform"):
        check_transform("efdm", {"width": WIDTH})  # an AdaIN decoder's header
    with pytest.raises(ConfigError, match="whitens nothing"):
        make_any_stylizer(tiny_params, params, WCT_HEADER, transform="efdm",
                          whitening="newton-schulz")
    stylizer = WCTStylizer(tiny_params, params, WIDTH, transform="efdm")
    with pytest.raises(ConfigError, match="transform 'wct', but the stylizer"):
        apply_any(tiny_params, params, WCT_HEADER, small, [style], stylizer=stylizer,
                  transform="wct")
    with pytest.raises(ValueError, match="transform must be one of"):
        WCTStylizer(tiny_params, params, WIDTH, transform="EFDM")


def test_the_efdm_chain_exports_to_stablehlo_only(tiny_params, chain):
    from jaxstyle.export import ExportError, any_style_export, exported, onnx_model

    params, _, painting = chain
    spec = any_style_export(tiny_params, params, WCT_HEADER, style_image=painting[:32, :32],
                            transform="efdm")
    assert spec.metadata["transform"] == "efdm" and "whitening" not in spec.metadata
    assert "stablehlo.sort" in exported(spec).mlir_module()
    with pytest.raises(ExportError, match="transform 'efdm' exports to StableHLO only"):
        onnx_model(spec)


def _cli(*args):
    from test_arbitrary import _cli as run

    return run(*args)


def test_cli_applies_efdm_and_refuses_a_bad_transform(tmp_path, tiny_params,
                                                     tiny_weights_file):
    from jaxstyle.images import load_image

    path = tmp_path / "wct.jxs"
    save_wct_level(path, 2, _wct_params((2,))["relu2_1"], {"width": WIDTH})  # one level: fast
    rng = np.random.default_rng(8)
    photo, painting = tmp_path / "photo.png", tmp_path / "painting.png"
    Image.fromarray((random_image(rng, 32, 32)[0] * 255).astype(np.uint8)).save(photo)
    Image.fromarray((random_image(rng, 36, 36)[0] * 255).astype(np.uint8)).save(painting)
    out = tmp_path / "out.png"
    done = _cli("apply", path, photo, "--style-image", painting, "-o", out, "--transform",
                "efdm", "--weights", tiny_weights_file, "-q")
    assert done.returncode == 0, done.stderr
    loaded, header = load_decoder(path)
    want = {t: np.round(255 * apply_any(tiny_params, loaded, header, load_image(photo),
                                        [load_image(painting)], transform=t))
            for t in ("wct", "efdm")}
    got = np.asarray(Image.open(out), np.float32)
    # The CLI ran efdm, not wct (its default).
    assert (got != want["efdm"]).mean() < 0.01 < (got != want["wct"]).mean()
    refused = [
        (_cli("apply", path, photo, "--style-image", painting, "-o", tmp_path / "x.png",
              "--transform", "histogram", "--weights", tiny_weights_file),
         "invalid choice: 'histogram'"),
        (_cli("apply", "paintings", photo, "-o", tmp_path / "x.png", "--transform", "efdm"),
         "--transform works with an arbitrary-style decoder"),
        (_cli("apply", "any", photo, "--style-image", painting, "-o", tmp_path / "x.png",
              "--transform", "efdm"), "this model is an AdaIN decoder"),
    ]
    for done, message in refused:
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) <= 3  # usage + one error line, no trace
    assert not (tmp_path / "x.png").exists()


def test_studio_transform_setting_maps_to_the_flag():
    from jaxstyle.serve.settings import parse_job

    job = {"engine": "any", "photo": {"demo": True}, "styles": [{"painting": 0}]}
    assert "--transform" not in parse_job(job, 1, {}).command()
    assert parse_job(job, 1, {}).transform == "wct"
    chosen = parse_job({**job, "transform": "efdm"}, 1, {})
    assert chosen.transform == "efdm" and chosen.command().endswith("--transform efdm")
    for hostile in ("adain", None, 3, ["efdm"], "efdm; rm -rf /"):
        with pytest.raises(ConfigError, match="transform must be one of"):
            parse_job({**job, "transform": hostile}, 1, {})



def test_tied_values_share_one_rank_wherever_they_are():
    # Half a post-ReLU map is exactly 0: every zero gets the painting's value at the middle
    # of the zeros' quantile span, not a spread of values ordered by position.
    content = jnp.asarray(np.array([0, 0, 0, 0, 1, 2, 3, 3], np.float32).reshape(1, 2, 4, 1))
    stats = quantile_stats(jnp.arange(8.0).reshape(1, 2, 4, 1), count=8)
    out = np.asarray(efdm_target(content, stats)).ravel()
    np.testing.assert_allclose(out, [1.5, 1.5, 1.5, 1.5, 4.0, 5.0, 6.5, 6.5], atol=1e-6)
