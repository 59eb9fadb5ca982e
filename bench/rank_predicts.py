"""Does the model ranking predict which model trains best? The three real offline backbones and their random twins,
ranked on several data sets, then trained; Kendall's tau between each ranking and the test accuracies.

    python bench/rank_predicts.py [--epochs 4] [--sets shapes,chalk,hymenoptera,sketches] [--strategies feature_extraction]

For each data set: `rank_models` (LogME and a linear probe on frozen features of the training and validation
split, what `models rank` and the Model page show), then one run per candidate and strategy with the same split
and seed (`train`, then `evaluate_run` on the held-out test split). Per set and strategy it prints the table, the
Kendall's tau of LogME's order and of the probe's order against the test accuracies, and whether the top pick was
the most accurate. At the end: the mean tau, and how often the top pick was the best (a tie counts).

Data sets: `shapes` (the bundled sample data), `chalk` (the same shapes drawn in chalk, `make_shapes.py --style
chalk`, 60 per class), `hymenoptera` (real photos in ../shared, ants and bees) and `sketches` (those photos as
pencil sketches); the last two are left out, with a note, where ../shared is absent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "datasets" / "hymenoptera"
sys.path.insert(0, str(ROOT / "bench"))

from scipy.stats import kendalltau  # noqa: E402

from tlcore.config import RunConfig  # noqa: E402
from tlcore.experiments.rank import rank_models  # noqa: E402
from tlcore.results.evaluate import evaluate_run  # noqa: E402
from tlcore.training.train import train  # noqa: E402

BACKBONES = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
CANDIDATES = [name for backbone in BACKBONES for name in (backbone, backbone + "@random")]


def data_sets(work: Path, wanted: list[str]) -> dict[str, Path]:
    """The data sets asked for, made where they are drawn."""
    found = {}
    if "shapes" in wanted:
        found["shapes"] = ROOT / "sample_data" / "shapes"
    if "chalk" in wanted:
        subprocess.run([sys.executable, str(ROOT / "sample_data" / "make_shapes.py"), "--style", "chalk",
                        "--out", str(work / "chalk"), "--seed", "7"], check=True, capture_output=True)
        found["chalk"] = work / "chalk"
    if SHARED.is_dir():
        if "hymenoptera" in wanted:
            found["hymenoptera"] = SHARED
        if "sketches" in wanted:
            from choose_adaptation import make_sketch

            for split in ("train", "val"):
                for folder in sorted((SHARED / split).iterdir()):
                    for photo in sorted(folder.iterdir()):
                        if photo.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                            continue
                        out = work / "sketches" / split / folder.name / f"{photo.stem}.png"
                        out.parent.mkdir(parents=True, exist_ok=True)
                        make_sketch(Image.open(photo).convert("RGB")).save(out)
            found["sketches"] = work / "sketches"
    else:
        print(f"note: {SHARED} is absent: hymenoptera and sketches left out")
    return found


def config_for(source: Path, candidate: str, strategy: str, epochs: int) -> RunConfig:
    name, random = candidate.removesuffix("@random"), candidate.endswith("@random")
    return RunConfig.from_dict({"data": {"source": str(source), "split_seed": 0}, "epochs": epochs, "seed": 0,
                                "model": {"name": name, "weights": "random" if random else "auto"},
                                "freeze": {"strategy": strategy}, "early_stopping": {"patience": 0}})


def tau(scores: list[float], accuracies: list[float]) -> float:
    return float(kendalltau(scores, accuracies).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sets", default="shapes,chalk,hymenoptera,sketches")
    parser.add_argument("--strategies", default="feature_extraction")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tl-bench-rank-"))
    os.environ["TRANSFERLAB_HOME"] = str(work / "home")
    taus: dict[str, list[float]] = {"LogME": [], "probe": []}
    pretrained_taus: dict[str, list[float]] = {"LogME": [], "probe": []}  # the three real backbones only
    top_right = {"LogME": 0, "probe": 0}
    cases = 0
    for set_name, source in data_sets(work, args.sets.split(",")).items():
        started = time.perf_counter()
        base = config_for(source, CANDIDATES[0], "feature_extraction", args.epochs)
        scores = {s.candidate: s for s in rank_models(base, CANDIDATES)}
        for strategy in args.strategies.split(","):
            accuracy = {}
            for candidate in CANDIDATES:
                run_dir = work / "runs" / set_name / strategy / candidate.replace("@", "_")
                train(config_for(source, candidate, strategy, args.epochs), run_dir)
                accuracy[candidate] = evaluate_run(run_dir).accuracy
            print(f"\n{set_name}, {strategy}, {args.epochs} epochs ({time.perf_counter() - started:.0f} s so far)")
            print(f"{'candidate':32} {'LogME':>8} {'probe':>7} {'test acc':>9}")
            for candidate in CANDIDATES:
                s = scores[candidate]
                print(f"{candidate:32} {s.logme:8.3f} {s.probe_accuracy:7.3f} {accuracy[candidate]:9.3f}")
            cases += 1
            best = max(accuracy.values())
            for key, value in (("LogME", lambda s: s.logme), ("probe", lambda s: s.probe_accuracy)):
                order = [value(scores[c]) for c in CANDIDATES]
                t = tau(order, [accuracy[c] for c in CANDIDATES])
                taus[key].append(t)
                real = [c for c in CANDIDATES if not c.endswith("@random")]
                pretrained_taus[key].append(tau([value(scores[c]) for c in real], [accuracy[c] for c in real]))
                pick = max(CANDIDATES, key=lambda c: value(scores[c]))
                top_right[key] += accuracy[pick] >= best
                print(f"{key}: Kendall's tau {t:+.2f} ({pretrained_taus[key][-1]:+.2f} among the pretrained); top pick "
                      f"{pick} ({accuracy[pick]:.3f}, best {best:.3f})")
    print(f"\nover {cases} data set x strategy cases:")
    for key in taus:
        real = [t for t in pretrained_taus[key] if t == t]  # NaN where the accuracies all tie
        print(f"  {key}: mean Kendall's tau {sum(taus[key]) / max(1, len(taus[key])):+.2f} "
              f"(min {min(taus[key]):+.2f}), among the three pretrained {sum(real) / max(1, len(real)):+.2f}; "
              f"top pick the most accurate in {top_right[key]} of {cases}")


if __name__ == "__main__":
    main()
