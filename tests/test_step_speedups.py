"""The GPU step's options, proven on the CPU: torch.compile (and its fallback) and the batch-size search."""

from __future__ import annotations

import json
import shutil

import pytest

import tlcore.training.parts.torch_compile as compile_part
from tlcore.inputs.batch_size import batch_limit, keeping_buffers, largest_batch, scaled_lr
from tlcore.errors import TransferLabError
from tlcore.training.train import AUTO_BATCH, prepare, train
from train_fixtures import make_colour_classes, tiny_config

GiB = 2**30


def _losses(result) -> list[float]:
    return [h["train_loss"] for h in result.history] + [h["val_loss"] for h in result.history]


@pytest.fixture()
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path / "home"))
    return make_colour_classes(tmp_path / "data", per_class=8)


def test_a_compiled_run_gives_the_eager_losses(source, tmp_path, monkeypatch):
    # aot_eager: dynamo's graph capture and AOT autograd, as inductor gets them, without minutes of C++ builds here
    monkeypatch.setattr(compile_part, "COMPILE_BACKEND", "aot_eager")
    eager = train(tiny_config(source, epochs=2), tmp_path / "eager")
    events: list = []
    compiled = train(tiny_config(source, epochs=2, compile=True), tmp_path / "compiled", sink=events.append)
    assert _losses(compiled) == pytest.approx(_losses(eager), rel=1e-4, abs=1e-5)
    assert any("compiled with torch.compile (aot_eager)" in e.message for e in events)
    assert not [e for e in events if e.kind == "warning"]


@pytest.mark.slow("inductor builds C++ kernels for about 90 s on 2 cores; bench/gpu_check.sh runs it on a GPU")
@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="inductor needs a C compiler (gcc or cc)")
def test_an_inductor_compiled_run_gives_the_eager_losses(source, tmp_path):
    eager = train(tiny_config(source, epochs=2), tmp_path / "eager")
    events: list = []
    compiled = train(tiny_config(source, epochs=2, compile=True), tmp_path / "compiled", sink=events.append)
    assert not [e.message for e in events if e.kind == "warning"]  # compiled for real, not fallen back to eager
    # fused kernels sum in another order: the first epoch agrees to 1e-4, later ones drift (1.5e-3 seen here)
    assert compiled.history[0]["train_loss"] == pytest.approx(eager.history[0]["train_loss"], rel=1e-4)
    assert _losses(compiled) == pytest.approx(_losses(eager), rel=1e-2)


def test_a_model_that_fails_to_compile_trains_on_without_it_and_says_so(source, tmp_path, monkeypatch):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    monkeypatch.setattr(compile_part, "COMPILE_BACKEND", broken_backend)
    eager = train(tiny_config(source, epochs=2), tmp_path / "eager")
    events: list = []
    fallen_back = train(tiny_config(source, epochs=2, compile=True), tmp_path / "compiled", sink=events.append)
    assert _losses(fallen_back) == _losses(eager)
    warnings = [e.message for e in events if e.kind == "warning"]
    assert len(warnings) == 1 and "torch.compile failed" in warnings[0] and "no C++ compiler" in warnings[0]


class Device:
    """A memory-limit stub standing for a GPU: a step of `batch` takes fixed + batch x per bytes, and past the
    capacity it raises the out-of-memory error, as CUDA does."""

    class OutOfMemory(RuntimeError):
        pass

    def __init__(self, capacity: float, fixed: float, per: float) -> None:
        self.capacity, self.fixed, self.per, self.tried = capacity, fixed, per, []

    def trial(self, batch: int) -> int:
        self.tried.append(batch)
        peak = self.fixed + batch * self.per
        if peak > self.capacity:
            raise self.OutOfMemory(f"CUDA out of memory trying {batch}")
        return int(peak)

    def search(self, limit: int = 1024) -> int:
        return largest_batch(self.trial, int(self.capacity), limit=limit, oom=(self.OutOfMemory,))


def test_the_search_doubles_until_the_device_runs_out_of_memory():
    device = Device(capacity=10 * GiB, fixed=1 * GiB, per=60 * 2**20)  # 128: 8.5 GiB; 256: 16 GiB, out of memory
    assert device.search() == 128
    assert device.tried == [16, 32, 64, 128, 256]


def test_a_batch_that_fits_but_passes_90_percent_of_memory_is_not_taken():
    device = Device(capacity=17.5 * GiB, fixed=0, per=1 * GiB)  # 16 fits (16 GiB) but is over 90% (15.75 GiB)
    assert device.search() == 8
    assert device.tried == [16, 8]


def test_the_search_goes_down_to_one_and_says_when_nothing_fits():
    assert Device(capacity=3.5 * GiB, fixed=0, per=1 * GiB).search() == 2
    with pytest.raises(TransferLabError, match="not even a batch of 1 picture fits"):
        Device(capacity=1 * GiB, fixed=1 * GiB, per=1).search()


def test_the_search_stops_at_the_training_set_and_raises_other_errors():
    assert Device(capacity=100 * GiB, fixed=0, per=1).search(limit=40) == 32
    assert (batch_limit(240), batch_limit(8_000), batch_limit(100_000), batch_limit(3)) == (30, 1000, 1024, 1)
    assert Device(capacity=100 * GiB, fixed=0, per=1).search(limit=batch_limit(240)) == 16  # 8 steps an epoch

    def broken(batch: int) -> int:
        raise ValueError("a real bug, not memory")

    with pytest.raises(ValueError, match="a real bug"):
        largest_batch(broken, GiB, oom=(Device.OutOfMemory,))


def test_the_learning_rate_follows_the_documented_scaling_rule():
    assert scaled_lr(1e-3, "adamw", 128) == pytest.approx(2e-3)  # square root of 4
    assert scaled_lr(1e-3, "sgd", 128) == pytest.approx(4e-3)  # linear
    assert scaled_lr(1e-3, "adamw", 8) == pytest.approx(5e-4)


def test_auto_batch_on_the_cpu_uses_the_default_and_a_resumed_run_keeps_what_it_found(source, tmp_path):
    events: list = []
    result = train(tiny_config(source, epochs=1, batch_size="auto"), tmp_path / "run", sink=events.append)
    assert result.epochs_done == 1
    assert json.loads((tmp_path / "run" / AUTO_BATCH).read_text()) == {"batch_size": 32, "lr": 0.01}
    assert json.loads((tmp_path / "run" / "config.json").read_text())["batch_size"] == 32
    assert any("batch size auto: 32" in e.message for e in events)
    (tmp_path / "run" / AUTO_BATCH).write_text(json.dumps({"batch_size": 4, "lr": 0.005}))  # as a GPU had found
    prep = prepare(tiny_config(source, batch_size="auto"), tmp_path / "run")
    assert (prep.config.batch_size, prep.config.optimizer.lr) == (4, 0.005)


def test_the_search_leaves_batchnorm_statistics_as_they_were():
    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(2, 3, 8, 8))
    before = {name: b.clone() for name, b in model.named_buffers()}

    def trial(batch: int) -> int:  # a real training-mode forward, as the GPU trial makes
        model.train()
        model(torch.randn(batch, 3, 8, 8) * 5 + 3).sum().backward()
        return batch * GiB

    with keeping_buffers(model):
        assert largest_batch(trial, 100 * GiB, limit=64) == 64
        assert not torch.equal(model[1].running_mean, before["1.running_mean"])  # the trials did move them
    for name, b in model.named_buffers():
        assert torch.equal(b, before[name]), name
