"""The project's training step against a plain timm/PyTorch loop: same model, batch, precision, same tensors.

    python bench/train_throughput.py [--model tf_efficientnet_lite0] [--batch 32] [--size 224] [--steps 12]

Both loops get identical pre-made batches (no data loading), so the table isolates
the step: the project's (optimizer groups per layer group with lr scales, decay split,
gradient clipping, LR schedule, bf16 autocast and channels_last on CUDA) against the
textbook `loss.backward(); optimizer.step()`, in the same memory format (channels_last on CPU and
CUDA) and precision. Rows for head-only and full fine-tuning;
on CPU always, on CUDA too where a GPU is present.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tlcore.adaptation.adapt import Objective  # noqa: E402
from tlcore.config import RunConfig  # noqa: E402
from tlcore.spec.freeze import apply_plan, make_plan, set_train_mode  # noqa: E402
from tlcore.models import ModelSpec, build_model  # noqa: E402
from tlcore.core.runtime import select_runtime  # noqa: E402
from tlcore.core.schedules import lr_multiplier  # noqa: E402
from tlcore.training.train import make_optimizer, train_step  # noqa: E402


def batches(n: int, batch: int, size: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(batch, 3, size, size, generator=g).to(device), torch.randint(0, 4, (batch,), generator=g).to(device))
            for _ in range(n)]


def timed(step, data, warmup: int = 2) -> float:
    for x, y in data[:warmup]:
        step(x, y)
    device = data[0][0].device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for x, y in data[warmup:]:
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return sum(len(y) for _, y in data[warmup:]) / (time.perf_counter() - start)


def project(spec: ModelSpec, strategy: str, device: str, data) -> float:
    runtime = select_runtime(device, "auto", 0)
    built = build_model(spec, 4, input_size=tuple(data[0][0].shape[1:]))
    model = built.model.to(runtime.device)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    plan = make_plan(strategy, len(built.groups), lr_spread=10 if strategy == "full" else 1)
    config = RunConfig(model=spec)
    optimizer = make_optimizer(model, built.groups, plan, config, runtime)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier("cosine", 1000, 100))
    apply_plan(model, built.groups, plan, 0)
    set_train_mode(model, built.groups, plan, 0)
    params = [p for p in model.parameters() if p.requires_grad]
    objective = Objective(nn.CrossEntropyLoss(label_smoothing=0.1))  # the step's loss, as a run without adaptation has it
    return timed(lambda x, y: train_step(model, x, y, optimizer, scheduler, objective, runtime, params, 1.0), data)


def plain(spec: ModelSpec, strategy: str, device: str, data) -> float:
    """The textbook loop with the same precision choice (bf16 autocast + channels_last on CUDA)."""
    runtime = select_runtime(device, "auto", 0)
    model = build_model(spec, 4, input_size=tuple(data[0][0].shape[1:])).model.to(runtime.device)
    cuda = runtime.device.type == "cuda"
    if runtime.channels_last:  # same memory format as the project, so the ratio is the step's own overhead
        model.to(memory_format=torch.channels_last)
    head = model.get_classifier()
    if strategy == "feature_extraction":
        for p in model.parameters():
            p.requires_grad = False
        for p in head.parameters():
            p.requires_grad = True
        model.eval()
        head.train()
    else:
        model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, fused=cuda)
    criterion = nn.CrossEntropyLoss()

    def step(x, y):
        if runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(runtime.device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed(step, data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tf_efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=2, help="alternate the two loops this many times, keep the best")
    args = parser.parse_args()
    spec = ModelSpec(name=args.model, weights="random")  # speed does not depend on the weights' values
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{args.model}, batch {args.batch}, {args.size} px, {args.steps} timed steps, best of {args.repeat}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"{'device':<7} {'strategy':<19} {'plain img/s':>11} {'project img/s':>13} {'ratio':>6}")
    for device in devices:
        data = batches(args.steps + 2, args.batch, args.size, torch.device(device))
        for strategy in ("feature_extraction", "full"):
            p_best = t_best = 0.0
            for _ in range(args.repeat):  # alternate, so drift on a shared machine hits both
                p_best = max(p_best, plain(spec, strategy, device, data))
                t_best = max(t_best, project(spec, strategy, device, data))
            print(f"{device:<7} {strategy:<19} {p_best:>11.1f} {t_best:>13.1f} {t_best / p_best:>6.2f}")


if __name__ == "__main__":
    main()
