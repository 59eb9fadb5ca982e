"""Text classification against a plain PyTorch + transformers loop, on the same split of the bundled tickets.

Two setups, each run by the project (`tlcore.train.train` + `evaluate_run`, as `python -m tlcore train` does)
and by a plain loop written here (AutoModel + mean pooling + nn.Linear, AdamW, the same batches' size, the same
epochs, the same tokenizer length): head only (frozen encoder) and full fine-tuning. The table gives test
accuracy and seconds side by side, and training steps per second (project / plain).

Usage: `.venv/bin/python bench/text_reference.py` (CPU, a few minutes).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFERLAB_HOME", tempfile.mkdtemp(prefix="tl-bench-text-"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from tlcore.config import RunConfig  # noqa: E402
from tlcore.data import load_manifest  # noqa: E402
from tlcore.evaluate import evaluate_run  # noqa: E402
from tlcore.text.loader import collate_texts, texts_of  # noqa: E402
from tlcore.text.model import load_tokenizer, model_folder  # noqa: E402
from tlcore.train import train  # noqa: E402

DATA = ROOT / "sample_data" / "support_tickets.csv"
SETUPS = {"head only": ("feature_extraction", 3e-3, 3), "full fine-tuning": ("full", 1e-4, 2)}
BATCH, LENGTH, SEED = 16, 128, 0


def plain(strategy: str, lr: float, epochs: int, manifest) -> tuple[float, float, float]:
    """A plain loop: returns (test accuracy, seconds, training steps per second)."""
    from transformers import AutoModel

    folder = model_folder("all-MiniLM-L6-v2")
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(SEED)
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
    started, steps, loop_seconds = time.perf_counter(), 0, 0.0
    for epoch in range(epochs):
        encoder.train(strategy != "feature_extraction")
        t = time.perf_counter()
        for x, y in batches(train_data, True, epoch):
            loss = nn.functional.cross_entropy(forward(x), y, label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        loop_seconds += time.perf_counter() - t
    encoder.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in batches(test_data, False):
            correct += int((forward(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total, time.perf_counter() - started, steps / loop_seconds


def project(strategy: str, lr: float, epochs: int) -> tuple[float, float, float]:
    """The project's run: returns (test accuracy, seconds, training steps per second over its epochs)."""
    config = RunConfig.from_dict({"data": {"source": str(DATA), "split_seed": SEED}, "freeze": {"strategy": strategy},
                                  "optimizer": {"lr": lr}, "epochs": epochs, "batch_size": BATCH, "device": "cpu",
                                  "augment": {"preset": "none"}, "schedule": {"name": "constant"},
                                  "early_stopping": {"patience": 0}, "num_workers": 0})
    run_dir = Path(tempfile.mkdtemp(prefix="tl-bench-text-run-"))
    started = time.perf_counter()
    result = train(config, run_dir)
    accuracy = evaluate_run(run_dir).accuracy
    seconds = time.perf_counter() - started
    per_second = sum(h["images_per_s"] for h in result.history) / len(result.history) / BATCH
    return accuracy, seconds, per_second


def main() -> None:
    manifest = load_manifest(RunConfig.from_dict({"data": {"source": str(DATA), "split_seed": SEED}}).data)
    print("| setup | plain loop: test acc | seconds | tlcore: test acc | seconds | steps/s tlcore / plain |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (strategy, lr, epochs) in SETUPS.items():
        p_acc, p_s, p_rate = plain(strategy, lr, epochs, manifest)
        t_acc, t_s, t_rate = project(strategy, lr, epochs)
        print(f"| {name}, {epochs} epochs, lr {lr:g} | {p_acc:.3f} | {p_s:.0f} | {t_acc:.3f} | {t_s:.0f} | "
              f"{t_rate / p_rate:.2f} |")


if __name__ == "__main__":
    main()
