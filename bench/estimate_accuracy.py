"""Time estimates against the real runs they predict, measured the way the app measures and runs them.

Each estimate is `python -m tlcore estimate CONFIG... --json` in a process of its own (what "Estimate the time"
starts), and each real run is queued on the background worker (`submit`, as "Start training" and Compare do);
its real time is what the store records from the worker's claim to its end. Each case has a fresh data folder, so
the feature cache starts empty as it does for a new user, and a worker of its own, so the first run of a kind pays
what a first run pays (the worker lingers between the runs of a grid, as it does in the app).

Cases: on the bundled sample data (240 shapes, EfficientNet-Lite0, this machine's CPU) each freeze strategy; the
bundled support tickets (240 texts, all-MiniLM-L6-v2) head only and whole encoder at the texts' settings; the
Compare page's default comparison (its five strategies, pictures) estimated in one process as the page does; and a
comparison grid of 2 strategies x 2 seeds (pictures). A comparison's total is the sum of its runs. Printed per case: the
estimate, the real time, their ratio (the goal: within 30%, 0.77 to 1.3), and what the estimate cost against the
work it estimated (the goal: at most 10% of it or 30 s). With `--busy N`, N processes spin on the CPU beside it.

Usage: `.venv/bin/python bench/estimate_accuracy.py [--epochs 3] [--busy 1] [--cases pictures,texts,compare,grid]`
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRATEGIES = ("feature_extraction", "freeze_first_k", "gradual", "full")
SHAPES = ROOT / "sample_data" / "shapes"
TEXTS = ROOT / "sample_data" / "support_tickets.csv"
TEXT_SETTINGS = {"feature_extraction": {}, "full": {"optimizer": {"lr": 1e-4}, "schedule": {"name": "cosine",
                                                                                           "warmup_epochs": 0.5}}}


def picture_config(strategy: str, epochs: int, **changes) -> dict:
    """A run on the sample shapes that goes all its epochs (no early stop), as an estimate assumes."""
    return {"data": {"source": str(SHAPES)}, "epochs": epochs, "freeze": {"strategy": strategy},
            "early_stopping": {"patience": 0}, **changes}


def text_config(strategy: str, epochs: int) -> dict:
    return {"data": {"source": str(TEXTS)}, "model": {"name": "all-MiniLM-L6-v2"}, "input_size": None,
            "epochs": epochs, "freeze": {"strategy": strategy}, "early_stopping": {"patience": 0},
            **TEXT_SETTINGS[strategy]}


def estimated(configs: list[dict], home: Path) -> tuple[list[float], float]:
    """(each config's estimated seconds, seconds the estimate took), from the CLI in a process of its own."""
    home.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, config in enumerate(configs):
        paths.append(home / f"config-{index}.json")
        paths[-1].write_text(json.dumps(config))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tlcore", "estimate", *map(str, paths), "--json"], cwd=ROOT,
                          env={**os.environ, "TRANSFERLAB_HOME": str(home)}, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"estimate failed: {done.stderr.strip()}")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    for line in lines:
        print(f"    estimate: start {line['setup_s']:.1f} s, epochs {', '.join(f'{e:.1f}' for e in line['epoch_s'])} s "
              f"({line['basis']})", flush=True)
    return [line["total_s"] for line in lines], took


def ran(configs: list[dict], home: Path) -> list[float]:
    """Each run's seconds on the background worker (claim to end, as the store records them), queued together."""
    os.environ["TRANSFERLAB_HOME"] = str(home)
    os.environ["TRANSFERLAB_WORKER_LINGER_S"] = "5"
    from tlcore.config import RunConfig
    from tlcore.runs import RunStore
    from tlcore.running.worker import submit, worker_running

    store = RunStore()
    runs = [submit(RunConfig.from_dict(config), store) for config in configs]
    while any(store.get(run.id).status in ("queued", "running") for run in runs):
        time.sleep(0.5)
    while worker_running(store):  # its lingering and exit (freeing GBs) would meet the next case's estimate
        time.sleep(0.5)
    seconds = []
    for run in runs:
        run = store.get(run.id)
        if run.status != "succeeded":
            raise SystemExit(f"run {run.id} {run.status}: {run.error}")
        seconds.append(run.finished - run.started)
        epochs = [round(m["epoch_seconds"], 1) for m in store.metrics(run.id)]
        first = min((e["ts"] for e in store.events(run.id, kinds=("epoch",))), default=run.finished)
        print(f"    run: {first - run.started:.1f} s before epoch 1 ended, epochs {epochs} s, "
              f"{seconds[-1]:.1f} s in all", flush=True)
    return seconds


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="processes spinning on the CPU beside the work")
    parser.add_argument("--cases", default="pictures,texts,compare,grid")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    work = Path(tempfile.mkdtemp(prefix="tl-bench-estimate-"))
    rows = []
    if "pictures" in cases:
        rows += [(f"pictures, {s}", [picture_config(s, args.epochs)]) for s in STRATEGIES]
    if "texts" in cases:
        rows += [(f"texts, {s}", [text_config(s, args.epochs)]) for s in TEXT_SETTINGS]
    if "compare" in cases:  # what the Compare page estimates and runs by default: its five strategies, one seed
        from tlcore.config import RunConfig
        from tlcore.experiments.compare import sweep_configs

        base = RunConfig.from_dict(picture_config("feature_extraction", args.epochs))
        rows.append(("compare: the 5 default strategies", [c.to_dict() for c in sweep_configs(base)]))
    if "grid" in cases:
        rows.append(("grid: 2 strategies x 2 seeds", [picture_config(s, args.epochs, seed=seed)
                                                      for s in ("feature_extraction", "full") for seed in (0, 1)]))
    print(f"{'case':32} {'estimated s':>12} {'real s':>8} {'real/estimated':>15} "
          f"{'estimating s':>13} {'share of work':>14}", flush=True)
    try:
        for index, (name, configs) in enumerate(rows):
            home = work / f"case-{index}"
            estimates, took = estimated(configs, home)
            real = ran(configs, home)
            total_estimate, total_real = sum(estimates), sum(real)
            print(f"{name:32} {total_estimate:12.1f} {total_real:8.1f} {total_real / total_estimate:15.2f} "
                  f"{took:13.1f} {took / total_real:14.0%}", flush=True)
            if len(configs) > 1:
                for config, e, r in zip(configs, estimates, real):
                    label = f"  {config.get('name') or config['freeze']['strategy']}, seed {config.get('seed', 0)}"
                    print(f"{label:32} {e:12.1f} {r:8.1f} {r / e:15.2f}", flush=True)
            shutil.rmtree(home, ignore_errors=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
        shutil.rmtree(work, ignore_errors=True)
    if args.busy:
        print(f"(with {args.busy} process(es) spinning on the CPU beside it)")


if __name__ == "__main__":
    main()
