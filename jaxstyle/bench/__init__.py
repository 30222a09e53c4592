"""`jaxstyle bench NAME`: every benchmark behind a BENCHMARKS.md table, one entry point.

Each benchmark is a module here with `add_arguments(parser)` and `run(args) -> int`, and a
line in `BENCHMARKS`; it times with `timing` (warm-up, repeats, median, min/max, turns taken
side by side) and prints its table with `timing.markdown_table`. `harness` and
`model_bench` are the step and model timing cores (no argparse); `peers/` the TF and
PyTorch implementations they compare with; `fixtures` the inputs the benchmarks share.
"""

# name -> (module under jaxstyle.bench, what it measures). A module is imported only when its
# benchmark runs, so one benchmark's optional dependency (torch, matplotlib) never slows or
# breaks another, nor `jaxstyle --help`.
BENCHMARKS = {
    "step": ("step", "engine 1's compiled optimisation step on square images, beside TF and "
                     "PyTorch (ms/step, GFLOP/s, memory; --batch: the vmapped many-image step)"),
    "model": ("model", "a feed-forward network's one pass (fp32, bf16, XLA conv paths) beside "
                       "PyTorch eager and ONNX Runtime"),
}


def benchmark_module(name: str):
    """The module of benchmark `name` (a key of BENCHMARKS)."""
    import importlib

    return importlib.import_module(f"jaxstyle.bench.{BENCHMARKS[name][0]}")
