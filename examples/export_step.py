"""The compiled step exported with `jax.export`: one file that runs on CPU, CUDA and TPU.

`CompiledStep.export` lowers the step for the shapes of its arguments and for every platform
named, with no such device present. The bytes (`Exported.serialize()`) are StableHLO with
the calling convention; `jax.export.deserialize` gives back something `.call` runs, here or
on another machine, without jaxstyle's code. A program lowered for CUDA or TPU must not call
what only a CPU has (LAPACK, DUCC, a host callback); `jaxstyle.export.check_portable` says.

    python examples/export_step.py             # real VGG19 weights, 256 px, 3 steps
    python examples/export_step.py 512         # the image side as a positional argument
    python examples/export_step.py --tiny      # random weights, 32 px: seconds

scripts/gpu_session.sh runs it on a GPU machine. Prints the platforms, the file's size, each
platform's custom calls, and checks that the steps run from the file equal the compiled
step's on this machine's device (1e-5).
"""

import tempfile
from pathlib import Path

import jax
import numpy as np

import jaxstyle
from _common import arguments, check, config, image, settle, vgg_params
from jaxstyle.export import ExportError, check_portable, lowered_texts

parser = arguments(__doc__.splitlines()[0], size=256, steps=3)
parser.add_argument("side", nargs="?", type=int, help="image side in pixels (as --size)")
parser.add_argument("--out", help="where to write the exported step (default: a temporary file)")
args = parser.parse_args()
args.size = args.side or args.size
args = settle(args)
params = vgg_params(args)
cfg = config(args)
photo = image(args, "chelsea.jpg", seed=0)
painting = image(args, "starry_night.jpg", seed=1)
targets = jaxstyle.make_targets(params, photo, painting, cfg)
state = jaxstyle.init_state(photo, cfg)
# Not donated: the same starting state runs through both programs below.
step = jaxstyle.make_step(cfg, donate=False)

platforms = ("cpu", "cuda", "tpu")
exported = step.export(params, targets, state, platforms=platforms)
print(f"exported for {', '.join(exported.platforms)}: {args.size}x{args.size} px, "
      f"{len(jax.tree.leaves(exported.in_avals))} inputs")

# Portability: each platform's program on its own, scanned for CPU-only custom calls.
try:
    calls = check_portable(lowered_texts(
        lambda platform: step.export(params, targets, state, platforms=(platform,)), platforms),
        "the step")
except ExportError as error:
    raise SystemExit(f"FAILED: {error}") from None
for platform, targets_called in calls.items():
    print(f"  {platform}: custom calls {', '.join(targets_called) or 'none'}")

# To a file and back: the bytes are all another machine needs (with the same arguments).
with tempfile.TemporaryDirectory(prefix="jaxstyle-export-") as folder:
    path = Path(args.out or Path(folder) / "step.jaxexport")
    path.write_bytes(exported.serialize())
    # Another process reads it the same way once it has run `import jaxstyle`, which registers
    # the NamedTuples (state, targets, optax's states) the file names; tests/test_library.py
    # does that.
    restored = jax.export.deserialize(bytearray(path.read_bytes()))
    print(f"wrote {path if args.out else 'the file'} ({path.stat().st_size / 1e6:.2f} MB); "
          f"read back for {', '.join(restored.platforms)}")

# The file runs with the params as the step prepares them (each layer's backward kernel
# included), the targets and the state; jit it so that it compiles once.
from_file = jax.jit(restored.call)
prepared = jaxstyle.prepare_params(params)
mine, theirs = state, state
for _ in range(args.steps):
    mine, mine_metrics = step(params, targets, mine)
    theirs, their_metrics = from_file(prepared, targets, theirs)
device = jax.devices()[0].platform
print(f"on {device}, after {args.steps} steps: loss {float(mine_metrics['loss']):.6g} (step), "
      f"{float(their_metrics['loss']):.6g} (from the file)")
check(f"image from the file vs the step on {device}, max |diff|",
      np.max(np.abs(np.asarray(theirs.image) - np.asarray(mine.image))), 1e-5)
check(f"loss from the file vs the step on {device}, relative",
      abs(float(their_metrics["loss"]) / float(mine_metrics["loss"]) - 1), 1e-5)
