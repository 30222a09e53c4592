"""`jaxstyle train`: train a feed-forward network on a folder of photos (engine 2)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

from jaxstyle.cli.common import (
    Reporter,
    UsageError,
    add_weights_option,
    finite_float,
    float_list,
    layer_list,
    load_params,
    log,
    positive_int,
)
from jaxstyle.config import POOLINGS, PRECISIONS
from jaxstyle.interrupts import exit_code

EXAMPLES = [
    "jaxstyle train starry_night.jpg --data photos/ -o starry.jxs",
    "jaxstyle train starry.jpg scream.jpg wave.jpg --data photos/ -o three.jxs --steps 60000",
    "jaxstyle train starry.jpg --data photos/ -o starry.jxs --resume",
    "jaxstyle train starry.jpg --data photos/ -o small.jxs --width 0.5 --precision bf16",
]


def _defaults():
    from jaxstyle.feedforward.config import FeedForwardConfig

    return FeedForwardConfig()


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    d = _defaults()
    loss = d.loss
    p = add_command(commands, "train", "train a fast feed-forward network for one or more "
                    "styles (Johnson et al. 2016)", EXAMPLES)
    p.add_argument("styles", nargs="+", metavar="STYLE",
                   help="style image file(s); several train one network with a style each "
                        "(named after the files)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="folder of training photos (searched recursively; unreadable files "
                        "are skipped)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file (.jxs)")
    size = p.add_argument_group("training")
    size.add_argument("--size", type=positive_int, default=d.size,
                      help="side of the square training crops, px")
    size.add_argument("--batch", type=positive_int, default=d.batch,
                      help="photos per step (over all devices)")
    size.add_argument("--steps", type=positive_int, default=d.steps, help="training steps")
    size.add_argument("--lr", type=finite_float, default=d.learning_rate,
                      help="Adam learning rate")
    size.add_argument("--width", type=finite_float, default=d.width,
                      help="network channel multiplier (0.5: 4x fewer FLOPs)")
    size.add_argument("--style-size", type=positive_int, default=d.style_size,
                      help="longer side of the style images, px: larger paints larger "
                           "strokes (None: --size)")
    size.add_argument("--identity-start", action=argparse.BooleanOptionalAction,
                      default=d.identity_start,
                      help="the untrained network returns the photo, and training adds the "
                           "style (keeps the photo's layout)")
    size.add_argument("--init", metavar="MODEL",
                      help="continue training this model (a path or built-in name) instead "
                           "of a random start: same width, styles count and identity start")
    size.add_argument("--seed", type=int, default=d.seed,
                      help="network init, data order and augmentation")
    size.add_argument("--workers", type=nonnegative_int, default=None,
                      help="image decoding processes (0: decode in this process; "
                           "None: min(4, CPUs))")
    terms = p.add_argument_group("loss")
    terms.add_argument("--content-weight", type=finite_float, default=loss.content_weight,
                       help="weight of the content term")
    terms.add_argument("--style-weight", type=finite_float, default=loss.style_weight,
                       help="weight of the style term")
    terms.add_argument("--tv-weight", type=finite_float, default=loss.tv_weight,
                       help="weight of total variation (smoothness)")
    terms.add_argument("--content-layers", type=layer_list, default=",".join(loss.content_layers),
                       metavar="L,L,...", help="comma-separated VGG19 layer names")
    default_weights = ",".join(f"{w:g}" for w in loss.content_layer_weights)
    terms.add_argument("--content-layer-weights", type=float_list, metavar="W,W,...",
                       help="weight of each content layer, normalised by their sum (None: "
                            f"{default_weights} for the default layers, else equal)")
    terms.add_argument("--style-layers", type=layer_list, default=",".join(loss.style_layers),
                       metavar="L,L,...", help="comma-separated VGG19 layer names")
    terms.add_argument("--stability-weight", type=finite_float, default=d.stability_weight,
                       help="penalise output changes under 1-2 px shifts and noise (steadier "
                            "video; 0: off)")
    terms.add_argument("--layout-weight", type=finite_float, default=d.layout_weight,
                       help="hold the photo's big shapes and light: block-averaged luminance "
                            "against the photo's (0: off)")
    terms.add_argument("--grid-weight", type=finite_float, default=d.grid_weight,
                       help="penalise edge strength tied to the upsamplings' period, beyond "
                            "the photo's own: an 8 px grid (0: off)")
    terms.add_argument("--pooling", choices=POOLINGS, default=loss.pooling,
                       help="VGG pooling")
    terms.add_argument("--precision", choices=PRECISIONS, default=loss.precision,
                       help="bf16: convolutions in bfloat16, losses and Adam in fp32")
    run = p.add_argument_group("checkpoints and progress")
    add_checkpoint_options(run, d, "continue from the latest checkpoint (same styles and "
                                   "settings)")
    run.add_argument("--preview-every", type=nonnegative_int, default=d.preview_every,
                     metavar="N", help="render the preview photo every N steps into "
                                       "MODEL's name + .preview.png (0: never)")
    run.add_argument("--preview", metavar="PHOTO",
                     help="photo for the previews (None: the packaged demo photo)")
    add_weights_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_train)


def config_from_args(args: argparse.Namespace) -> Any:
    """The FeedForwardConfig the options describe; ConfigError names a bad one."""
    from jaxstyle.feedforward.config import FeedForwardConfig

    d = _defaults()
    layer_weights = args.content_layer_weights
    if layer_weights is None and args.content_layers == d.loss.content_layers:
        layer_weights = d.loss.content_layer_weights  # they belong to the default layers
    loss = d.loss.replace(content_weight=args.content_weight, style_weight=args.style_weight,
                          tv_weight=args.tv_weight, content_layers=args.content_layers,
                          content_layer_weights=layer_weights, style_layers=args.style_layers,
                          pooling=args.pooling, precision=args.precision)
    return FeedForwardConfig(loss=loss, size=args.size, batch=args.batch, steps=args.steps,
                             learning_rate=args.lr, width=args.width,
                             num_styles=len(args.styles), style_size=args.style_size,
                             stability_weight=args.stability_weight,
                             layout_weight=args.layout_weight, grid_weight=args.grid_weight,
                             identity_start=args.identity_start, seed=args.seed,
                             checkpoint_every=args.checkpoint_every, keep=args.keep,
                             preview_every=args.preview_every)


def check_model_output(output: Path) -> None:
    """Fail before any work if the model file cannot be written."""
    if output.is_dir():
        raise UsageError(f"output {output}: is a folder; give a model file name")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output.parent):
            pass
    except OSError as exc:
        raise UsageError(f"output {output}: cannot write in {output.parent} "
                         f"({exc.strerror or exc})") from None


def initial_model(name_or_path: str, cfg: Any) -> tuple[dict, str]:
    """(params, description) of the --init model; it must have the run's architecture."""
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.feedforward.modelfile import load_model

    path, _ = resolve_model(name_or_path)
    params, header = load_model(path)
    theirs = (float(header["width"]), int(header["num_styles"]),
              bool(header.get("identity_start", False)))
    ours = (cfg.width, cfg.num_styles, cfg.identity_start)
    if theirs != ours:
        flag = "--identity-start" if theirs[2] else "--no-identity-start"
        raise UsageError(f"--init {name_or_path}: a width {theirs[0]:g} network with "
                         f"{theirs[1]} style(s), {flag}; train with the same to continue it "
                         f"(this run: width {ours[0]:g}, {ours[1]} style(s))")
    steps = header.get("training", {}).get("steps")
    return params, path.name + (f" (trained {steps} steps)" if steps else "")


def style_names_of(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Each style's name: its file's stem, made unique with -2, -3, ..."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def load_styles(paths: Sequence[str | os.PathLike], side: int) -> list:
    from jaxstyle.feedforward.train import StyleImage
    from jaxstyle.images import load_image

    return [StyleImage(name, load_image(path, side, what="style image"), Path(path))
            for name, path in zip(style_names_of(paths), paths)]


def duration(text: str) -> float:
    """'5400', '90s', '45m', '1.5h' -> seconds, > 0."""
    scales = {"s": 1.0, "m": 60.0, "h": 3600.0}
    cleaned = text.strip().lower()
    scale = scales.get(cleaned[-1:])
    try:
        seconds = float(cleaned[:-1] if scale else cleaned) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds or a duration such as 90s, 45m or 2h, got {text!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive duration, got {text!r}")
    return seconds


def add_checkpoint_options(group: argparse._ArgumentGroup, defaults: Any,
                           resume_help: str) -> None:
    """--checkpoint-dir, --checkpoint-every, --keep, --time-limit and --resume: every trainer's
    (defaults: its config, for checkpoint_every and keep)."""
    group.add_argument("--checkpoint-dir", metavar="DIR",
                       help="checkpoint folder (None: MODEL's name + .checkpoints, next to it)")
    group.add_argument("--checkpoint-every", type=nonnegative_int,
                       default=defaults.checkpoint_every, metavar="N",
                       help="steps between checkpoints (0: only at the end)")
    group.add_argument("--keep", type=positive_int, default=defaults.keep,
                       help="checkpoints kept")
    add_time_limit_option(group)
    group.add_argument("--resume", action="store_true", help=resume_help)


def check_resume(args: argparse.Namespace, output: Path) -> None:
    """--resume without a checkpoint to resume is a usage error, before any work."""
    from jaxstyle.training import default_checkpoint_dir

    if args.resume and args.checkpoint_dir is None and not default_checkpoint_dir(output).exists():
        raise UsageError(f"--resume: no checkpoints at {default_checkpoint_dir(output)}")


def run_with_progress(train: Callable, progress: TrainingProgress, output: Path, total_steps: int,
                      quiet: bool) -> int:
    """Run train(on_log=progress) -> result; Ctrl-C or SIGTERM (TrainingInterrupted) exits
    130 or 143 with its message as the last line; otherwise the saved-model line."""
    from jaxstyle.training import TrainingInterrupted

    try:
        result = train(on_log=progress)
    except TrainingInterrupted as stop:
        progress.close()  # so the message is the last line, not under the bar
        print(str(stop), file=sys.stderr)
        return exit_code(stop.signum)
    except BaseException:
        progress.close()
        raise
    progress.close()
    report_saved(output, result, total_steps, progress, quiet)
    return 0


def add_time_limit_option(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--time-limit", type=duration, metavar="DURATION",
                       help="stop after this much training time in this run (90s, 45m, 2h), "
                            "saving the model and a checkpoint as at the end; --resume "
                            "continues (for batch jobs with a wall-clock limit)")


def report_saved(output: Path, result: Any, total_steps: int, progress: TrainingProgress,
                 quiet: bool) -> None:
    """The run's last line: the model saved, and whether the time limit cut it short."""
    if result.steps < total_steps:
        log(f"time limit reached: saved {output} after {result.steps} of {total_steps} steps "
            f"in {result.seconds:.1f} s{progress.summary()}; --resume continues", quiet)
    else:
        log(f"saved {output} after {result.steps} steps in {result.seconds:.1f} s"
            f"{progress.summary()}", quiet)
    if result.skipped_steps:
        log(f"warning: {result.skipped_steps} updates were skipped for a non-finite loss", quiet)


class TrainingProgress:
    """The bar, created at the first log records (after compiling, at the resumed step); it
    shows `fields` of the latest record (those absent or zero are left out) and images/s."""

    def __init__(self, total: int, quiet: bool,
                 fields: tuple[str, ...] = ("loss", "content", "style", "tv", "stability"),
                 ) -> None:
        self.total, self.quiet, self.fields = total, quiet, fields
        self.report: Optional[Reporter] = None
        self.last_step = 0  # set at the first records
        self.last: Optional[dict] = None

    def __call__(self, records: list[dict]) -> None:
        if self.report is None:
            self.report = Reporter(self.total, self.quiet, start=records[0]["step"] - 1,
                                   unit="step")
            self.last_step = records[0]["step"] - 1
        self.last = last = records[-1]
        shown = {name: f"{last[name]:.4g}" for name in self.fields if last.get(name)}
        if last["images_per_s"]:
            shown["img/s"] = f"{last['images_per_s']:.1f}"
        self.report.advance(last["step"] - self.last_step, **shown)
        self.last_step = last["step"]

    def summary(self) -> str:
        """'; final loss ... (content ..., ...)' for the last record, or ''."""
        if not self.last:
            return ""
        parts = ", ".join(f"{name} {self.last[name]:.4g}" for name in self.fields[1:]
                          if self.last.get(name))
        return f"; final loss {self.last['loss']:.4g} ({parts})"

    def close(self) -> None:
        if self.report is not None:
            self.report.close()


def cmd_train(args: argparse.Namespace) -> int:
    from jaxstyle.mesh import initialize_distributed

    initialize_distributed()  # only when the environment names a cluster
    import jax

    from jaxstyle.data import describe, find_training_images
    from jaxstyle.feedforward.train import train
    from jaxstyle.vgg import prepare_params

    quiet = args.quiet or jax.process_index() != 0
    cfg = config_from_args(args)
    output = Path(args.output)
    check_model_output(output)
    check_resume(args, output)
    styles = load_styles(args.styles, cfg.style_side)
    init = initial_model(args.init, cfg) if args.init else None
    scan = find_training_images(args.data, cfg.batch)
    log(describe(scan, args.data), quiet)
    for path, reason in scan.skipped[:5]:
        log(f"  skipped {path}: {reason}", quiet)
    if len(scan.skipped) > 5:
        log(f"  ... and {len(scan.skipped) - 5} more", quiet)
    preview = None
    if cfg.preview_every:
        from jaxstyle.demo import demo_content
        from jaxstyle.images import load_image

        # At least 128 px, so the preview stays legible (and valid) for tiny training sizes.
        side = max(cfg.size, 128)
        preview = (load_image(args.preview, side, what="preview photo") if args.preview
                   else demo_content(side))
    vgg_params = prepare_params(load_params(args.weights, quiet))
    log(f"training {len(styles)} style(s) ({', '.join(s.name for s in styles)}) at "
        f"{cfg.size} px, batch {cfg.batch}, {cfg.steps} steps on {jax.device_count()} "
        f"{jax.default_backend()} device(s); compiling...", quiet)
    return run_with_progress(
        lambda on_log: train(vgg_params, styles, scan.usable, output, cfg,
                             checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                             preview=preview, worker_count=args.workers, on_log=on_log,
                             time_limit=args.time_limit, init=init),
        TrainingProgress(cfg.steps, quiet), output, cfg.steps, quiet)
