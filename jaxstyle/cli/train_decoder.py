"""`jaxstyle train-decoder`: train the decoder that `jaxstyle apply any` uses (engine 3)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

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
    "jaxstyle train-decoder --data coco/ --style-data wikiart/ -o any.jxs",
    "jaxstyle train-decoder --data photos/ --style-data art/ -o small.jxs --width 0.5 "
    "--size 128 --steps 4000",
    "jaxstyle train-decoder --data coco/ --style-data wikiart/ -o any.jxs --resume",
    "jaxstyle train-decoder --data photos/ -o recon.jxs --reconstruct --steps 2000",
    "jaxstyle train-decoder --data photos/ --style-data art/ -o any.jxs --init recon.jxs",
    "jaxstyle train-decoder --data photos/ -o small.jxs --encoder small.enc.jxs --width 0.25 "
    "--reconstruct",
    "jaxstyle train-decoder --data photos_and_art/ -o wct.jxs --reconstruct --level relu3_1",
    "jaxstyle train-decoder --data photos_and_art/ -o wct.jxs --reconstruct --level 4 "
    "--init any-vgg --width 0.5",
]
# Loss options left unset take DecoderConfig's defaults, or --reconstruct's preset.
_LOSS_OPTIONS = ("style_weight", "gram_weight", "alpha", "pixel_weight", "perceptual_weight",
                 "layout_weight", "grid_weight")


def add_parser(commands: argparse._SubParsersAction,
               add_command: Callable[..., argparse.ArgumentParser]) -> None:
    from jaxstyle.arbitrary.config import DecoderConfig

    d = DecoderConfig()
    p = add_command(commands, "train-decoder", "train the arbitrary-style decoder (AdaIN, "
                    "Huang & Belongie 2017) that `jaxstyle apply any` uses", EXAMPLES)
    p.add_argument("--data", required=True, metavar="DIR",
                   help="folder of photos (searched recursively; unreadable files skipped)")
    p.add_argument("--style-data", metavar="DIR",
                   help="folder of paintings or other style images (searched recursively; "
                        "not needed with --reconstruct)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="decoder file (.jxs)")
    run = p.add_argument_group("training")
    run.add_argument("--size", type=positive_int, default=d.size,
                     help="side of the square crops, px (a multiple of 8)")
    run.add_argument("--batch", type=positive_int, default=d.batch,
                     help="photo/style pairs per step (over all devices)")
    run.add_argument("--steps", type=positive_int, default=d.steps, help="training steps")
    run.add_argument("--lr", type=finite_float, default=d.learning_rate,
                     help="Adam learning rate")
    run.add_argument("--lr-decay", type=finite_float, default=d.lr_decay,
                     help="inverse-time decay: lr / (1 + decay * step)")
    run.add_argument("--width", type=finite_float, default=d.width,
                     help="decoder channel multiplier (0.5: about 4x fewer decoder FLOPs)")
    run.add_argument("--content-weight", type=finite_float, default=d.content_weight,
                     help="weight of the content (feature) loss")
    run.add_argument("--style-weight", type=finite_float,
                     help="weight of the channel mean/std losses (Huang & Belongie's lambda; "
                          f"default {d.style_weight:g})")
    run.add_argument("--gram-weight", type=finite_float,
                     help="weight of a Gram-matrix loss at relu4_1 (cross-channel "
                          f"correlations; default {d.gram_weight:g}: Huang & Belongie's loss)")
    run.add_argument("--alpha", type=finite_float,
                     help=f"AdaIN strength of the training targets (default {d.alpha:g}; 0: "
                          "the photo's own features, reconstruction)")
    run.add_argument("--pixel-weight", type=finite_float,
                     help=f"mean squared pixel error against the photo (default "
                          f"{d.pixel_weight:g})")
    run.add_argument("--perceptual-weight", type=finite_float,
                     help="relu1_1..relu3_1 feature error against the photo (default "
                          f"{d.perceptual_weight:g})")
    run.add_argument("--layout-weight", type=finite_float,
                     help="1 - the correlation of the output's 8 px block luminance with the "
                          "photo's: keeps the photo's big shapes, leaves its light to the "
                          f"painting (default {d.layout_weight:g})")
    run.add_argument("--grid-weight", type=finite_float,
                     help="edge strength tied to the upsamplings' 8 px period, beyond the "
                          f"photo's own (default {d.grid_weight:g})")
    run.add_argument("--reconstruct", action="store_true",
                     help="reconstruction pre-training: the decoder learns to give back the "
                          "photo (alpha 0, no style terms, pixel weight 10, perceptual 1; "
                          "options given explicitly still win)")
    run.add_argument("--level", type=_level, metavar="LEVEL",
                     help="train WCT's decoder for this VGG level (1-5 or relu1_1 .. relu5_1) "
                          "with --reconstruct, into MODEL: a WCT model file, whose other "
                          "levels are kept (jaxstyle apply MODEL ... --style-image P)")
    run.add_argument("--init", metavar="MODEL",
                     help="start from this trained decoder (a path or a built-in name such as "
                          "`any`; same --width) instead of a random one: fine-tuning")
    run.add_argument("--encoder", metavar="MODEL",
                     help="a distilled encoder (`jaxstyle train-encoder`) whose features the "
                          "decoder learns to decode instead of VGG19's; the model file "
                          "carries it (an --init decoder that has one brings its own)")
    run.add_argument("--encoder-lr", type=finite_float, default=d.encoder_learning_rate,
                     help="train that encoder with the decoder at this Adam learning rate, "
                          "on the same loss (default 0: frozen)")
    run.add_argument("--distill-weight", type=finite_float, default=d.distill_weight,
                     help="with --encoder-lr: weight of the encoder's distillation loss on "
                          "the photos, which keeps its features VGG19's (default "
                          f"{d.distill_weight:g})")
    run.add_argument("--seed", type=int, default=d.seed,
                     help="network init and data order")
    run.add_argument("--workers", type=nonnegative_int, default=None,
                     help="image decoding processes per loader (0: in this process; None: "
                          "min(4, CPUs))")
    out = p.add_argument_group("checkpoints and progress")
    add_checkpoint_options(out, d, "continue from the latest checkpoint (same settings and "
                                   "data)")
    out.add_argument("--preview-every", type=nonnegative_int, default=d.preview_every,
                     metavar="N", help="render photo | style | result every N steps into "
                                       "MODEL's name + .preview.png (0: never)")
    out.add_argument("--preview", nargs=2, metavar=("PHOTO", "STYLE"),
                     help="images for the previews (None: the packaged photo and painting)")
    add_weights_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(handler=cmd_train_decoder)


def _level(text: str) -> int:
    import argparse

    from jaxstyle.arbitrary.decoder import level_number

    try:
        return level_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def config_from_args(args: argparse.Namespace) -> Any:
    from jaxstyle.arbitrary.config import RECONSTRUCTION, DecoderConfig

    preset = RECONSTRUCTION if args.reconstruct else {}
    loss = {name: getattr(args, name) for name in _LOSS_OPTIONS
            if getattr(args, name) is not None}
    return DecoderConfig(size=args.size, batch=args.batch, steps=args.steps,
                         learning_rate=args.lr, lr_decay=args.lr_decay, width=args.width,
                         content_weight=args.content_weight, seed=args.seed,
                         checkpoint_every=args.checkpoint_every, keep=args.keep,
                         preview_every=args.preview_every,
                         encoder_learning_rate=args.encoder_lr,
                         distill_weight=args.distill_weight, level=args.level,
                         **{**preset, **loss})


def _preview_images(args: argparse.Namespace, side: int) -> Any:
    from jaxstyle.demo import demo_content, demo_style
    from jaxstyle.images import load_image

    if args.preview:
        photo = load_image(args.preview[0], side, what="preview photo")
        style = load_image(args.preview[1], side, what="preview style image")
    else:
        photo, style = demo_content(side), demo_style(side)
    # Square crops, so photo | style | result line up; the decoder needs multiples of 8.
    crop = min(photo.shape[0], photo.shape[1], style.shape[0], style.shape[1]) // 8 * 8
    return photo[:crop, :crop], style[:crop, :crop]


def _initial_level_decoder(name_or_path: str, width: float, level: int) -> tuple[dict, str]:
    """(params, description) of --init for a WCT level: that level of a WCT file, or an AdaIN
    decoder for VGG19 (level 4 is the same network; level 5 takes it as its tail, below a
    fresh relu5_1 head)."""
    from jaxstyle.arbitrary.decoder import init_decoder, level_name
    from jaxstyle.arbitrary.decoderfile import is_wct_header, load_decoder
    from jaxstyle.arbitrary.transfer import split_params
    from jaxstyle.feedforward.apply import resolve_model

    path, _ = resolve_model(name_or_path)
    params, header = load_decoder(path)
    theirs = float(header["width"])
    if theirs != width:
        raise UsageError(f"--init {name_or_path}: width {theirs:g} decoders; give --width "
                         f"{theirs:g} to fine-tune them")
    if is_wct_header(header):
        if level_name(level) in params:
            return params[level_name(level)], f"{path.name} ({level_name(level)})"
        if not (level == 5 and "relu4_1" in params):
            raise UsageError(f"--init {name_or_path} has no {level_name(level)} decoder "
                             f"(levels {header['levels']})")
        tail, where = params["relu4_1"], f"{path.name} (relu4_1)"
    else:
        decoder, own = split_params(params)
        if own is not None:
            raise UsageError(f"--init {name_or_path} decodes its own encoder's features; WCT "
                             "levels decode VGG19's")
        if level not in (4, 5):
            raise UsageError(f"--init {name_or_path} is a relu4_1 decoder: it can start level "
                             f"4 or 5, not {level}")
        if level == 4:
            return decoder, path.name
        tail, where = decoder, path.name
    # Level 5 = 4 convs at relu5_1's scale, then level 4's 9 convs (conv0.. -> conv4..).
    fresh = init_decoder(0, width, level=5)
    grafted = {name: value for name, value in fresh.items() if int(name[4:]) < 4}
    grafted.update({f"conv{int(name[4:]) + 4}": value for name, value in tail.items()})
    return grafted, f"a fresh relu5_1 head on {where}"


def _initial_decoder(name_or_path: str, width: float, encoder: Optional[tuple[dict, float]],
                     photos: Sequence) -> tuple[tuple[dict, str], Optional[tuple[dict, float]]]:
    """((params, description), the encoder it decodes or None for VGG19) of --init.

    It must have the run's width; with --encoder (`encoder`) it must be a decoder for VGG19,
    which is carried over to the small encoder's features: composed with its embedding
    (exact, `compose_embedding`), and pruned to the run's width if that is narrower
    (`prune_decoder`, channels chosen on a few of the training photos).
    """
    from jaxstyle.arbitrary.decoderfile import load_any_model
    from jaxstyle.feedforward.apply import resolve_model

    path, _ = resolve_model(name_or_path)
    model = load_any_model(path)
    theirs = float(model.header["width"])
    steps = model.header.get("training", {}).get("steps")
    description = path.name + (f" (trained {steps} steps)" if steps else "")
    if encoder is None:
        if theirs != width:
            raise UsageError(f"--init {name_or_path}: a width {theirs:g} decoder; give "
                             f"--width {theirs:g} to fine-tune it")
        own = None if model.encoder is None else (model.encoder, model.encoder_width)
        return (model.decoder, description), own
    if model.encoder is not None:
        raise UsageError(f"--init {name_or_path} brings its own encoder; leave out --encoder")
    if width > theirs:
        raise UsageError(f"--init {name_or_path}: a width {theirs:g} decoder can be pruned to "
                         f"a narrower --width, not widened to {width:g}")
    from jaxstyle.arbitrary.encoder import compose_embedding, prune_decoder, sample_images
    from jaxstyle.arbitrary.transfer import ENCODER_LAYER, conv_params, encode

    params = compose_embedding(model.decoder, encoder[0]["embed"][ENCODER_LAYER])
    description += ", composed with the encoder's embedding"
    if width < theirs:
        features = encode(conv_params(encoder[0]), sample_images(photos, 128, 24))
        params = prune_decoder(params, theirs, width, features[ENCODER_LAYER])
        description += f", pruned to width {width:g}"
    return (params, description), encoder


def _check_wct_output(output: Path) -> None:
    """--level writes into a WCT file (adding or replacing that level), or a new one."""
    from jaxstyle.arbitrary.decoderfile import WCT_ARCHITECTURE
    from jaxstyle.paramfile import ModelError, read_header

    if not output.exists():
        return
    try:
        existing = read_header(output).get("architecture")
    except ModelError as exc:
        raise UsageError(f"output {output}: {exc}") from None
    if existing != WCT_ARCHITECTURE:
        raise UsageError(f"output {output} is not a WCT model ({existing}); --level adds a "
                         "level to a WCT file, or writes a new one")


def cmd_train_decoder(args: argparse.Namespace) -> int:
    from jaxstyle.mesh import initialize_distributed

    initialize_distributed()  # only when the environment names a cluster
    import jax

    from jaxstyle.arbitrary.train import train_decoder
    from jaxstyle.data import describe, find_training_images
    from jaxstyle.errors import ConfigError
    from jaxstyle.vgg import prepare_params

    quiet = args.quiet or jax.process_index() != 0
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    output = Path(args.output)
    check_model_output(output)
    if cfg.level is None:
        check_resume(args, output)
    else:  # each level of a WCT file keeps its own checkpoints
        from jaxstyle.arbitrary.train import level_run_path

        check_resume(args, level_run_path(output, cfg.level))
        _check_wct_output(output)
    if cfg.uses_style_images and args.style_data is None:
        raise UsageError("--style-data DIR is needed unless the run only reconstructs photos "
                         "(--reconstruct)")
    photos = find_training_images(args.data, cfg.batch)
    log(describe(photos, args.data), quiet)
    if cfg.uses_style_images:
        styles = find_training_images(args.style_data, cfg.batch)
        log(describe(styles, args.style_data), quiet)
        style_paths = styles.usable
    else:
        style_paths = []
    encoder = None
    if args.encoder:
        from jaxstyle.cli.train_encoder import load_any_encoder

        encoder = load_any_encoder(args.encoder, "--encoder")[:2]
    init = None
    if cfg.level is not None and encoder is not None:
        raise UsageError("--level trains a decoder of VGG19's features; leave out --encoder")
    if cfg.level is not None:
        if args.init:
            init = _initial_level_decoder(args.init, cfg.width, cfg.level)
    elif args.init:
        init, encoder = _initial_decoder(args.init, cfg.width, encoder, photos.usable)
    if cfg.trains_encoder and encoder is None:
        raise UsageError("--encoder-lr trains a distilled encoder: give --encoder FILE (or an "
                         "--init model that carries one)")
    preview = _preview_images(args, max(cfg.size, 128)) if cfg.preview_every else None
    vgg_params = prepare_params(load_params(args.weights, quiet))
    features = "VGG19" if encoder is None else f"a width {encoder[1]:g} encoder"
    if cfg.level is not None:
        from jaxstyle.arbitrary.decoder import level_name

        features = f"VGG19's {level_name(cfg.level)} (WCT)"
    log(f"training a width {cfg.width:g} decoder for {features} at {cfg.size} px, "
        f"batch {cfg.batch}, "
        f"{cfg.steps} steps on {jax.device_count()} {jax.default_backend()} device(s); "
        "compiling...", quiet)
    fields: tuple[str, ...] = ("loss", "content", "style", "gram") if cfg.uses_style_images else (
        "loss", "content", "pixel", "perceptual")
    fields += tuple(term for term in ("layout", "grid", "distill")
                    if getattr(cfg, f"{term}_weight"))
    return run_with_progress(
        lambda on_log: train_decoder(vgg_params, photos.usable, style_paths, output, cfg,
                                     checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                                     preview=preview, worker_count=args.workers,
                                     on_log=on_log, time_limit=args.time_limit, init=init,
                                     encoder=encoder),
        TrainingProgress(cfg.steps, quiet, fields=fields), output, cfg.steps, quiet)
