"""Train the arbitrary-style decoder shipped in jaxstyle/models/ (the recipe, as run).

    python scripts/train_shipped_decoder.py --stage reconstruct --init any --lr 3e-4 \
        --out /tmp/recon.jxs -- --time-limit 25m
    python scripts/train_shipped_decoder.py --stage adain --init /tmp/recon.jxs --lr 2e-4 \
        -- --time-limit 60m

The default `any` (issue 20) has its own small encoder; its recipe, as run, is in
docs/models.md: `--stage encoder --width 0.25 --size 128 --batch 8 --lr 1e-4
--out /tmp/small.enc.jxs`, then the two stages above with `--width 0.25 -- --encoder
/tmp/small.enc.jxs` on the reconstruct stage (the adain stage's --init brings it along).

The current recipe (issue 18; docs/models.md has every run):
- `reconstruct`: reconstruction pre-training (`train-decoder --reconstruct`: alpha 0, pixel
  and relu1_1..relu3_1 losses against the photo, no style term) on the photos alone, so the
  decoder first learns to give the photo back instead of painting blocks;
- `adain`: AdaIN training from that decoder (--init) with lighter style terms (`--style-weight
  2 --gram-weight 6`) and a shallow anchor to the photo (`--perceptual-weight 2`), on the
  photos and style images below plus `scripts/debian_artwork.py`'s artwork.
The earlier stages, kept to reproduce the earlier decoders: stage 1 trains from scratch;
stage 2 fine-tunes stage 1's decoder (--stage1, or the file at --out, first copied next to the
Debian images) with Debian's images added to both folders and `--gram-weight 30`.

Photos: `scripts/training_photos.py` (the wheels' samples and Debian's wallpaper photographs;
its held-out photos, coffee and the astronaut are never trained on). Style images:
`scripts/style_textures.py` (generated painting-like textures) plus the same photos; none of
the three paintings in ../shared/images is used, so every painting the README and BENCHMARKS
show was never seen in training. On a GPU use --size 256 --batch 8 --steps 40000 --width 1
here, or Huang & Belongie's setting with real folders (`jaxstyle train-decoder --data COCO
--style-data WIKIART --size 256 --batch 8 --steps 160000 --width 1 --lr 1e-4`); the CPU
settings are what two cores allow in about an hour, and the README and BENCHMARKS say so.
Extra `jaxstyle train-decoder` options go after `--` (e.g. `-- --resume`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stage_two(args, run, styles: Path, current: bool = False
               ) -> tuple[str, Path, list[str]]:
    """Folders of links (photos + Debian's photos; styles + Debian's artwork) and the options
    of the fine-tuning stage: it starts from the stage-1 decoder at --out. `current` (the
    adain stage): the photo folder as it is, since `training_photos.py` now holds Debian's
    photographs itself, less the held-out ones that debian_artwork.py's folder still has."""
    debian = Path(args.debian)
    if not (debian / "SOURCES.md").exists():
        run(str(ROOT / "scripts" / "debian_artwork.py"), str(debian))
    linked = {}
    for name, parts in (("photos", {"sample": Path(args.photos), "debian": debian / "photos"}),
                        ("styles", {"sample": styles, "debian": debian / "styles"})):
        if current and name == "photos":
            linked[name] = Path(args.photos)
            continue
        folder = debian.with_name(f"{debian.name}-{name}-stage2")
        folder.mkdir(parents=True, exist_ok=True)
        for link, target in parts.items():
            if not (folder / link).exists():
                (folder / link).symlink_to(target.resolve(), target_is_directory=True)
        linked[name] = folder
    init = Path(args.stage1) if args.stage1 else debian.with_name(
        debian.name + "-stage1-decoder.jxs")
    if not current and not init.exists():
        # Kept outside the package: --out is overwritten, and every file in jaxstyle/models/
        # would ship as a built-in model.
        shutil.copy(args.out, init)
    return str(linked["photos"]), linked["styles"], ["--init", str(init), "--gram-weight", "30"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--photos", default="/tmp/jaxstyle-training-photos")
    parser.add_argument("--styles", default="/tmp/jaxstyle-style-data")
    parser.add_argument("--out", default=str(ROOT / "jaxstyle" / "models" / "any.jxs"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("extra", nargs="*", help="more `jaxstyle train-decoder` options")
    parser.add_argument("--stage", choices=("encoder", "reconstruct", "adain", "1", "2"),
                        default="reconstruct",
                        help="encoder: distil the small encoder (`train-encoder`) on the photos, "
                             "the textures and Debian's artwork; reconstruct: reconstruction "
                             "pre-training on photos; adain: AdaIN training from --init with "
                             "the relu4_1 Gram loss and Debian's artwork; 1, 2: the earlier "
                             "recipe's stages. Give `-- --encoder FILE` to train a decoder for "
                             "a distilled encoder")
    parser.add_argument("--init", help="reconstruct / adain: the decoder to start from (a "
                        "path or built-in name; none: random)")
    parser.add_argument("--stage1", help="stage 2: the stage-1 decoder to start from (default: "
                        "a copy of --out, made once; the shipped stage-1 decoder is "
                        "`git show e942ed8:jaxstyle/models/any.jxs`)")
    parser.add_argument("--debian", default="/tmp/jaxstyle-debian",
                        help="stage 2: where scripts/debian_artwork.py puts its images")
    args = parser.parse_args()
    run = lambda *command: subprocess.run([sys.executable, *command], check=True)  # noqa: E731
    if not (Path(args.photos) / "SOURCES.md").exists():
        run(str(ROOT / "scripts" / "training_photos.py"), args.photos)
    init = ["--init", args.init] if args.init else []
    if args.stage == "encoder":
        debian = Path(args.debian)
        if not (debian / "SOURCES.md").exists():
            run(str(ROOT / "scripts" / "debian_artwork.py"), str(debian))
        textures = Path(args.styles).with_name(Path(args.styles).name + "-textures")
        run(str(ROOT / "scripts" / "style_textures.py"), str(textures), "--count", "96")
        command = [sys.executable, "-m", "jaxstyle", "train-encoder", "--data", args.photos,
                   str(textures), str(debian / "styles"), "-o", args.out, "--steps",
                   str(args.steps), "--width", str(args.width), "--size", str(args.size),
                   "--batch", str(args.batch), "--lr", str(args.lr), "--workers",
                   str(args.workers), *init, *args.extra]
        print(" ".join(command), flush=True)
        sys.exit(subprocess.run(command).returncode)
    if args.stage == "reconstruct":
        command = [sys.executable, "-m", "jaxstyle", "train-decoder", "--data", args.photos,
                   "-o", args.out, "--reconstruct", "--steps", str(args.steps), "--width",
                   str(args.width), "--size", str(args.size), "--batch", str(args.batch),
                   "--lr", str(args.lr), "--workers", str(args.workers),
                   "--checkpoint-every", "200", "--preview-every", "200", *init, *args.extra]
        print(" ".join(command), flush=True)
        sys.exit(subprocess.run(command).returncode)
    styles = Path(args.styles)
    textures = styles.with_name(styles.name + "-textures")
    run(str(ROOT / "scripts" / "style_textures.py"), str(textures), "--count", "96")
    styles.mkdir(parents=True, exist_ok=True)
    for source in [*Path(textures).iterdir(), *Path(args.photos).iterdir()]:
        if not (styles / source.name).exists():
            shutil.copy(source, styles / source.name)
    photos, stage_options = args.photos, []
    if args.stage == "2":
        photos, styles, stage_options = _stage_two(args, run, styles)
    elif args.stage == "adain":
        photos, styles, _ = _stage_two(args, run, styles, current=True)
        # The weights as run (docs/models.md): stage 2's style terms (10, 30)
        # lost the photo; a fifth of them and a shallow anchor to the photo keep it; the
        # layout and grid terms (issue 18's own scores, made losses) lift the layout floor
        # and remove the grid. Options after `--` win (argparse keeps the last).
        stage_options = [*init, "--style-weight", "2", "--gram-weight", "6",
                         "--perceptual-weight", "2", "--layout-weight", "30",
                         "--grid-weight", "100"]
    command = [sys.executable, "-m", "jaxstyle", "train-decoder", "--data", photos,
               "--style-data", str(styles), "-o", args.out, "--steps", str(args.steps),
               "--width", str(args.width), "--size", str(args.size), "--batch", str(args.batch),
               "--lr", str(args.lr), "--workers", str(args.workers), "--checkpoint-every", "100",
               "--preview-every", "100", *stage_options, *args.extra]
    print(" ".join(command), flush=True)
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
