"""Can the target pictures choose the adaptation method without their labels? Two shifts, every method, scored.

    python bench/choose_adaptation.py [--shifts chalk,sketch] [--strategies fine_tune,feature_extraction]
                                      [--methods none,adabn,mcc,adabn+mcc,entropy,dann] [--epochs 4]

Shift sets (both made here, neither tunes a default alone):
- chalk: the bundled `sample_data/shapes` (photo style) -> the same shapes in chalk on a blackboard
  (`sample_data/make_shapes.py --style chalk`: unlabelled seed 8, 40 per class; labelled test seed 7, 60 per class).
- sketch: the ants/bees photos of `../shared/datasets/hymenoptera/train` -> pencil sketches (`make_sketch` below)
  of the `val` photos: the first half of each class unlabelled (what runs adapt to), the second half the labelled
  target test. Photos -> drawings, as the issue asked; skipped when ../shared is absent.

Every run trains as the worker trains it (`tlcore.worker.run_to_end`, which also scores the target pictures
without labels: `target_score.json`), then is evaluated on the labelled target test. The table gives, per run,
target accuracy and the two label-free scores (IM, SND); per shift and strategy, the method each score picks,
the method target labels would pick, and the chosen method's gain over no adaptation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "datasets" / "hymenoptera"

from tlcore.config import RunConfig  # noqa: E402
from tlcore.evaluate import evaluate_folder  # noqa: E402
from tlcore.run_files import read_target_score  # noqa: E402
from tlcore.worker import run_to_end  # noqa: E402


def make_sketch(photo: Image.Image) -> Image.Image:
    """A pencil sketch of a photo: grey, then 'colour dodge' of the grey by its blurred negative (the classic
    recipe), which keeps the edges as dark strokes on white paper and drops colour, texture and light."""
    grey = ImageOps.grayscale(photo)
    blurred = np.asarray(ImageOps.invert(grey).filter(ImageFilter.GaussianBlur(6)), dtype=np.float32)
    base = np.asarray(grey, dtype=np.float32)
    sketch = np.clip(base * 255.0 / np.maximum(255.0 - blurred, 1.0), 0, 255).astype(np.uint8)
    return ImageOps.autocontrast(Image.fromarray(sketch), cutoff=1).convert("RGB")


def sketch_sets(work: Path) -> tuple[Path, Path, Path]:
    """(source photos, unlabelled sketches, labelled sketch test) from the hymenoptera photos."""
    unlabelled, test = work / "sketch_unlabelled", work / "sketch_test"
    for folder in sorted((SHARED / "val").iterdir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        half = len(photos) // 2
        for index, photo in enumerate(photos):
            out = (unlabelled if index < half else test / folder.name) / f"{folder.name}_{photo.stem}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            make_sketch(Image.open(photo).convert("RGB")).save(out)
    return SHARED / "train", unlabelled, test


def chalk_sets(work: Path) -> tuple[Path, Path, Path]:
    """(source shapes, unlabelled chalk, labelled chalk test)."""
    make = [sys.executable, str(ROOT / "sample_data" / "make_shapes.py"), "--style", "chalk"]
    subprocess.run(make + ["--out", str(work / "chalk_unlabelled"), "--seed", "8", "--per-class", "40"], check=True,
                   capture_output=True)
    subprocess.run(make + ["--out", str(work / "chalk_test"), "--seed", "7"], check=True, capture_output=True)
    return ROOT / "sample_data" / "shapes", work / "chalk_unlabelled", work / "chalk_test"


def few_labelled(unlabelled: Path, out: Path, per_class: int) -> Path:
    """The first `per_class` pictures of each class of the unlabelled target, with their class: a user labelling a
    few of the pictures they have (they stay in the unlabelled set too; the labelled target test is separate).
    Class folders (chalk) or class-prefixed names (sketches: ants_x.png)."""
    pictures = sorted(p for p in unlabelled.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    by_class: dict[str, list[Path]] = {}
    for picture in pictures:
        label = picture.parent.name if picture.parent != unlabelled else picture.name.split("_")[0]
        by_class.setdefault(label, []).append(picture)
    for label, found in by_class.items():
        (out / label).mkdir(parents=True, exist_ok=True)
        for picture in found[:per_class]:
            shutil.copy(picture, out / label / picture.name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifts", default="chalk,sketch")
    parser.add_argument("--strategies", default="fine_tune,feature_extraction")
    parser.add_argument("--methods", default="none,adabn,mcc,adabn+mcc,entropy,dann")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--labelled", default="0", help="labelled target pictures per class to train on (adapt.labelled, "
                             "use train), comma-separated to run each: 0,5 gives every run with none and with 5")
    parser.add_argument("--seeds", type=int, default=1, help="repeat each run with seeds 0..N-1 (the table gives means)")
    parser.add_argument("--out", help="also write the rows as JSON lines here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tl-choose-adaptation-"))
    os.environ["TRANSFERLAB_HOME"] = str(work / "home")
    rows = []
    for shift in args.shifts.split(","):
        if shift == "sketch" and not SHARED.is_dir():
            print(f"sketch: skipped, {SHARED} is absent")
            continue
        source, unlabelled, test = (sketch_sets if shift == "sketch" else chalk_sets)(work)
        for strategy, method, per_class, seed in itertools.product(
                args.strategies.split(","), args.methods.split(","), [int(k) for k in args.labelled.split(",")],
                range(args.seeds)):
            if method == "dann" and strategy == "feature_extraction":
                continue  # DANN needs a backbone that trains (the run refuses it, by name)
            adapt = {"method": method, "target": str(unlabelled)}
            if per_class:
                adapt.update(labelled=str(few_labelled(unlabelled, work / f"{shift}_labelled_{per_class}", per_class)),
                             labelled_use="train")
            config = RunConfig.from_dict({"data": {"source": str(source)}, "epochs": args.epochs, "seed": seed,
                                          "freeze": {"strategy": strategy}, "adapt": adapt})
            run_dir = work / "runs" / f"{shift}-{strategy}-{method}-{per_class}-{seed}"
            started = time.perf_counter()
            status, error, evaluation = run_to_end(config, run_dir, lambda event: None, lambda: False)
            seconds = time.perf_counter() - started
            row = {"shift": shift, "strategy": strategy, "method": method, "labelled": per_class, "seed": seed,
                   "seconds": round(seconds),
                   "status": status, "error": error}
            if status == "succeeded":
                target, _ = evaluate_folder(run_dir, test)
                score = read_target_score(run_dir) or {}
                row.update(source_acc=evaluation.accuracy, target_acc=target.accuracy, target_n=target.n,
                           im=score.get("im"), snd=score.get("snd"))
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print_tables(rows)


def print_tables(rows: list[dict]) -> None:
    """The runs, then per shift and strategy what each label-free score picks against what labels pick."""
    print("\n| shift | strategy | method | labelled per class | source acc | target acc | vs none, no labels | IM | SND "
          "| seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    done = [r for r in rows if r["status"] == "succeeded"]
    none = {(r["shift"], r["strategy"]): r["target_acc"] for r in done if r["method"] == "none" and not r["labelled"]}
    for r in done:
        gain = (r["target_acc"] - none.get((r["shift"], r["strategy"]), np.nan)) * 100
        print(f"| {r['shift']} | {r['strategy']} | {r['method']} | {r['labelled']} | {r['source_acc']:.3f} | "
              f"{r['target_acc']:.3f} | {gain:+.1f} | {r['im']:.3f} | {r['snd']:.3f} | {r['seconds']} |")
    cells: dict[tuple, list[float]] = {}
    for r in done:
        cells.setdefault((r["shift"], r["strategy"], r["method"], r["labelled"]), []).append(r["target_acc"])
    if any(len(v) > 1 for v in cells.values()):
        print("\n| shift | strategy | method | labelled per class | seeds | mean target acc | std (points) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for (shift, strategy, method, labelled), accs in cells.items():
            print(f"| {shift} | {strategy} | {method} | {labelled} | {len(accs)} | {np.mean(accs):.3f} | "
                  f"{100 * np.std(accs, ddof=1) if len(accs) > 1 else 0:.1f} |")
    done = [r for r in done if not r["labelled"]]  # the label-free choice is among runs that had no labels
    print("\n| shift | strategy | label-best | picked by IM (gain vs none) | picked by SND (gain vs none) |")
    print("| --- | --- | --- | --- | --- |")
    for key in sorted({(r["shift"], r["strategy"]) for r in done}):
        group = [r for r in done if (r["shift"], r["strategy"]) == key]
        best = max(group, key=lambda r: r["target_acc"])
        by_im, by_snd = max(group, key=lambda r: r["im"]), max(group, key=lambda r: r["snd"])
        base = none.get(key, np.nan)
        print(f"| {key[0]} | {key[1]} | {best['method']} {best['target_acc']:.3f} | {by_im['method']} "
              f"({(by_im['target_acc'] - base) * 100:+.1f}) | {by_snd['method']} ({(by_snd['target_acc'] - base) * 100:+.1f}) |")


if __name__ == "__main__":
    main()
