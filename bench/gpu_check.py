"""GPU check: training speed on real JPEGs against the same model on synthetic data, measured in one call.

    python bench/gpu_check.py --data .gpu/hymenoptera --out $OUT [--previous .gpu/previous.jsonl]
                              [--budget-s 450] [--pictures 10000] [--batch 256]

Run by bench/gpu_check.sh on a GPU machine (see bench/README.md). For each model and mode
it measures a plain timm training loop on random tensors already on the GPU (the ceiling)
and tlcore's own path on real JPEGs (decoded-image cache -> uint8 batches -> augmentation
on the GPU -> tlcore's train_step), both in this process, and prints img/s and their
ratio. One more row gives the plain PyTorch input pipeline (PIL decode + torchvision
transforms in 16 loader workers every epoch) that the decoded cache replaces.

Each measurement is appended to <out>/gpu_check.jsonl when done; with --previous (that file
from an earlier call, carried back) the rows already measured are skipped, so a second call
finishes what a first one ran out of time for.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("resnet50", "efficientnet_b0", "vit_small_patch16_224")
MODES = ("fp32 eager", "bf16 + channels_last", "bf16 + channels_last + compile", "frozen backbone (bf16)")
WARMUP, TIMED = int(os.environ.get("GPU_CHECK_WARMUP", 6)), int(os.environ.get("GPU_CHECK_TIMED", 20))


def pictures(root: Path, count: int) -> tuple[list[tuple[str, int, str]], int, str]:
    """(path, label, content hash) of the data set's readable pictures repeated to `count`; unique count; root."""
    from tlcore.data import make_split, scan

    manifest = make_split(scan(root), seed=0)
    index = {c: i for i, c in enumerate(manifest.classes)}
    unique = [(str(Path(manifest.root) / i.path), index[i.label], i.sha256) for i in manifest.items]
    return [unique[i % len(unique)] for i in range(count)], len(unique), manifest.root


DEVICE = torch.device("cuda")


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def runtime_for(mode: str):
    from tlcore.core.runtime import Runtime

    fp32 = mode == "fp32 eager"
    return Runtime(device=DEVICE, autocast_dtype=None if fp32 else torch.bfloat16,
                   channels_last=not fp32, num_workers=min(16, os.cpu_count() or 1), pin_memory=True)


def make_model(name: str, mode: str, classes: int) -> tuple[nn.Module, nn.Module, list[nn.Parameter]]:
    """(model, what the step calls, trainable parameters) for one mode."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=classes).to(DEVICE)
    runtime = runtime_for(mode)
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    if mode.startswith("frozen"):  # only the classifier trains
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.get_classifier().parameters():
            p.requires_grad_(True)
    step_model = torch.compile(model) if "compile" in mode else model
    return model, step_model, [p for p in model.parameters() if p.requires_grad]


def optimiser(params: list[nn.Parameter]):
    opt = torch.optim.AdamW(params, lr=1e-4, fused=DEVICE.type == "cuda")
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def timed(step, batches, batch: int) -> float:
    """img/s over TIMED steps after WARMUP (compiling, loader start-up); synchronised at both ends."""
    for _ in range(WARMUP):
        step(*next(batches))
    sync()
    started = time.perf_counter()
    for _ in range(TIMED):
        step(*next(batches))
    sync()
    return TIMED * batch / (time.perf_counter() - started)


def synthetic_rate(name: str, mode: str, batch: int, classes: int, size: int) -> float:
    """The plain timm loop: random tensors on the GPU, cross-entropy, fused AdamW."""
    model, step_model, params = make_model(name, mode, classes)
    opt, _ = optimiser(params)
    runtime = runtime_for(mode)
    x = torch.randn(batch, 3, size, size, device=DEVICE)
    if runtime.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=DEVICE)
    model.train()

    def step(x, y):
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=runtime.autocast_dtype is not None):
            loss = nn.functional.cross_entropy(step_model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forever():
        while True:
            yield x, y

    return timed(step, forever(), batch)


def real_rate(name: str, mode: str, batch: int, classes: int, loader_factory) -> float:
    """tlcore's path: the decoded cache's uint8 batches, augmented on the GPU, through tlcore's train_step."""
    from tlcore.adaptation.adapt import AdaptConfig, make_objective
    from tlcore.training.train import train_step

    model, step_model, params = make_model(name, mode, classes)
    opt, scheduler = optimiser(params)
    runtime = runtime_for(mode)
    criterion = nn.CrossEntropyLoss()
    objective = make_objective(AdaptConfig(), criterion, model, set(), 0)
    model.train()

    def step(x, y):
        train_step(step_model, x, y, opt, scheduler, objective, runtime, params, 1.0)

    def forever():
        while True:
            loader = loader_factory()
            yield from iter(loader)

    return timed(step, forever(), batch)


def plain_jpeg_rate(batch: int, classes: int, items, size: int) -> float:
    """The plain PyTorch input pipeline: PIL decode and torchvision transforms in 16 workers, every epoch."""
    from PIL import Image
    from torchvision import transforms as T

    transform = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            path, label, _ = items[i]
            return transform(Image.open(path).convert("RGB")), label

    loader = torch.utils.data.DataLoader(Files(), batch_size=batch, shuffle=True, num_workers=min(16, os.cpu_count()),
                                         pin_memory=True, drop_last=True, persistent_workers=True)
    model, step_model, params = make_model(MODELS[0], "bf16 + channels_last", classes)
    opt, _ = optimiser(params)

    def step(x, y):
        x = x.to(DEVICE, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(step_model(x), y.to(DEVICE, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forever():
        while True:
            yield from iter(loader)

    return timed(step, forever(), batch)


def main() -> int:
    global DEVICE, MODELS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--previous", type=Path, help="gpu_check.jsonl of an earlier call: its rows are kept")
    parser.add_argument("--budget-s", type=float, default=450.0, help="start no new measurement after this")
    parser.add_argument("--pictures", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cuda", help="cpu: a smoke test of this script, not a measurement")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    DEVICE, MODELS = torch.device(args.device), tuple(args.models.split(","))
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "gpu_check.jsonl"
    done: dict[str, dict] = {}
    if args.previous and args.previous.exists():
        for line in args.previous.read_text().splitlines():
            row = json.loads(line)
            done[row["key"]] = row
    results_path.write_text("".join(json.dumps(r) + "\n" for r in done.values()))

    def record(key: str, **row) -> None:
        done[key] = {"key": key, **row}
        with results_path.open("a") as fh:
            fh.write(json.dumps(done[key]) + "\n")
        print(json.dumps(done[key]), flush=True)

    def time_left() -> bool:
        return time.monotonic() - started < args.budget_s

    from types import SimpleNamespace

    from tlcore.inputs.augment import preset
    from tlcore.inputs.decoded import DecodedCache
    from tlcore.inputs.device_augment import DeviceAugment, device_spec
    from tlcore.inputs.loader import DecodedDataset, EpochLoader

    items, unique, root = pictures(args.data, args.pictures)
    classes = max(label for _, label, _ in items) + 1
    prep = SimpleNamespace(input_size=(3, args.size, args.size), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                           interpolation="bicubic", crop_pct=0.875)
    cache = DecodedCache(root, prep)
    t = time.perf_counter()
    cache.build([(p, h) for p, _, h in items])
    print(f"decoded-image cache: {unique} unique pictures ({len(items)} with repeats) in {time.perf_counter() - t:.1f} s",
          flush=True)
    decoded = cache.array([h for _, _, h in items])
    steps = device_spec(preset("light"))[0]
    epoch = [0]

    def loader_factory():
        dataset = DecodedDataset([(p, label) for p, label, _ in items], decoded)
        loader = EpochLoader(dataset, batch_size=args.batch, num_workers=min(16, os.cpu_count() or 1), pin_memory=True,
                             on_device=DeviceAugment(steps, prep, DEVICE), device=DEVICE)
        loader.start_epoch(epoch[0])
        epoch[0] += 1
        return loader

    print(f"{torch.cuda.get_device_name() if DEVICE.type == 'cuda' else 'CPU'}, torch {torch.__version__}, batch {args.batch}, {args.size} px", flush=True)
    for name in MODELS:
        for mode in MODES:
            for source in ("synthetic", "real"):
                key = f"{name}|{mode}|{source}"
                if key in done or not time_left():
                    continue
                if DEVICE.type == "cuda":
                    torch.cuda.empty_cache()
                try:
                    rate = (synthetic_rate(name, mode, args.batch, classes, args.size) if source == "synthetic"
                            else real_rate(name, mode, args.batch, classes, loader_factory))
                    record(key, model=name, mode=mode, source=source, img_s=round(rate, 1))
                except Exception as exc:  # noqa: BLE001 - one failed row must not cost the others
                    record(key, model=name, mode=mode, source=source, error=f"{type(exc).__name__}: {exc}"[:300])
    key = f"{MODELS[0]}|bf16 + channels_last|plain JPEG loader"
    if key not in done and time_left():
        try:
            record(key, model=MODELS[0], mode="bf16 + channels_last", source="plain JPEG loader",
                   img_s=round(plain_jpeg_rate(args.batch, classes, items, args.size), 1))
        except Exception as exc:  # noqa: BLE001
            record(key, model=MODELS[0], mode="bf16 + channels_last", source="plain JPEG loader",
                   error=f"{type(exc).__name__}: {exc}"[:300])
    table = print_table(done)
    (args.out / "gpu_check.md").write_text(table)
    missing = [f"{n}|{m}|{s}" for n in MODELS for m in MODES for s in ("synthetic", "real")
               if f"{n}|{m}|{s}" not in done]
    if missing:
        print(f"{len(missing)} measurement(s) not done in this call's budget: run it again with --previous")
    return 0


def print_table(done: dict[str, dict]) -> str:
    lines = ["| model | mode | synthetic img/s | real JPEGs img/s | real / synthetic |", "| --- | --- | --- | --- | --- |"]
    for name in MODELS:
        for mode in MODES:
            synthetic, real = done.get(f"{name}|{mode}|synthetic", {}), done.get(f"{name}|{mode}|real", {})
            s, r = synthetic.get("img_s"), real.get("img_s")
            ratio = f"{r / s:.2f}" if s and r else "-"
            show = (lambda row, v: f"{v:,.0f}" if v else ("error" if row.get("error") else "not measured"))
            lines.append(f"| {name} | {mode} | {show(synthetic, s)} | {show(real, r)} | {ratio} |")
    plain = done.get(f"{MODELS[0]}|bf16 + channels_last|plain JPEG loader", {})
    if plain.get("img_s"):
        lines.append(f"| {MODELS[0]} | bf16 + channels_last, plain PIL + torchvision loader (16 workers) | - | "
                     f"{plain['img_s']:,.0f} | - |")
    table = "\n".join(lines) + "\n"
    print(table, flush=True)
    return table


if __name__ == "__main__":
    sys.exit(main())
