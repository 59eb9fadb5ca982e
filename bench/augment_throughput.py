"""Augmentation cost per image, per preset, at 224 px on one CPU core, against a plain torchvision pipeline.

    python bench/augment_throughput.py [--data ../shared/datasets/hymenoptera] [--images 64] [--repeat 3]

Images are decoded once beforehand (decoding is timed on its own row), so the
preset rows measure augmentation + resize + crop + normalise on uint8 arrays,
which is what the training loader runs per image. One thread everywhere: the
figure is images/s per core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tlcore.inputs.augment import PRESETS, preset, resize_target, train_pipeline  # noqa: E402
from tlcore.data import load_rgb, scan  # noqa: E402
from tlcore.models import Preprocessing  # noqa: E402

PREP = Preprocessing(input_size=(3, 224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                     interpolation="bicubic", crop_pct=0.875)


def rate(fn, items: list, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def main() -> None:
    default = ROOT.parent / "shared" / "datasets" / "hymenoptera"
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(default if default.is_dir() else ROOT / "sample_data"))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    report = scan(args.data)
    paths = [Path(report.root) / r.path for r in report.images[: args.images]]
    target = resize_target(PREP.input_size, PREP.crop_pct)
    arrays = [np.asarray(load_rgb(p, draft=target)) for p in paths]
    sizes = np.array([a.shape[:2] for a in arrays])
    print(f"{len(paths)} images from {args.data} (decoded median {int(np.median(sizes[:, 1]))}x"
          f"{int(np.median(sizes[:, 0]))}), output 224x224, 1 thread, best of {args.repeat}")
    print(f"{'pipeline':<34} {'images/s/core':>14} {'ms/image':>9}")

    def row(name: str, value: float) -> None:
        print(f"{name:<34} {value:>14.0f} {1000 / value:>9.2f}")

    row("decode JPEG (reduced-scale draft)", rate(lambda p: load_rgb(p, draft=target), paths, args.repeat))
    row("decode JPEG (full size)", rate(lambda p: load_rgb(p), paths, args.repeat))
    for name in PRESETS:
        pipeline = train_pipeline(preset(name), PREP, seed=0)
        row(f"preset {name}", rate(lambda a, p=pipeline: p(image=a)["image"], arrays, args.repeat))

    from PIL import Image
    from torchvision import transforms as T

    baseline = T.Compose([T.Resize(target, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                          T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(PREP.mean, PREP.std)])
    pil_images = [Image.fromarray(a) for a in arrays]
    row("torchvision resize+crop+flip (PIL)", rate(baseline, pil_images, args.repeat))

    # the GPU path's pieces, timed here on one CPU core: reading decoded squares, and the batched device steps
    import tempfile

    from tlcore.inputs.decoded import DecodedCache
    from tlcore.inputs.device_augment import DeviceAugment, device_spec

    with tempfile.TemporaryDirectory() as folder:
        cache = DecodedCache(report.root, PREP, root=Path(folder))
        cache.build([(str(p), str(i)) for i, p in enumerate(paths)])
        rows, index = cache.array([str(i) for i in range(len(paths))])
        row("decoded-image cache read", rate(lambda i: rows[i], index, args.repeat))
        batch = torch.from_numpy(rows[np.array(index)])
        for name in ("none", "light"):
            augment = DeviceAugment(device_spec(preset(name))[0], PREP, torch.device("cpu"))
            per_batch = rate(lambda _: augment(batch), [0], args.repeat)
            row(f"device steps, preset {name} (CPU, batch {len(batch)})", per_batch * len(batch))


if __name__ == "__main__":
    main()
