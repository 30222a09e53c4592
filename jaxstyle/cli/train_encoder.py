"""`jaxstyle train-encoder`: distil engine 3's small encoder from VGG19
(`jaxstyle.arbitrary.encoder`); `jaxstyle train-decoder --encoder` then trains its decoder."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from jaxstyle.cli.common import (
    UsageError,
    add_weights_option,
    finite_float,
    load_params,
    log,
    positive_int,
)
from jaxstyle.cli.train import (
    TrainingProgress,
    add_checkpoint_options,
    check_model_output,
    check_resume,
    nonnegative_int,
    run_with_progress,
)

EXAMPLES = [
    "jaxstyle train-encoder --data photos/ paintings/ -o small.enc.jxs --time-limit 30m",
    "jaxstyle train-encoder --data photos/ paintings/ -o tiny.enc.jxs --width 0.125",
    "jaxstyle train-encoder --data photos/ paintings/ -o small.enc.jxs --resume",
    "jaxstyle train-decoder --data photos/ -o small.jxs --encoder small.enc.jxs --reconstruct "
    "--width 0.25",
]


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    from jaxstyle.arbitrary.encoder import EncoderConfig

    d = EncoderConfig()
    p = add_command(commands, "train-encoder", "distil a small encoder from VGG19 for engine 3 "
                    "(a feature regression; its decoder is trained next with train-decoder "
                    "--encoder)", EXAMPLES)
    p.add_argument("--data", required=True, nargs="+", metavar="DIR",
                   help="folders of photos and paintings (searched recursively; unreadable "
                        "files skipped)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help="encoder file (.jxs)")
    run = p.add_argument_group("training")
    run.add_argument("--width", type=finite_float, default=d.width,
                     help="VGG19's channels times this (0.25: 16..128 channels, 1/16 of the "
                          "FLOPs)")
    run.add_argument("--size", type=positive_int, default=d.size,
                     help="side of the square crops, px (a multiple of 8)")
    run.add_argument("--batch", type=positive_int, default=d.batch,
                     help="images per step (over all devices)")
    run.add_argument("--steps", type=positive_int, default=d.steps, help="training steps")
    run.add_argument("--lr", type=finite_float, default=d.learning_rate,
                     help="Adam learning rate")
    run.add_argument("--lr-decay", type=finite_float, default=d.lr_decay,
                     help="inverse-time decay: lr / (1 + decay * step)")
    run.add_argument("--init", metavar="MODEL",
                     help="continue from this encoder file (same --width) instead of pruned "
                          "VGG19")
    run.add_argument("--seed", type=int, default=d.seed,
                     help="data order of the photos")
    run.add_argument("--workers", type=nonnegative_int, default=None,
                     help="image decoding processes (0: in this process; None: min(4, CPUs))")
    out = p.add_argument_group("checkpoints and progress")
    add_checkpoint_options(out, d, "continue from the latest checkpoint (same settings and "
                                   "data)")
    add_weights_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_train_encoder)


def load_any_encoder(name_or_path: str, option: str) -> tuple[dict, float, str]:
    """(params, width, description) of a distilled encoder: an encoder file, or a decoder
    file that carries its own encoder; `option` names the flag in errors."""
    from jaxstyle.arbitrary.decoderfile import load_any_model
    from jaxstyle.arbitrary.encoder import ENCODER_ARCHITECTURE, load_encoder
    from jaxstyle.feedforward.apply import resolve_model
    from jaxstyle.paramfile import read_header

    path, _ = resolve_model(name_or_path)
    header = read_header(path)
    if header.get("architecture") == ENCODER_ARCHITECTURE:
        params, header = load_encoder(path)
        width = float(header["width"])
    else:
        model = load_any_model(path)
        if model.encoder is None:
            raise UsageError(f"{option} {name_or_path}: a decoder for VGG19 itself, with no "
                             "small encoder of its own")
        params, width = model.encoder, model.encoder_width
    steps = header.get("training", {}).get("steps")
    return params, width, path.name + (f" (trained {steps} steps)" if steps else "")


def cmd_train_encoder(args: argparse.Namespace) -> int:
    from jaxstyle.mesh import initialize_distributed

    initialize_distributed()  # only when the environment names a cluster
    import jax

    from jaxstyle.arbitrary.encoder import EncoderConfig, train_encoder
    from jaxstyle.data import describe, find_training_images
    from jaxstyle.errors import ConfigError

    quiet = args.quiet or jax.process_index() != 0
    try:
        cfg = EncoderConfig(width=args.width, size=args.size, batch=args.batch,
                            steps=args.steps, learning_rate=args.lr, lr_decay=args.lr_decay,
                            seed=args.seed, checkpoint_every=args.checkpoint_every,
                            keep=args.keep)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    output = Path(args.output)
    check_model_output(output)
    check_resume(args, output)
    paths = []
    for folder in args.data:
        scan = find_training_images(folder, 1)
        log(describe(scan, folder), quiet)
        paths.extend(scan.usable)
    if len(paths) < cfg.batch:
        raise UsageError(f"need at least {cfg.batch} images, found {len(paths)}")
    init = None
    if args.init:
        params, width, description = load_any_encoder(args.init, "--init")
        if width != cfg.width:
            raise UsageError(f"--init {args.init}: a width {width:g} encoder; give "
                             f"--width {width:g}")
        init = (params, description)
    vgg_params = load_params(args.weights, quiet)
    log(f"distilling a width {cfg.width:g} encoder at {cfg.size} px, batch {cfg.batch}, "
        f"{cfg.steps} steps on {jax.device_count()} {jax.default_backend()} device(s); "
        "compiling...", quiet)
    return run_with_progress(
        lambda on_log: train_encoder(vgg_params, paths, output, cfg,
                                     checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                                     worker_count=args.workers, on_log=on_log,
                                     time_limit=args.time_limit, init=init),
        TrainingProgress(cfg.steps, quiet,
                         fields=("loss", "relu1_1", "relu2_1", "relu3_1", "relu4_1")),
        output, cfg.steps, quiet)
