"""`jaxstyle bench NAME`: every benchmark behind a BENCHMARKS.md table, one entry point.

Each benchmark is a module here with `add_arguments(parser)` and `run(args) -> int`, and a
line in `BENCHMARKS`; it times with `timing` (warm-up, repeats, median, min/max, turns taken
side by side) and prints its table with `timing.markdown_table`. `harness` and
`model_bench` are the step and model timing cores (no argparse); `peers/` the TF and
PyTorch implementations they compare with; `fixtures` the inputs the benchmarks share.
"""

from types import ModuleType

# name -> (module under jaxstyle.bench, what it measures). A module is imported only when its
# benchmark runs, so one benchmark's optional dependency (torch, matplotlib) never slows or
# breaks another, nor `jaxstyle --help`.
BENCHMARKS = {
    "step": ("step", "engine 1's compiled optimisation step on square images, beside TF and "
                     "PyTorch (ms/step, GFLOP/s, memory; --batch: the vmapped many-image step)"),
    "model": ("model", "a feed-forward network's one pass (fp32, bf16, XLA conv paths) beside "
                       "PyTorch eager and ONNX Runtime"),
    "model-convs": ("model_convs", "each of the feed-forward network's convolutions alone, "
                                   "under XLA's conv paths and PyTorch's"),
    "tune-cpu": ("tune_cpu", "the default step at one size under different XLA CPU flags, "
                             "side by side"),
    "memory": ("memory", "memory of one step with and without remat: XLA's buffer sizes and "
                         "measured peak RSS"),
    "spatial-memory": ("spatial_memory", "the largest image per device count for one "
                                         "spatially sharded step (compiled, never run)"),
    "parity": ("parity", "engine 1 against TensorFlow's step, step for step, on this machine's "
                         "device (--record where TF is, --against anywhere)"),
    "seed-time": ("seed_time", "--preset fast against the seed's 1000 steps on held-out pairs: "
                               "loss ÷ the seed's, whole-process seconds ÷ TensorFlow's"),
    "precision": ("precision", "fp32 against bf16: loss after N steps and wall time"),
    "optimizers": ("optimizers", "loss against wall time for each optimiser on the same inputs"),
    "multiscale": ("multiscale", "single- against multi-scale at one size for about the same "
                                 "wall time"),
    "refine": ("refine", "paint fast, then refine: seed loss against wall time from the photo "
                         "and from each one-pass model's output"),
    "cli": ("cli_commands", "the one-pass CLI warm per image, beside the ready-made ONNX "
                            "package's CLI"),
    "video": ("video", "frames per second of `jaxstyle video --model` and where the wall time "
                       "goes"),
    "studio": ("studio", "the studio's latencies through a live server, as the page sees them"),
    "export": ("export", "`jaxstyle export`'s files in onnxruntime, beside jaxstyle's own "
                         "compiled network and the ONNX package's"),
    "arbitrary": ("arbitrary", "engine 3's AdaIN decoders: ms per image at full resolution"),
    "eval-feedforward": ("eval_feedforward", "quality of feed-forward models against the "
                                             "optimiser: seed loss, layout and grid"),
    "eval-arbitrary": ("eval_arbitrary", "quality of engine 3's decoders against the per-style "
                                         "network and Gatys"),
    "eval-wct-levels": ("eval_wct_levels", "held-out reconstruction of each WCT level's "
                                           "decoder, and merging levels"),
    "flicker": ("flicker", "flicker against style: warping error and style loss of trained "
                           "models on clips of known motion"),
}


def benchmark_module(name: str) -> ModuleType:
    """The module of benchmark `name` (a key of BENCHMARKS)."""
    import importlib

    return importlib.import_module(f"jaxstyle.bench.{BENCHMARKS[name][0]}")
