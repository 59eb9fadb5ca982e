"""Domain adaptation on a real shift: photo-style shapes -> the same shapes in chalk on a blackboard.

    python bench/domain_shift.py [--methods none,adabn,mcc,entropy,dann,l2sp] [--strategies feature_extraction,full]
                                 [--epochs 4]

The source is the bundled `sample_data/shapes`. The target domain is made by `sample_data/make_shapes.py
--style chalk`: an unlabeled set (seed 8, 40 per class) that runs adapt to, and a labelled set (seed 7,
60 per class, other pictures) that they are evaluated on. Every cell goes through the CLI exactly as a
user runs it: `python -m tlcore train CONFIG` (with `"adapt": {"method": ..., "target": ...}`), then
`python -m tlcore evaluate RUN --data CHALK --json`. Source accuracy is the run's own held-out test split.
A method that does not apply to a freeze strategy (dann and l2sp need a backbone that trains) says why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tlcore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlcore", *args], cwd=ROOT, capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", default="none,adabn,mcc,entropy,dann,l2sp")
    parser.add_argument("--strategies", default="feature_extraction,full")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tl-domain-shift-"))
    os.environ["TRANSFERLAB_HOME"] = str(work / "home")
    make = [sys.executable, str(ROOT / "sample_data" / "make_shapes.py"), "--style", "chalk"]
    subprocess.run(make + ["--out", str(work / "chalk_unlabeled"), "--seed", "8", "--per-class", "40"], check=True,
                   capture_output=True)
    subprocess.run(make + ["--out", str(work / "chalk_test"), "--seed", "7"], check=True, capture_output=True)
    rows = []
    for strategy in args.strategies.split(","):
        for method in args.methods.split(","):
            config = {"data": {"source": str(ROOT / "sample_data")}, "epochs": args.epochs,
                      "freeze": {"strategy": strategy},
                      "adapt": {"method": method, "target": str(work / "chalk_unlabeled")}}
            if strategy == "full":
                config["optimizer"] = {"lr": 1e-3}
            path = work / f"{strategy}-{method}.json"
            path.write_text(json.dumps(config))
            started = time.perf_counter()
            trained = tlcore("train", str(path))
            seconds = time.perf_counter() - started
            if trained.returncode != 0:
                said = (trained.stderr.strip() or trained.stdout.strip() or "failed").splitlines()[-1]
                rows.append((strategy, method, None, None, seconds, said.split(": ", 1)[-1][:140]))
                print(rows[-1], flush=True)
                continue
            run_id = trained.stdout.split()[1]
            source = json.loads(tlcore("evaluate", run_id, "--json").stdout)["accuracy"]
            target = json.loads(tlcore("evaluate", run_id, "--data", str(work / "chalk_test"), "--json").stdout)
            rows.append((strategy, method, source, target["accuracy"], seconds, ""))
            print(rows[-1], flush=True)
    print(f"\nsource: sample_data/shapes (photo style), test split of 36; target: chalk style, {target['n']} labelled "
          f"pictures; {args.epochs} epochs; CPU, {os.cpu_count()} cores\n")
    print("| strategy | method | source acc | target acc | target vs none | seconds | note |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    baseline = {s: t for s, m, _, t, _, _ in rows if m == "none"}
    for strategy, method, source, target_acc, seconds, note in rows:
        if source is None:
            print(f"| {strategy} | {method} | - | - | - | {seconds:.0f} | {note} |")
            continue
        gain = (target_acc - baseline[strategy]) * 100 if baseline.get(strategy) is not None else float("nan")
        print(f"| {strategy} | {method} | {source:.1%} | {target_acc:.1%} | {gain:+.1f} | {seconds:.0f} | |")


if __name__ == "__main__":
    main()
