"""Text classification against a plain PyTorch + transformers loop, on the same split of the bundled tickets.

Each setup is run by the project (`tlcore.training.train.train` + `evaluate_run`, as `python -m tlcore train` does) and by
a plain loop written here (AutoModel + mean pooling + nn.Linear, AdamW with transformers' linear warm-up and decay,
the same batches' size, epochs, learning rate and tokenizer length): head only (frozen encoder) at the config's
defaults; the whole encoder at the texts' values (lr 1e-4, half an epoch of warm-up,
which the app sets for texts with the encoder training); and the whole encoder at the picture
default lr 3e-3 (what text runs got before). The table gives the mean test accuracy over seeds, seconds, and
training steps per second (project / plain). `--per-class N` keeps N training texts per class (the tickets are
easy with all of them: every setup reaches 1.0).

Usage: `.venv/bin/python bench/text_reference.py [--per-class 8] [--seeds 3]` (CPU, a few minutes).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFERLAB_HOME", tempfile.mkdtemp(prefix="tl-bench-text-"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from tlcore.config import RunConfig  # noqa: E402
from tlcore.modality import load_manifest  # noqa: E402
from tlcore.results.evaluate import evaluate_run  # noqa: E402
from tlcore.text.loader import collate_texts, texts_of  # noqa: E402
from tlcore.text.model import load_tokenizer, model_folder  # noqa: E402
from tlcore.training.train import train  # noqa: E402

DATA = ROOT / "sample_data" / "support_tickets.csv"
# name -> (strategy, learning rate given to the project (None: the config's defaults for texts), the learning
# rate and warm-up epochs they come to, epochs)
# A learning rate given to the project equal to the config's default would follow the texts' value (a config
# cannot tell a default from the same number typed), so the picture rate is given as 0.0030001.
SETUPS = {
    "head only, defaults": ("feature_extraction", None, 3e-3, 0.0, 4),
    "whole encoder, the texts' values": ("full", 1e-4, 1e-4, 0.5, 4),
    "whole encoder, lr 5e-5 given": ("full", 5e-5, 5e-5, 0.5, 4),
    "whole encoder, picture default lr (before)": ("full", 3.0001e-3, 3.0001e-3, 0.0, 4),
}
BATCH, LENGTH, SEED = 16, 128, 0


def few_per_class(manifest, per_class: int, seed: int, folder: Path) -> Path:
    """The split with only `per_class` training texts per class (drawn by `seed`; all of them for 0)."""
    rng = random.Random(seed)
    kept = []
    for label in manifest.classes:
        train_items = [i for i in manifest.items if i.split == "train" and i.label == label]
        kept += rng.sample(train_items, per_class) if per_class else train_items
    items = kept + [i for i in manifest.items if i.split != "train"]
    return replace(manifest, items=items).save(folder / f"few_{per_class}_{seed}.json")


def plain(strategy: str, lr: float, warmup: float, epochs: int, manifest, seed: int) -> tuple[float, float, float]:
    """A plain loop: returns (test accuracy, seconds, training steps per second)."""
    from transformers import AutoModel, get_linear_schedule_with_warmup

    folder = model_folder("all-MiniLM-L6-v2")
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(seed)
    encoder = AutoModel.from_pretrained(str(folder), add_pooling_layer=False)
    head = nn.Linear(encoder.config.hidden_size, len(manifest.classes))

    def tokenized(split: str):
        items = manifest.files(split)
        texts = texts_of(str(DATA), [Path(p).relative_to(manifest.root).as_posix() for p, _ in items], None, None)
        return tokenizer(texts, truncation=True, max_length=LENGTH)["input_ids"], [y for _, y in items]

    def batches(data, shuffle: bool, epoch: int = 0):
        ids, labels = data
        order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(epoch)).tolist() if shuffle \
            else list(range(len(ids)))
        for i in range(0, len(order), BATCH):
            yield collate_texts([(torch.tensor(ids[j]), labels[j]) for j in order[i:i + BATCH]])

    train_data, test_data = tokenized("train"), tokenized("test")

    def forward(x):
        mask = x[:, 1]
        states = encoder(input_ids=x[:, 0], attention_mask=mask).last_hidden_state
        w = mask.unsqueeze(-1).float()
        return head((states * w).sum(1) / w.sum(1).clamp(min=1))

    if strategy == "feature_extraction":
        encoder.requires_grad_(False)
    params = [p for p in list(encoder.parameters()) + list(head.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    per_epoch = -(-len(train_data[0]) // BATCH)
    schedule = get_linear_schedule_with_warmup(optimizer, round(warmup * per_epoch), epochs * per_epoch)
    started, steps, loop_seconds = time.perf_counter(), 0, 0.0
    for epoch in range(epochs):
        encoder.train(strategy != "feature_extraction")
        t = time.perf_counter()
        for x, y in batches(train_data, True, seed * 1000 + epoch):
            loss = nn.functional.cross_entropy(forward(x), y, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            steps += 1
        loop_seconds += time.perf_counter() - t
    encoder.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in batches(test_data, False):
            correct += int((forward(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total, time.perf_counter() - started, steps / loop_seconds


def project(strategy: str, lr: float | None, epochs: int, manifest_path: Path, seed: int) -> tuple[float, float, float]:
    """The project's run: returns (test accuracy, seconds, training steps per second over its epochs)."""
    data = {"data": {"source": str(DATA), "manifest": str(manifest_path)}, "freeze": {"strategy": strategy},
            "epochs": epochs, "batch_size": BATCH, "device": "cpu", "seed": seed, "augment": {"preset": "none"},
            "early_stopping": {"patience": 0}, "num_workers": 0}
    if lr is not None:
        data["optimizer"] = {"lr": lr}
        data["schedule"] = {"warmup_epochs": 0.5 if lr < 1e-3 else 0.0}
    config = RunConfig.from_dict(data)
    run_dir = Path(tempfile.mkdtemp(prefix="tl-bench-text-run-"))
    started = time.perf_counter()
    result = train(config, run_dir)
    accuracy = evaluate_run(run_dir).accuracy
    seconds = time.perf_counter() - started
    per_second = sum(h["images_per_s"] for h in result.history) / len(result.history) / BATCH
    return accuracy, seconds, per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=8, help="training texts per class (0: all of them)")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tl-bench-text-split-"))
    full_manifest = load_manifest(RunConfig.from_dict({"data": {"source": str(DATA), "split_seed": SEED}}).data)
    print(f"{args.per_class or 'all'} training texts per class, {args.seeds} seed(s), "
          f"{len(full_manifest.files('test'))} test texts")
    print("| setup | plain loop: test acc | seconds | tlcore: test acc | seconds | steps/s tlcore / plain |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (strategy, given, lr, warmup, epochs) in SETUPS.items():
        rows = []
        for seed in range(args.seeds):
            path = few_per_class(full_manifest, args.per_class, seed, folder)
            manifest = load_manifest(RunConfig.from_dict({"data": {"source": str(DATA), "manifest": str(path)}}).data)
            rows.append((*plain(strategy, lr, warmup, epochs, manifest, seed), *project(strategy, given, epochs,
                                                                                        path, seed)))
        p_acc, p_s, p_rate, t_acc, t_s, t_rate = (statistics.mean(column) for column in zip(*rows))
        spread = statistics.pstdev([r[3] for r in rows]) if len(rows) > 1 else 0.0
        print(f"| {name}: {epochs} epochs, lr {lr:g}, warm-up {warmup:g} | {p_acc:.3f} | {p_s:.0f} | "
              f"{t_acc:.3f} ± {spread:.3f} | {t_s:.0f} | {t_rate / p_rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
