"""Time each of TransformerNet's convolutions alone, under XLA's conv paths and PyTorch's.

    python scripts/bench_model_convs.py --width 0.5 --size 256 --steps 7

Per layer shape (input already padded, as the net pads it): XLA's default path, XLA with the
convolutions kept off YNNPACK (`fastconv.NO_YNN_CONV_OPTIONS`), the 9x9 layers through
`fastconv.conv_space_to_depth` (off YNNPACK too), and torch's `F.conv2d` (oneDNN) when
installed. The forms take turns call by call; each cell is the minimum ms over the timed calls.
The `net` line adds the layers up as the net uses them (the residual conv 10 times).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from jaxstyle import fastconv  # noqa: E402
from jaxstyle.feedforward.network import NUM_RESIDUAL_BLOCKS, channel_counts  # noqa: E402


def layer_shapes(size: int, width: float) -> list[tuple[str, int, int, int, int, int, int]]:
    """(name, output side, Cin, Cout, kernel, stride, uses per net) of every conv shape."""
    c1, c2, c3 = channel_counts(width)
    return [("encode0", size, 3, c1, 9, 1, 1), ("encode1", size // 2, c1, c2, 3, 2, 1),
            ("encode2", size // 4, c2, c3, 3, 2, 1),
            ("residual", size // 4, c3, c3, 3, 1, 2 * NUM_RESIDUAL_BLOCKS),
            ("decode0", size // 2, c3, c2, 3, 1, 1), ("decode1", size, c2, c1, 3, 1, 1),
            ("output", size, c1, 3, 9, 1, 1)]


def conv_forms(kernel_size: int, stride: int) -> dict:
    """name -> jitted (x, kernel) -> y for this layer."""
    forms = {
        "xla": jax.jit(lambda x, k: fastconv.conv_valid(x, k, stride)),
        "xla no-ynn": jax.jit(lambda x, k: fastconv.conv_valid(x, k, stride),
                              compiler_options=fastconv.cpu_conv_compiler_options() or None),
    }
    if stride == 1 and kernel_size >= fastconv.SPACE_TO_DEPTH_MIN_KERNEL:
        forms["s2d no-ynn"] = jax.jit(fastconv.conv_space_to_depth,
                                      compiler_options=fastconv.cpu_conv_compiler_options() or None)
    return forms


def torch_form(x: np.ndarray, kernel: np.ndarray, stride: int):
    """A call of torch's F.conv2d on the same NCHW data, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    x_nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    kernel_oihw = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))

    def call():
        with torch.inference_mode():
            return torch.nn.functional.conv2d(x_nchw, kernel_oihw, stride=stride)

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side, px (multiple of 4)")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=7, help="timed calls per form")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    totals: dict[str, float] = {}
    names = ["xla", "xla no-ynn", "s2d no-ynn", "torch"]
    print(f"{'layer':<9} {'out px':>6} {'cin->cout':>9} {'k/s':>5} {'MFLOP':>7} "
          + " ".join(f"{name:>11}" for name in names) + "  max |diff|")
    for name, side, cin, cout, k, stride, uses in layer_shapes(args.size, args.width):
        padded = (side - 1) * stride + k
        x = rng.standard_normal((args.batch, padded, padded, cin)).astype(np.float32)
        kernel = (rng.standard_normal((k, k, cin, cout)) / np.sqrt(k * k * cin)).astype(
            np.float32)
        forms = conv_forms(k, stride)
        reference = np.asarray(forms["xla"](x, kernel))
        difference = max(float(np.abs(np.asarray(f(x, kernel)) - reference).max())
                         for f in forms.values())
        calls = {form: (lambda f=f, x=x, kernel=kernel: f(x, kernel).block_until_ready())
                 for form, f in forms.items()}
        torch_call = torch_form(x, kernel, stride)
        if torch_call is not None:
            calls["torch"] = torch_call
        times = {form: [] for form in calls}
        for call in calls.values():
            call()
        for _ in range(args.steps):
            for form, call in calls.items():
                started = time.perf_counter()
                call()
                times[form].append(1e3 * (time.perf_counter() - started))
        best = {form: min(values) for form, values in times.items()}
        for form in names:
            # A form without a layer-specific variant runs as the plain no-YNN conv.
            fallback = "xla no-ynn" if form == "s2d no-ynn" else None
            value = best.get(form, best.get(fallback))
            if value is not None:
                totals[form] = totals.get(form, 0.0) + uses * value
        mflop = 2 * k * k * cin * cout * side * side * args.batch / 1e6
        print(f"{name:<9} {side:>6} {f'{cin}->{cout}':>9} {f'{k}/{stride}':>5} {mflop:>7.0f} "
              + " ".join(f"{best[n]:>11.2f}" if n in best else f"{'':>11}" for n in names)
              + f"  {difference:.1e}")
    print(f"{'net':<9} {'':>6} {'':>9} {'':>5} {'':>7} "
          + " ".join(f"{totals[n]:>11.1f}" if n in totals else f"{'':>11}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
