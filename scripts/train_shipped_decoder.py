"""Train the arbitrary-style decoder shipped in jaxstyle/models/ (the recipe, as run).

    python scripts/train_shipped_decoder.py [--steps 3000] [--width 0.5] [--size 128]
    python scripts/train_shipped_decoder.py --stage 2 --lr 2e-4 -- --time-limit 60m

Stage 1 trains from scratch; stage 2 fine-tunes stage 1's decoder (--stage1, or the file at
--out, first copied next to the Debian images) with `scripts/debian_artwork.py`'s images
added to both folders and `--gram-weight 30` (jaxstyle/models/README.md says why and what
it changed).

Photos: `scripts/training_photos.py` (scikit-image / scikit-learn samples; coffee and the
astronaut are held out for scoring). Style images: `scripts/style_textures.py` (generated
painting-like textures) plus the same photos; none of the three paintings in ../shared/images
is used, so every painting the README and BENCHMARKS show was never seen in training. On a
GPU use --size 256 --batch 8 --steps 40000 --width 1 here, or Huang & Belongie's setting with
real folders (`jaxstyle train-decoder --data COCO --style-data WIKIART --size 256 --batch 8
--steps 160000 --width 1 --lr 1e-4`); the CPU settings are what two cores allow in about an
hour, and the README and BENCHMARKS say so. Extra `jaxstyle train-decoder` options go after
`--` (e.g. `-- --resume`).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stage_two(args, run, styles: Path) -> tuple[str, Path, list[str]]:
    """Folders of links (photos + Debian's photos; styles + Debian's artwork) and the options
    of the fine-tuning stage: it starts from the stage-1 decoder at --out."""
    debian = Path(args.debian)
    if not (debian / "SOURCES.md").exists():
        run(str(ROOT / "scripts" / "debian_artwork.py"), str(debian))
    linked = {}
    for name, parts in (("photos", {"sample": Path(args.photos), "debian": debian / "photos"}),
                        ("styles", {"sample": styles, "debian": debian / "styles"})):
        folder = debian.with_name(f"{debian.name}-{name}-stage2")
        folder.mkdir(parents=True, exist_ok=True)
        for link, target in parts.items():
            if not (folder / link).exists():
                (folder / link).symlink_to(target.resolve(), target_is_directory=True)
        linked[name] = folder
    init = Path(args.stage1) if args.stage1 else debian.with_name(
        debian.name + "-stage1-decoder.jxs")
    if not init.exists():
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
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1,
                        help="1: train from scratch; 2: fine-tune stage 1's decoder (--init) "
                             "with Debian's artwork added and the relu4_1 Gram loss")
    parser.add_argument("--stage1", help="stage 2: the stage-1 decoder to start from (default: "
                        "a copy of --out, made once; the shipped stage-1 decoder is "
                        "`git show e942ed8:jaxstyle/models/any.jxs`)")
    parser.add_argument("--debian", default="/tmp/jaxstyle-debian",
                        help="stage 2: where scripts/debian_artwork.py puts its images")
    args = parser.parse_args()
    run = lambda *command: subprocess.run([sys.executable, *command], check=True)  # noqa: E731
    run(str(ROOT / "scripts" / "training_photos.py"), args.photos)
    styles = Path(args.styles)
    textures = styles.with_name(styles.name + "-textures")
    run(str(ROOT / "scripts" / "style_textures.py"), str(textures), "--count", "96")
    styles.mkdir(parents=True, exist_ok=True)
    for source in [*Path(textures).iterdir(), *Path(args.photos).iterdir()]:
        if not (styles / source.name).exists():
            shutil.copy(source, styles / source.name)
    photos, stage_options = args.photos, []
    if args.stage == 2:
        photos, styles, stage_options = _stage_two(args, run, styles)
    command = [sys.executable, "-m", "jaxstyle", "train-decoder", "--data", photos,
               "--style-data", str(styles), "-o", args.out, "--steps", str(args.steps),
               "--width", str(args.width), "--size", str(args.size), "--batch", str(args.batch),
               "--lr", str(args.lr), "--workers", str(args.workers), "--checkpoint-every", "100",
               "--preview-every", "100", *stage_options, *args.extra]
    print(" ".join(command), flush=True)
    sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()
