"""The `jaxstyle` command: a thin layer of argparse over the library.

Defaults are read from StyleConfig, never repeated here. Errors the user can fix are printed as
one `error: ...` line with exit code 2; Ctrl-C saves what there is and exits 130.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from jaxstyle.config import StyleConfig
from jaxstyle.errors import JaxstyleError

DEFAULTS = StyleConfig()
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class UsageError(JaxstyleError):
    """A bad combination of command-line options."""


# --------------------------------------------------------------------------- argument parsing


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _layers(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(_finite_float(v) for v in text.replace(",", " ").split())


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with the tool's one-line `error: ...` (exit 2) instead of usage + error."""

    def error(self, message):
        self.exit(EXIT_ERROR, f"error: {self.prog}: {message} (see --help)\n")


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="PATH",
                        help="Keras VGG19 weights (.h5 in any layout, .keras) or a converted "
                             ".npz; default: fetched once and cached")


def _add_stylize_options(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    size = p.add_argument_group("size and length")
    size.add_argument("--max-dim", type=_positive_int, default=d.max_dim,
                      help="longer side of the output, px (images are only shrunk)")
    size.add_argument("--style-max-dim", type=_positive_int, default=d.style_max_dim,
                      help="longer side limit for style images, px (default: --max-dim)")
    size.add_argument("--max-pixels", type=_positive_int, default=50_000_000,
                      help="refuse input files with more pixels than this")
    size.add_argument("--epochs", type=_positive_int, default=d.epochs)
    size.add_argument("--steps-per-epoch", type=_positive_int, default=d.steps_per_epoch)
    size.add_argument("--steps", type=_positive_int, default=None,
                      help="total steps, overriding --epochs x --steps-per-epoch")
    loss = p.add_argument_group("loss")
    loss.add_argument("--content-weight", type=_finite_float, default=d.content_weight)
    loss.add_argument("--style-weight", type=_finite_float, default=d.style_weight)
    loss.add_argument("--tv-weight", type=_finite_float, default=d.tv_weight)
    loss.add_argument("--content-layers", type=_layers, default=d.content_layers,
                      help="comma-separated VGG19 layer names")
    loss.add_argument("--style-layers", type=_layers, default=d.style_layers,
                      help="comma-separated VGG19 layer names")
    loss.add_argument("--pooling", choices=("max", "avg"), default=d.pooling)
    art = p.add_argument_group("artistic controls")
    art.add_argument("--style-blend", type=_finite_float, nargs="+", metavar="W",
                     help="blend weights of the style images (default: equal)")
    art.add_argument("--style-scale", type=_finite_float, default=d.style_scale,
                     help="style image size relative to the output's")
    art.add_argument("--mask", action="append", metavar="PATH",
                     help="greyscale mask per style (white = that style here); or one mask for "
                          "two styles (black = first, white = second)")
    art.add_argument("--preserve-color", choices=("luminance", "histogram"),
                     help="keep the content's colours (Gatys et al. 2016)")
    art.add_argument("--content-layer-weights", type=_floats, metavar="W,W,...",
                     help="per content layer weights (default: equal)")
    art.add_argument("--style-layer-weights", type=_floats, metavar="W,W,...",
                     help="per style layer weights (default: equal)")
    art.add_argument("--scales", type=_positive_int, default=d.scales,
                     help="coarse-to-fine: optimise at 1/f^(N-1) size first")
    art.add_argument("--scale-factor", type=_finite_float, default=d.scale_factor)
    art.add_argument("--scale-steps", type=int, nargs="+", metavar="N",
                     help="steps at each scale, coarsest first (default: all steps at each)")
    art.add_argument("--carry-optimizer", action="store_true",
                     help="resize Adam's moments to the next scale instead of resetting them")
    opt = p.add_argument_group("optimizer")
    opt.add_argument("--optimizer", choices=("adam", "adam-optax", "lbfgs"), default=d.optimizer,
                     help="adam: Keras/TF semantics (the seed); lbfgs: optax L-BFGS on a "
                          "sigmoid-reparametrised image")
    opt.add_argument("--ema", type=_finite_float, metavar="DECAY",
                     help="output an exponential moving average of the image (e.g. 0.99)")
    opt.add_argument("--learning-rate", type=_finite_float, default=d.learning_rate)
    opt.add_argument("--beta1", type=_finite_float, default=d.beta1)
    opt.add_argument("--beta2", type=_finite_float, default=d.beta2)
    opt.add_argument("--epsilon", type=_finite_float, default=d.epsilon)
    opt.add_argument("--init", default=d.init, metavar="content|noise|PATH",
                     help="start from the content image, seeded noise, or an image file")
    opt.add_argument("--seed", type=int, default=d.seed)
    opt.add_argument("--precision", choices=("fp32", "bf16"), default=d.precision,
                     help="bf16: convolutions in bfloat16, losses and optimizer in fp32")
    opt.add_argument("--remat", action="store_true",
                     help="recompute activations in the backward pass (less memory)")
    run = p.add_argument_group("saving and resuming")
    run.add_argument("--save-every", type=_positive_int, metavar="N",
                     help="also save the image every N steps into --save-dir")
    run.add_argument("--save-dir", metavar="DIR",
                     help="folder for --save-every images (default: OUT's name + _steps)")
    run.add_argument("--checkpoint", metavar="PATH", help="save the run's state every epoch")
    run.add_argument("--resume", metavar="PATH", help="continue from a --checkpoint file")
    run.add_argument("--compile-cache", metavar="DIR",
                     help="JAX persistent compilation cache (faster start-up on reruns)")
    _add_weights_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def build_parser() -> argparse.ArgumentParser:
    from jaxstyle import __version__

    parser = _Parser(
        prog="jaxstyle", formatter_class=_Formatter,
        description="Neural style transfer (Gatys et al. 2015) in JAX.",
        epilog="examples:\n  jaxstyle demo\n  jaxstyle stylize photo.jpg painting.jpg -o out.png\n"
               "  jaxstyle weights fetch\n  jaxstyle bench --sizes 128 256")
    parser.add_argument("--version", action="version", version=f"jaxstyle {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    stylize = commands.add_parser(
        "stylize", help="repaint CONTENT in the style of STYLE", formatter_class=_Formatter,
        epilog="examples:\n  jaxstyle stylize photo.jpg painting.jpg -o out.png\n"
               "  jaxstyle stylize photo.jpg painting.jpg -o out.jpg --max-dim 256 --steps 300\n"
               "  jaxstyle stylize a.jpg b.jpg -o out.png --checkpoint run.ckpt --save-every 100\n"
               "  jaxstyle stylize photo.jpg monet.jpg gogh.jpg --style-blend 0.7 0.3 -o out.png\n"
               "  jaxstyle stylize photo.jpg sky.jpg land.jpg --mask sky_mask.png -o out.png\n"
               "  jaxstyle stylize photo.jpg painting.jpg --preserve-color luminance -o out.png\n"
               "  jaxstyle stylize photo.jpg art.jpg --scales 2 --scale-steps 300 700 -o out.png")
    stylize.add_argument("content", help="content image file")
    stylize.add_argument("styles", nargs="+", metavar="STYLE",
                         help="style image file(s); several are blended (--style-blend) or "
                              "placed by --mask")
    stylize.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp)")
    _add_stylize_options(stylize)

    demo = commands.add_parser(
        "demo", help="stylize the built-in demo images (no inputs needed)",
        formatter_class=_Formatter,
        epilog="examples:\n  jaxstyle demo\n  jaxstyle demo -o demo.png --max-dim 512 --steps 1000")
    demo.add_argument("-o", "--output", default="jaxstyle-demo.png")
    demo.add_argument("--max-dim", type=_positive_int, default=None,
                      help="default: 256 on CPU, 512 on GPU/TPU")
    demo.add_argument("--steps", type=_positive_int, default=None,
                      help="default: 300 on CPU, the seed's 1000 on GPU/TPU")
    _add_weights_option(demo)
    demo.add_argument("-q", "--quiet", action="store_true")

    weights = commands.add_parser("weights", help="fetch or describe the VGG19 weights",
                                  formatter_class=_Formatter,
                                  epilog="examples:\n  jaxstyle weights fetch\n"
                                         "  jaxstyle weights info --weights my_vgg19.h5")
    weights.add_argument("action", choices=("fetch", "info"))
    _add_weights_option(weights)

    from jaxstyle.bench import add_bench_parser
    add_bench_parser(commands, _Formatter, _add_weights_option)
    return parser


# --------------------------------------------------------------------------- helpers


class Reporter:
    """Progress output: a tqdm bar plus the seed's per-epoch lines; silent when quiet."""

    def __init__(self, total: int, quiet: bool, start: int = 0):
        self.quiet = quiet
        self.bar = None
        self.started = time.perf_counter()
        if not quiet:
            from tqdm import tqdm
            # leave=False: the epoch lines and the final "saved" line are the lasting record.
            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                            leave=False, file=sys.stderr)

    def step(self, step: int, metrics, every: int = 10) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if step % every == 0:
            self.bar.set_postfix(loss=f"{float(metrics['loss']):.4g}", refresh=False)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif not self.quiet:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _load_params(weights_path, quiet: bool):
    from jaxstyle.fetch import resolve_params

    def log(message):
        if not quiet:
            print(message, file=sys.stderr)

    return resolve_params(weights_path, progress=not quiet, log=log)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_output(output: Path, inputs: list[Path]) -> None:
    from jaxstyle.images import check_writable

    for path in inputs:
        if _same_file(output, path) or output.resolve() == path.resolve():
            raise UsageError(f"output {output} is also an input; choose another file name")
    check_writable(output)


def _config_from_args(args) -> StyleConfig:
    init = args.init if args.init in ("content", "noise") else "content"
    return StyleConfig(
        content_layers=args.content_layers, style_layers=args.style_layers,
        content_weight=args.content_weight, style_weight=args.style_weight,
        tv_weight=args.tv_weight, learning_rate=args.learning_rate, beta1=args.beta1,
        beta2=args.beta2, epsilon=args.epsilon, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, steps=args.steps, max_dim=args.max_dim,
        style_max_dim=args.style_max_dim, init=init, seed=args.seed, pooling=args.pooling,
        precision=args.precision, remat=args.remat, optimizer=args.optimizer, ema=args.ema,
        style_blend=args.style_blend, style_scale=args.style_scale,
        preserve_color=args.preserve_color, content_layer_weights=args.content_layer_weights,
        style_layer_weights=args.style_layer_weights, scales=args.scales,
        scale_factor=args.scale_factor,
        scale_steps=tuple(args.scale_steps) if args.scale_steps else None,
        carry_optimizer=args.carry_optimizer)


def _format_losses(metrics: dict) -> str:
    return (f"loss {metrics['loss']:.4g} (content {metrics['content']:.4g}, "
            f"style {metrics['style']:.4g}, tv {metrics['tv']:.4g})")


# --------------------------------------------------------------------------- commands


def _load_masks(paths, content_shape, max_pixels):
    """Greyscale masks resized to the content: (S, H, W) in [0, 1], or None."""
    import numpy as np

    from jaxstyle.images import load_image, resize

    if not paths:
        return None
    return np.stack([resize(load_image(p, None, max_pixels, what="mask"),
                            content_shape[:2])[..., 0] for p in paths])


def run_stylize(content, styles, output, cfg: StyleConfig, weights=None, quiet=False,
                init_path=None, max_pixels=50_000_000, save_every=None, save_dir=None,
                checkpoint=None, resume=None, mask_paths=None) -> int:
    """Load, optimise and save; the body of `jaxstyle stylize` and `jaxstyle demo`.

    `content` and `styles` are file paths, or arrays already at their working size (demo).
    """
    import numpy as np

    from jaxstyle import optimize, pipeline
    from jaxstyle.images import load_image, resize, save_image

    output = Path(output)
    paths = [content, *styles, init_path, *(mask_paths or [])]
    _check_output(output, [Path(p) for p in paths if isinstance(p, (str, Path))])
    if (resume or checkpoint) and cfg.scales > 1:
        raise UsageError("--checkpoint/--resume work with single-scale runs only (--scales 1)")
    if isinstance(content, (str, Path)):
        content = load_image(content, cfg.max_dim, max_pixels, what="content image")
        style_dim = cfg.style_max_dim or round(cfg.max_dim * cfg.style_scale)
        styles = [load_image(p, style_dim, max_pixels, what="style image") for p in styles]
    pipeline.check_run(content.shape[:2], [s.shape[:2] for s in styles], cfg,
                       len(mask_paths or []))
    masks = _load_masks(mask_paths, content.shape, max_pixels)
    init_image = None
    if init_path is not None:
        init_image = resize(load_image(init_path, None, max_pixels, what="init image"),
                            content.shape[:2])
    params = _load_params(weights, quiet)
    total = pipeline.total_steps(cfg)
    state = None
    if resume is not None:
        state = optimize.load_state(resume, optimize.init_state(content, cfg, init_image))
    report = Reporter(total, quiet, start=0 if state is None else int(state.step))
    sizes = ", ".join(f"{s.shape[1]}x{s.shape[0]}" for s in styles)
    report.line(f"content {content.shape[1]}x{content.shape[0]}, style {sizes}, {total} steps"
                + (f" over {cfg.scales} scales" if cfg.scales > 1 else ""))
    if state is not None:
        report.line(f"resumed from {resume} at step {int(state.step)}")
    save_dir = Path(save_dir) if save_dir else output.with_name(output.stem + "_steps")
    epoch_started = [time.perf_counter()]

    def callback(step, metrics, current):
        report.step(step, metrics)
        if save_every and step % save_every == 0:
            image = pipeline.finish_image(optimize.output_image(current, cfg), content, cfg)
            save_image(save_dir / f"{output.stem}_{step:05d}.png", np.asarray(image))
        if step % cfg.steps_per_epoch == 0 or step == total:
            host = {k: float(v) for k, v in metrics.items() if k != "finite"}
            elapsed = time.perf_counter() - epoch_started[0]
            epoch_started[0] = time.perf_counter()
            epoch = math.ceil(step / cfg.steps_per_epoch)
            epochs = math.ceil(total / cfg.steps_per_epoch)
            report.line(f"epoch {epoch}/{epochs}  step {step}  {_format_losses(host)}  "
                        f"{elapsed:.1f} s")
            if checkpoint:
                optimize.save_state(checkpoint, current)

    started = time.perf_counter()
    try:
        image, history = pipeline.stylize(params, content, styles, cfg, callback,
                                          init_image=init_image, masks=masks, state=state)
    except JaxstyleError as stop:
        report.close()  # so the error is the last line, not under a progress bar
        if not isinstance(stop, (optimize.StylizeInterrupted, optimize.NonFiniteLossError)):
            raise
        save_image(output, np.asarray(stop.image))  # the last finite image: no work is lost
        if isinstance(stop, optimize.NonFiniteLossError):
            print(f"error: {stop}; saved it to {output}", file=sys.stderr)
            return EXIT_ERROR
        if checkpoint:
            optimize.save_state(checkpoint, stop.state)
        where = f" and checkpoint {checkpoint}" if checkpoint else ""
        print(f"interrupted at step {int(stop.state.step)}: saved {output}{where}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    report.close()
    save_image(output, np.asarray(image))
    if not quiet:
        final = _format_losses(history[-1]) if history else "no steps left to run"
        print(f"saved {output} ({image.shape[2]}x{image.shape[1]}) in "
              f"{time.perf_counter() - started:.1f} s; final {final}", file=sys.stderr)
    return 0


def cmd_stylize(args) -> int:
    cfg = _config_from_args(args)
    init_path = None if args.init in ("content", "noise") else args.init
    if args.resume and not Path(args.resume).is_file():
        raise UsageError(f"--resume {args.resume}: no such file")
    if args.compile_cache:
        from jaxstyle.bench import enable_compile_cache
        enable_compile_cache(args.compile_cache)
    return run_stylize(args.content, args.styles, args.output, cfg, weights=args.weights,
                       quiet=args.quiet, init_path=init_path, max_pixels=args.max_pixels,
                       save_every=args.save_every, save_dir=args.save_dir,
                       checkpoint=args.checkpoint, resume=args.resume, mask_paths=args.mask)


def cmd_demo(args) -> int:
    import jax

    from jaxstyle.demo import demo_content, demo_style
    from jaxstyle.images import fit_size, resize

    on_accelerator = jax.default_backend() != "cpu"
    max_dim = args.max_dim or (DEFAULTS.max_dim if on_accelerator else 256)
    steps = args.steps or (DEFAULTS.total_steps if on_accelerator else 300)
    content, style = demo_content(), demo_style()
    content = resize(content, fit_size(*content.shape[:2], max_dim))
    style = resize(style, fit_size(*style.shape[:2], max_dim))
    cfg = StyleConfig(max_dim=max_dim, steps=steps)
    if not args.quiet:
        print(f"demo on {jax.default_backend()}: {content.shape[1]}x{content.shape[0]} px, "
              f"{steps} steps (full size: jaxstyle demo --max-dim 512 --steps 1000)",
              file=sys.stderr)
    return run_stylize(content, [style], args.output, cfg, weights=args.weights, quiet=args.quiet)


def cmd_weights(args) -> int:
    from jaxstyle.fetch import fetch_weights, weights_info

    if args.action == "fetch":
        if args.weights:
            raise UsageError("weights fetch downloads the default weights; --weights is for "
                             "the other commands")
        print(fetch_weights(progress=True, log=lambda m: print(m, file=sys.stderr)))
        return 0
    info = weights_info(args.weights)
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for name, shape in value.items():
                print(f"  {name}: {shape}")
        else:
            print(f"{key}: {value}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    handlers = {"stylize": cmd_stylize, "demo": cmd_demo, "weights": cmd_weights}
    from jaxstyle.bench import cmd_bench
    handlers["bench"] = cmd_bench
    try:
        return handlers[args.command](args)
    except JaxstyleError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("error: out of memory; try a smaller --max-dim or --remat", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # XLA reports device OOM as a runtime error
        if args.debug or "RESOURCE_EXHAUSTED" not in str(exc):
            raise
        print("error: out of device memory; try a smaller --max-dim, --remat or --precision "
              "bf16", file=sys.stderr)
        return EXIT_ERROR


def entry_point() -> None:
    sys.exit(main())

