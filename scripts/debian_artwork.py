"""Build extra training images for engine 3's decoder from Debian's artwork packages.

    python scripts/debian_artwork.py OUT_DIR

Writes OUT_DIR/styles (digital paintings, illustrations and painterly textures), OUT_DIR/photos
(wallpaper photographs) and OUT_DIR/SOURCES.md (package, version, file and licence of each
image). The packages are fetched with `apt-get download` (Debian's own client, nothing else is
downloaded) and unpacked with `dpkg-deb -x`; nothing is installed. Images are stored as RGB
JPEGs at most `MAX_SIDE` px, as the loader crops far smaller anyway.

Why these: the issue's list of what can be had here names Debian's wallpaper packages. None of
them holds famous paintings, so the style set takes their digital paintings and illustrations
(KDE Plasma, UKUI, MATE), GNOME's patterned backgrounds and Krita's paper, canvas and
brush-mark textures (greyscale: they teach strokes and grain, the generated textures of
`scripts/style_textures.py` teach colour). Their photographs go to the photo set, which had
15, less the validation photos (`HELD_OUT`), which are kept for scoring.

Licences (from each package's copyright file, copied into SOURCES.md): GPL-2+ (Plasma
wallpapers, MATE's photos), CC-BY-SA-3.0 / 4.0 (UKUI, MATE's abstract images), CC-BY-SA-3.0 /
CC0 / GPL (GNOME backgrounds, Krita's patterns). The images are used for training only; none is
committed or shipped, and the models README credits the packages of a decoder trained on them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

MAX_SIDE = 1024
# Debian photos kept for scoring the trained models (the A/B and BENCHMARKS tables), never
# trained on: `training_photos.py --held-out DIR` writes them there, and this script's
# photo folder leaves them out.
HELD_OUT = ("lomiri_aitzgorri_by_Aitzol_Berasategi.jpg", "lomiri_friends_by_Aitzol_Berasategi.jpg",
            "lomiri_Wine_by_Jakkub_Mede.jpg", "plasma_EveningGlow.jpg")

# package -> {path glob inside the package: "styles" | "photos"}. Plasma wallpapers come in
# many sizes each: the largest file of each wallpaper folder is taken (see `pick`).
PLASMA = "usr/share/wallpapers/{}/contents/images/*"
SELECTION = {
    "plasma-workspace-wallpapers": {
        **{PLASMA.format(name): "styles" for name in (
            "Autumn", "Kite", "Canopee", "Cascade", "Cluster", "Honeywave", "PastelHills",
            "Patak", "Volna", "IceCold", "Elarun", "Kokkini", "Opal", "Shell", "Flow",
            "FlyingKonqui", "MilkyWay", "Altai")},
        **{PLASMA.format(name): "photos" for name in (
            "BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey",
            "Kay", "OneStandsOut", "Path", "SafeLanding", "summer_1am", "DarkestHour")},
    },
    "mate-backgrounds": {
        "usr/share/backgrounds/mate/abstract/Elephants.jpg": "styles",
        "usr/share/backgrounds/mate/nature/*.jpg": "photos",
    },
    "ukui-wallpapers": {"usr/share/backgrounds/*": "styles"},
    "gnome-backgrounds": {
        f"usr/share/backgrounds/gnome/{name}-[dl].webp": "styles"
        for name in ("adwaita", "grid", "licorice", "truchet", "wood")},
    "krita-data": {"usr/share/krita/patterns/[0-2]*.png": "styles",
                   "usr/share/krita/patterns/Rough_Wall_With_Impasto.png": "styles",
                   "usr/share/krita/patterns/Abstract_lines.png": "styles"},
}


def download(package: str, folder: Path) -> tuple[Path, str]:
    """The package's files unpacked under folder/package, and its version."""
    subprocess.run(["apt-get", "download", "-q", package], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)
    deb = next(folder.glob(f"{package}_*.deb"))
    root = folder / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    version = deb.name.split("_")[1].replace("%3a", ":")
    return root, version


def pick(root: Path, pattern: str) -> list[Path]:
    """Files matching pattern; for a Plasma wallpaper folder only its largest image."""
    found = sorted(p for p in root.glob(pattern) if p.is_file())
    if "/wallpapers/" in pattern and found:
        return [max(found, key=lambda p: p.stat().st_size)]
    return found


def convert(source: Path, target: Path) -> bool:
    """source as an RGB JPEG of at most MAX_SIDE px; False if Pillow cannot read it."""
    try:
        with Image.open(source) as image:
            image = image.convert("RGB")
    except OSError:
        return False
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    image.save(target, quality=92)
    return True


def licence_lines(root: Path, package: str) -> str:
    """The Files/License pairs of the package's machine-readable copyright file."""
    copyright_file = root / "usr/share/doc" / package / "copyright"
    if not copyright_file.exists():
        return "(no copyright file)"
    lines = [line.strip() for line in copyright_file.read_text(errors="replace").splitlines()
             if line.startswith(("Files:", "License:"))]
    return "; ".join(dict.fromkeys(lines))


def build(out_dir: Path) -> dict[str, int]:
    counts = {"styles": 0, "photos": 0}
    sources = ["# Training images from Debian's artwork packages", "",
               "Made by `python scripts/debian_artwork.py`. For training only; not shipped.", ""]
    for kind in counts:
        (out_dir / kind).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # apt-get download's unprivileged user writes into it
        for package, patterns in SELECTION.items():
            root, version = download(package, Path(tmp))
            sources += [f"## {package} {version}", "", f"Licences: {licence_lines(root, package)}",
                        ""]
            for pattern, kind in patterns.items():
                for path in pick(root, pattern):
                    name = f"{package.split('-')[0]}_{path.parent.parent.parent.name}" \
                        if "/wallpapers/" in pattern else f"{package.split('-')[0]}_{path.stem}"
                    target = out_dir / kind / f"{name}.jpg"
                    if kind == "photos" and target.name in HELD_OUT:
                        continue  # a validation photo (HELD_OUT): never trained on
                    if convert(path, target):
                        counts[kind] += 1
                        sources.append(f"- {kind}/{target.name}: /{path.relative_to(root)}")
            sources.append("")
    (out_dir / "SOURCES.md").write_text("\n".join(sources))
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    try:
        counts = build(args.out_dir)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        sys.exit(f"debian_artwork: could not fetch or unpack a package ({exc}); this needs "
                 "Debian's apt-get and dpkg-deb with its package lists (apt-get update)")
    print(f"{counts['styles']} style images, {counts['photos']} photos in {args.out_dir}")


if __name__ == "__main__":
    main()
