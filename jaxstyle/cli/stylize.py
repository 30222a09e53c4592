"""`jaxstyle stylize`: optimise one content image towards one or more styles (engine 1)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from jaxstyle.cli.common import (
    EXIT_ERROR,
    Reporter,
    UsageError,
    add_max_pixels_option,
    add_weights_option,
    check_output,
    config_from_args,
    config_options,
    enable_compile_cache,
    format_losses,
    load_params,
    positive_int,
)
from jaxstyle.config import StyleConfig, sized_budget
from jaxstyle.errors import JaxstyleError
from jaxstyle.interrupts import exit_code

if TYPE_CHECKING:  # annotations only: the command imports jax when it runs
    from jax.sharding import Mesh

EXAMPLES = [
    "jaxstyle stylize photo.jpg painting.jpg -o out.png",
    "jaxstyle stylize photo.jpg painting.jpg -o out.jpg --max-dim 256 --steps 300",
    "jaxstyle stylize a.jpg b.jpg -o out.png --checkpoint run.ckpt --save-every 100",
    "jaxstyle stylize photo.jpg monet.jpg gogh.jpg --style-blend 0.7 0.3 -o out.png",
    "jaxstyle stylize photo.jpg sky.jpg land.jpg --mask sky_mask.png -o out.png",
    "jaxstyle stylize photo.jpg painting.jpg --preserve-color luminance -o out.png",
    "jaxstyle stylize photo.jpg art.jpg --scales 2 --scale-steps 300 700 -o out.png",
    "jaxstyle stylize photo.jpg art.jpg -o out.png --init wct --steps 50   # paint, then refine",
    "jaxstyle stylize photo.jpg starry_night.jpg -o out.png --init paintings --steps 50",
    "jaxstyle stylize photos/ 'more/*.jpg' --style a.jpg b.jpg -o out/ --batch 8",
    "jaxstyle stylize photo.jpg art.jpg -o sweep/ --sweep style_weight 1e-3 1e-2 1e-1",
    "jaxstyle stylize huge.jpg art.jpg -o out.png --max-dim 4096 --shard-spatial --remat",
    "jaxstyle stylize photos/ --style art.jpg -o out/ --distributed   # on every host",
]


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    p = add_command(commands, "stylize", "repaint CONTENT in the style of STYLE", EXAMPLES)
    p.add_argument("inputs", nargs="+", metavar="CONTENT STYLE",
                   help="a content image, then style image(s): several are blended "
                        "(--style-blend) or placed by --mask; with --style, every argument is "
                        "a content: files, folders (recursive) or globs")
    p.add_argument("-o", "--output", required=True,
                   help="output image (.png, .jpg, .webp), or a folder for many jobs")
    config_options(p)
    p.add_argument("--init-style", metavar="NAME|INDEX",
                   help="with --init MODEL, a network trained for its own styles: the style "
                        "to start from (default: the one trained on the run's style image)")
    add_max_pixels_option(p)
    art = p.add_argument_group("regional style")
    art.add_argument("--mask", action="append", metavar="PATH",
                     help="greyscale mask per style (white = that style here); or one mask for "
                          "two styles (black = first, white = second)")
    run = p.add_argument_group("saving and resuming")
    run.add_argument("--save-every", type=positive_int, metavar="N",
                     help="also save the image every N steps into --save-dir")
    run.add_argument("--save-dir", metavar="DIR",
                     help="folder for --save-every images (default: OUT's name + _steps)")
    run.add_argument("--checkpoint", metavar="PATH", help="save the run's state every epoch")
    run.add_argument("--resume", metavar="PATH",
                     help="continue from a --checkpoint file, at the scale it was saved at")
    run.add_argument("--compile-cache", metavar="DIR",
                     help="JAX persistent compilation cache (faster start-up on reruns)")
    many = p.add_argument_group("many images, devices and hosts")
    many.add_argument("--style", nargs="+", metavar="STYLE",
                      help="style images; every content x style pair is a job, written to "
                           "the -o folder as <content>_<style>.png")
    many.add_argument("--sweep", nargs="+", metavar=("FIELD", "VALUE"),
                      help="one job per value of a float setting, in one compiled batch "
                           "(content_weight, style_weight, tv_weight, learning_rate, beta1, "
                           "beta2, epsilon)")
    many.add_argument("--batch", type=positive_int, metavar="N",
                      help="at most N jobs per batch (default: every job of a size)")
    many.add_argument("--skip-existing", action="store_true",
                      help="skip jobs whose output file exists")
    many.add_argument("--shard-spatial", action="store_true",
                      help="split one large image's height (and width, see --mesh) over the "
                           "devices")
    many.add_argument("--mesh", metavar="RxC", help="rows x cols of devices for --shard-spatial "
                      "(default: all devices x 1)")
    many.add_argument("--distributed", action="store_true",
                      help="join a multi-process run (jax.distributed); automatic when the "
                           "environment names a coordinator (JAX_COORDINATOR_ADDRESS, TPU pod, "
                           "SLURM)")
    many.add_argument("--coordinator", metavar="HOST:PORT",
                      help="with --distributed: process 0's address (default: from the "
                           "environment)")
    many.add_argument("--num-processes", type=positive_int, metavar="N",
                      help="with --coordinator: how many processes join the run")
    many.add_argument("--process-id", type=int, metavar="I",
                      help="with --coordinator: this process's index, 0..N-1")
    add_weights_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_stylize)


def _load_masks(paths, content_shape, max_pixels):
    """Greyscale masks resized to the content: (S, H, W) in [0, 1], or None."""
    import numpy as np

    from jaxstyle.images import load_image, resize

    if not paths:
        return None
    return np.stack([resize(load_image(p, None, max_pixels, what="mask"),
                            content_shape[:2])[..., 0] for p in paths])


def _load_inputs(content: Any, styles: Sequence[Any], cfg: StyleConfig, max_pixels: int,
                 init_path: Optional[str | os.PathLike],
                 mask_paths: Optional[Sequence[str | os.PathLike]]) -> tuple[Any, Any, Any, Any]:
    """Content, styles, masks and init image as arrays at their working sizes."""
    from jaxstyle.images import load_image, resize

    if isinstance(content, (str, Path)):
        content = load_image(content, cfg.max_dim, max_pixels, what="content image")
        style_dim = cfg.style_max_dim or round(cfg.max_dim * cfg.style_scale)
        styles = [load_image(p, style_dim, max_pixels, what="style image") for p in styles]
    masks = _load_masks(mask_paths, content.shape, max_pixels)
    init_image = None
    if init_path is not None:
        init_image = resize(load_image(init_path, None, max_pixels, what="init image"),
                            content.shape[:2])
    return content, styles, masks, init_image


class _EpochRecorder:
    """The per-step callback: progress bar, --save-every images, epoch lines, checkpoints."""

    def __init__(self, report: Reporter, content: Any, cfg: StyleConfig, total: int, output: Path,
                 save_every: Optional[int], save_dir: Optional[str | os.PathLike],
                 checkpoint: Optional[str | os.PathLike]) -> None:
        self.report, self.content, self.cfg, self.total = report, content, cfg, total
        self.output, self.save_every, self.checkpoint = output, save_every, checkpoint
        self.save_dir = Path(save_dir) if save_dir else output.with_name(output.stem + "_steps")
        self.epoch_started = time.perf_counter()

    def __call__(self, step, metrics, current):
        import numpy as np

        from jaxstyle.gatys import output_image, save_state
        from jaxstyle.gatys.loop import metrics_to_host
        from jaxstyle.gatys.pipeline import finish_image
        from jaxstyle.images import save_image

        cfg = self.cfg
        self.report.step(step, metrics)
        if self.save_every and step % self.save_every == 0:
            image = finish_image(output_image(current, cfg), self.content, cfg)
            save_image(self.save_dir / f"{self.output.stem}_{step:05d}.png", np.asarray(image))
        if step % cfg.steps_per_epoch == 0 or step == self.total:
            elapsed = time.perf_counter() - self.epoch_started
            self.epoch_started = time.perf_counter()
            epoch = math.ceil(step / cfg.steps_per_epoch)
            epochs = math.ceil(self.total / cfg.steps_per_epoch)
            self.report.line(f"epoch {epoch}/{epochs}  step {step}  "
                             f"{format_losses(metrics_to_host(metrics))}  {elapsed:.1f} s")
            if self.checkpoint:
                save_state(self.checkpoint, current)


def _save_stopped(stop: Any, output: Path, checkpoint: Optional[str | os.PathLike]) -> int:
    """Save what an interrupted or non-finite run has, say so, and give the exit code."""
    import numpy as np

    from jaxstyle.gatys import NonFiniteLossError, save_state
    from jaxstyle.images import save_image

    save_image(output, np.asarray(stop.image))  # the last finite image: no work is lost
    if isinstance(stop, NonFiniteLossError):
        print(f"error: {stop}; saved it to {output}", file=sys.stderr)
        return EXIT_ERROR
    if checkpoint:
        save_state(checkpoint, stop.state)
    where = f" and checkpoint {checkpoint}" if checkpoint else ""
    print(f"{stop}: saved {output}{where}", file=sys.stderr)
    return exit_code(stop.signum)


def run_stylize(content: Any, styles: Sequence[Any], output: str | os.PathLike,
                cfg: StyleConfig,
                weights: Optional[str | os.PathLike] = None, quiet: bool = False,
                init_path: Optional[str | os.PathLike] = None, max_pixels: Optional[int] = None,
                save_every: Optional[int] = None, save_dir: Optional[str | os.PathLike] = None,
                checkpoint: Optional[str | os.PathLike] = None,
                resume: Optional[str | os.PathLike] = None,
                mask_paths: Optional[Sequence[str | os.PathLike]] = None,
                mesh: Optional[Mesh] = None, init_model: Optional[str] = None,
                init_style: Optional[str] = None) -> int:
    """Load, optimise and save; the body of `jaxstyle stylize` and `jaxstyle demo`.

    `content` and `styles` are file paths, or arrays already at their working size (demo).
    `init_model` (`--init MODEL`): start from that model's one-pass result on the content.
    """
    import functools

    from jaxstyle.gatys import NonFiniteLossError, StylizeInterrupted, load_state
    from jaxstyle.gatys.loop import saved_image_size
    from jaxstyle.gatys.pipeline import (
        check_run,
        resume_point,
        resume_template,
        run_sizes,
        scale_steps,
        stylize,
        total_steps,
    )
    from jaxstyle.images import DEFAULT_MAX_PIXELS, save_image

    output = Path(output)
    paths = [content, *styles, init_path, *(mask_paths or [])]
    check_output(output, [Path(p) for p in paths if isinstance(p, (str, Path))])
    style_files = [s for s in styles if isinstance(s, (str, Path))]
    content, styles, masks, init_image = _load_inputs(
        content, styles, cfg, max_pixels or DEFAULT_MAX_PIXELS, init_path, mask_paths)
    check_run(content.shape[:2], [s.shape[:2] for s in styles], cfg, len(mask_paths or []))
    cfg = sized_budget(cfg, *content.shape[:2])  # the fast preset's budget, for this size
    vgg = functools.cache(lambda: load_params(weights, quiet))
    painter = None
    if init_model is not None and resume is None:  # a resumed run has its image already
        from jaxstyle.cli.onepass import make_one_pass
        painter = make_one_pass(init_model, style_files, init_style, vgg)
    params = vgg()
    total = total_steps(cfg)
    state = None
    if resume is not None:  # at whichever scale it was saved (its image's size tells)
        saved = saved_image_size(resume)
        state = load_state(resume, resume_template(saved, content, cfg))
        resume_point(saved, int(state.step), run_sizes(content.shape[:2], cfg, mesh),
                     scale_steps(cfg))  # a checkpoint of another run fails here, not later
    report = Reporter(total, quiet, start=0 if state is None else int(state.step))
    sizes = ", ".join(f"{s.shape[1]}x{s.shape[0]}" for s in styles)
    report.line(f"content {content.shape[1]}x{content.shape[0]}, style {sizes}, {total} steps"
                + (f" over {cfg.scales} scales" if cfg.scales > 1 else ""))
    if state is not None:
        report.line(f"resumed from {resume} at step {int(state.step)}")
    if painter is not None:
        from jaxstyle.cli.onepass import one_pass_start

        init_image, seconds = one_pass_start(painter, content, styles, style_files, masks,
                                             cfg)
        report.line(f"starting from {init_model}'s one-pass result ({painter.kind}, "
                    f"{seconds:.1f} s)")
    callback = _EpochRecorder(report, content, cfg, total, output, save_every, save_dir,
                              checkpoint)
    from jaxstyle import cputune

    if cputune.needs_measuring():
        report.line("measuring this CPU's convolution paths for the step (once per machine, "
                    f"a few seconds; cached in {cputune.cache_file()})")
    started = time.perf_counter()
    try:
        image, history = stylize(params, content, styles, cfg, callback,
                                 init_image=init_image, masks=masks, state=state, mesh=mesh)
    except (StylizeInterrupted, NonFiniteLossError) as stop:
        report.close()  # so the message is the last line, not under a progress bar
        return _save_stopped(stop, output, checkpoint)
    except JaxstyleError:
        report.close()
        raise
    report.close()
    save_image(output, image)
    if not quiet:
        final = format_losses(history[-1]) if history else "no steps left to run"
        stopped = getattr(history, "stopped", None)
        if stopped:
            print(stopped, file=sys.stderr)
        print(f"saved {output} ({image.shape[1]}x{image.shape[0]}) in "
              f"{time.perf_counter() - started:.1f} s; final {final}", file=sys.stderr)
    return 0


def _parse_mesh(text: Optional[str], devices: int) -> tuple[int, int]:
    if not text:
        return devices, 1
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--mesh {text}: write it as ROWSxCOLS, e.g. 4x2") from None
    return rows, cols


def _parse_sweep(values):
    if values is None:
        return None
    from jaxstyle.gatys.batch import check_sweep

    field, numbers = values[0].replace("-", "_"), values[1:]
    try:
        numbers = [float(v) for v in numbers]
    except ValueError:
        raise UsageError(f"--sweep {field}: values must be numbers") from None
    check_sweep(field, numbers)
    return field, numbers


def cmd_stylize(args: argparse.Namespace) -> int:
    from jaxstyle.mesh import initialize_distributed

    # Before anything touches a device: the runtime must know every process first.
    initialize_distributed(args.distributed, args.coordinator, args.num_processes,
                           args.process_id)
    from jaxstyle.cli.onepass import INIT_WORDS, names_a_model

    cfg = config_from_args(args)
    init_model = args.init if names_a_model(args.init) else None
    init_path = None if args.init in INIT_WORDS or init_model else args.init
    if args.init_style is not None and init_model is None:
        raise UsageError("--init-style goes with --init MODEL (a network trained for its "
                         "styles, e.g. --init paintings)")
    if args.resume and not Path(args.resume).is_file():
        raise UsageError(f"--resume {args.resume}: no such file")
    enable_compile_cache(args.compile_cache)
    sweep = _parse_sweep(args.sweep)
    if args.style or sweep:
        return _cmd_many(args, cfg, sweep)
    if len(args.inputs) < 2:
        raise UsageError("give a content image and at least one style image (or --style)")
    mesh = None
    if args.shard_spatial:
        import jax

        from jaxstyle.mesh import spatial_mesh
        mesh = spatial_mesh(*_parse_mesh(args.mesh, jax.device_count()))
    return run_stylize(args.inputs[0], args.inputs[1:], args.output, cfg, weights=args.weights,
                       quiet=args.quiet, init_path=init_path, max_pixels=args.max_pixels,
                       save_every=args.save_every, save_dir=args.save_dir,
                       checkpoint=args.checkpoint, resume=args.resume, mask_paths=args.mask,
                       mesh=mesh, init_model=init_model, init_style=args.init_style)


def _cmd_many(args: argparse.Namespace, cfg: StyleConfig, sweep: Optional[tuple]) -> int:
    import jax

    from jaxstyle.cli.many import run_many
    from jaxstyle.cli.onepass import INIT_WORDS, names_a_model
    from jaxstyle.images import expand_image_paths
    from jaxstyle.mesh import data_mesh

    for option in ("mask", "checkpoint", "resume", "save_every", "shard_spatial"):
        if getattr(args, option):
            raise UsageError(f"--{option.replace('_', '-')} works with one content and one "
                             "output file, not with --style/--sweep")
    if args.init not in INIT_WORDS and not names_a_model(args.init):
        raise UsageError("--init PATH works with one content image, not with --style/--sweep "
                         "(--init MODEL does: one one-pass start per photo)")
    if args.style:
        contents, styles = args.inputs, args.style
    else:
        contents, styles = args.inputs[:1], args.inputs[1:]
        if not styles:
            raise UsageError("give a style image (or --style)")
    contents = expand_image_paths(contents, "content")
    styles = expand_image_paths(styles, "style")
    mesh = data_mesh() if jax.device_count() > 1 else None
    return run_many(args, cfg, contents, styles, sweep, mesh,
                    painter=args.init if names_a_model(args.init) else None)
