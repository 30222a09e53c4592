"""Time each of TransformerNet's convolutions alone, under XLA's conv paths and PyTorch's.

    jaxstyle bench model-convs --width 0.5 --size 256 --steps 7

Per layer shape (input already padded, as the net pads it): XLA's default path, XLA with the
convolutions kept off YNNPACK (`fastconv.NO_YNN_CONV_OPTIONS`), the 9x9 layers through
`fastconv.conv_space_to_depth` (off YNNPACK too), and torch's `F.conv2d` (oneDNN) when
installed. The forms take turns call by call; each cell is the minimum ms over the timed calls.
The `net` line adds the layers up as the net uses them (the residual conv 10 times).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Optional

import numpy as np

from jaxstyle.bench.timing import machine_line, markdown_table, time_alternating

EXAMPLES = ["jaxstyle bench model-convs --width 0.5 --size 256 --steps 7",
            "jaxstyle bench model-convs --width 0.5 --size 512"]

FORMS = ["xla", "xla no-ynn", "s2d no-ynn", "torch"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=256, help="image side, px (multiple of 4)")
    p.add_argument("--width", type=float, default=1.0, help="network width")
    p.add_argument("--batch", type=int, default=1, help="images per call")
    p.add_argument("--steps", type=int, default=7, help="timed calls per form")


def layer_shapes(size: int, width: float) -> list[tuple[str, int, int, int, int, int, int]]:
    """(name, output side, Cin, Cout, kernel, stride, uses per net) of every conv shape."""
    from jaxstyle.feedforward.network import NUM_RESIDUAL_BLOCKS, channel_counts

    c1, c2, c3 = channel_counts(width)
    return [("encode0", size, 3, c1, 9, 1, 1), ("encode1", size // 2, c1, c2, 3, 2, 1),
            ("encode2", size // 4, c2, c3, 3, 2, 1),
            ("residual", size // 4, c3, c3, 3, 1, 2 * NUM_RESIDUAL_BLOCKS),
            ("decode0", size // 2, c3, c2, 3, 1, 1), ("decode1", size, c2, c1, 3, 1, 1),
            ("output", size, c1, 3, 9, 1, 1)]


def conv_forms(kernel_size: int, stride: int) -> dict:
    """name -> jitted (x, kernel) -> y for this layer."""
    import jax

    from jaxstyle import fastconv

    forms = {
        "xla": jax.jit(lambda x, k: fastconv.conv_valid(x, k, stride)),
        "xla no-ynn": jax.jit(lambda x, k: fastconv.conv_valid(x, k, stride),
                              compiler_options=fastconv.cpu_conv_compiler_options() or None),
    }
    if stride == 1 and kernel_size >= fastconv.SPACE_TO_DEPTH_MIN_KERNEL:
        forms["s2d no-ynn"] = jax.jit(fastconv.conv_space_to_depth,
                                      compiler_options=fastconv.cpu_conv_compiler_options() or None)
    return forms


def _blocking(f: Callable, x: np.ndarray, kernel: np.ndarray) -> Callable[[], object]:
    """A call of f(x, kernel) that waits for its result."""
    return lambda: f(x, kernel).block_until_ready()


def torch_form(x: np.ndarray, kernel: np.ndarray,
               stride: int) -> Optional[Callable[[], object]]:
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


def run(args: argparse.Namespace) -> int:
    from jaxstyle.errors import ConfigError

    if args.size < 4 or args.size % 4 or args.batch < 1 or args.steps < 1:
        raise ConfigError("--size must be a multiple of 4, --batch and --steps >= 1")
    print(machine_line())
    print(f"{args.size} px, width {args.width:g}, batch {args.batch}: min ms of {args.steps} "
          "calls per form")
    rng = np.random.default_rng(0)
    totals: dict[str, float] = {}
    rows = []
    torch_missing = False
    for name, side, cin, cout, k, stride, uses in layer_shapes(args.size, args.width):
        print(f"model-convs: {name}", file=sys.stderr)
        padded = (side - 1) * stride + k
        x = rng.standard_normal((args.batch, padded, padded, cin)).astype(np.float32)
        kernel = (rng.standard_normal((k, k, cin, cout)) / np.sqrt(k * k * cin)).astype(
            np.float32)
        forms = conv_forms(k, stride)
        reference = np.asarray(forms["xla"](x, kernel))
        difference = max(float(np.abs(np.asarray(f(x, kernel)) - reference).max())
                         for f in forms.values())
        calls: dict[str, Callable[[], object]] = {
            form: _blocking(f, x, kernel) for form, f in forms.items()}
        torch_call = torch_form(x, kernel, stride)
        if torch_call is not None:
            calls["torch"] = torch_call
        else:
            torch_missing = True
        # One untimed call each, then the forms take turns call by call.
        timings = time_alternating(calls, repeats=args.steps, warmup=1, block=1)
        best = {form: 1e3 * t.min for form, t in timings.items()}
        for form in FORMS:
            # A form without a layer-specific variant runs as the plain no-YNN conv.
            fallback = "xla no-ynn" if form == "s2d no-ynn" else None
            value = best.get(form, None if fallback is None else best.get(fallback))
            if value is not None:
                totals[form] = totals.get(form, 0.0) + uses * value
        mflop = 2 * k * k * cin * cout * side * side * args.batch / 1e6
        rows.append([name, side, f"{cin}->{cout}", f"{k}/{stride}", f"{mflop:.0f}",
                     *(f"{best[n]:.2f}" if n in best else "" for n in FORMS),
                     f"{difference:.1e}"])
    rows.append(["net", "", "", "", "",
                 *(f"{totals[n]:.1f}" if n in totals else "" for n in FORMS), ""])
    if torch_missing:
        print("model-convs: torch is not installed, its column is empty (pip install -e "
              "'.[peers]')", file=sys.stderr)
    print(markdown_table(["layer", "out px", "cin->cout", "k/s", "MFLOP",
                          *(f"{n} ms" for n in FORMS), "max abs diff"], rows))
    return 0
