"""One run on two processes with torchrun (gloo, CPU): the same steps as one process on the same global batch."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tlcore.config import RunConfig
from tlcore.core.collectives import RankBatches, rank_share
from tlcore.inputs.loader import EpochOrder
from tlcore.running.worker import run_to_end
from conftest import ROOT
from train_fixtures import make_colour_classes, tiny_config

TICKETS = ROOT / "sample_data" / "support_tickets.csv"


def test_each_global_batch_is_shared_between_ranks_and_an_empty_share_is_padding_of_weight_0() -> None:
    order = EpochOrder(24)
    order.shuffle(3)
    ranks = [RankBatches(order, 23, rank, 2) for rank in range(2)]
    batches = [list(r) for r in ranks]
    assert batches[0][0] + batches[1][0] == order.order[:23]  # the first global batch, split in two
    assert batches[0][1] == [order.order[23]] and batches[1][1] == [order.order[23]]  # 1 picture, 2 ranks
    assert ranks[0].weights() == [11 / 23, 0.0] and ranks[1].weights() == [12 / 23, 1.0]  # rank 0 pads: weight 0
    assert rank_share(list(range(10)), 2, 3) == [6, 7, 8, 9]


def _config(colours: Path, nproc: int, **more) -> RunConfig:
    config = tiny_config(colours, epochs=2, batch_size=23, model={"name": "test_vit", "weights": "random"},
                         freeze={"strategy": "gradual", "every": 1},
                         optimizer={"name": "sgd", "lr": 0.05, "grad_clip": 1.0}, **more).to_dict()
    return RunConfig.from_dict({**config, "distributed": {"nproc_per_node": nproc}})


@pytest.mark.slow("two torchrun processes")
def test_torchrun_on_two_processes_ends_with_the_weights_of_one_process(tl_home: Path, tmp_path: Path) -> None:
    """SGD, gradual unfreezing, a last global batch of one picture (one rank pads): equal within float error.
    AdamW drifts further (about 1e-3 after two epochs here): it divides by the root of tiny second moments,
    where float summation order differs, so the exact check is made with SGD."""
    colours = make_colour_classes(tmp_path / "colours")
    events = {"one": [], "two": []}
    for name, nproc in (("one", 1), ("two", 2)):
        status, error, evaluation = run_to_end(_config(colours, nproc), tmp_path / name, events[name].append,
                                               lambda: False)
        assert status == "succeeded", error
    one, two = load_file(str(tmp_path / "one" / "last.safetensors")), load_file(str(tmp_path / "two" / "last.safetensors"))
    assert one.keys() == two.keys()
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst < 1e-5, worst
    history = [json.loads((tmp_path / n / "history.json").read_text()) for n in ("one", "two")]
    assert [round(h["val_loss"], 5) for h in history[0]] == [round(h["val_loss"], 5) for h in history[1]]
    assert [round(h["train_loss"], 5) for h in history[0]] == [round(h["train_loss"], 5) for h in history[1]]
    kinds = [e.kind for e in events["two"]]
    assert kinds.count("epoch") == 2 and kinds.count("stage") == 2  # rank 0 alone reports, the stages agree
    assert any("torchrun with 2 processes" in e.message for e in events["two"])


@pytest.mark.slow("two torchrun processes, a text encoder in each")
def test_a_text_run_on_two_torchrun_processes_learns_as_one_process(tl_home: Path, tmp_path: Path) -> None:
    """Texts take the same torchrun path: each rank tokenizes and pads its share of each global batch. Head only
    (frozen layers run without dropout, so the ranks draw nothing the single process would not)."""
    config = RunConfig.from_dict({"data": {"source": str(TICKETS), "split_seed": 0}, "augment": {"preset": "none"},
                                  "epochs": 2, "batch_size": 23, "device": "cpu", "num_workers": 0,
                                  "freeze": {"strategy": "feature_extraction"}, "optimizer": {"name": "sgd", "lr": 0.05}})
    events = {"one": [], "two": []}
    for name, nproc in (("one", 1), ("two", 2)):
        spread = RunConfig.from_dict({**config.to_dict(), "distributed": {"nproc_per_node": nproc}})
        status, error, evaluation = run_to_end(spread, tmp_path / name, events[name].append, lambda: False)
        assert status == "succeeded", error
        assert evaluation.n == 36 and evaluation.accuracy > 0.6  # 4 classes: chance is 0.25
    one, two = load_file(str(tmp_path / "one" / "last.safetensors")), load_file(str(tmp_path / "two" / "last.safetensors"))
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5
    history = [json.loads((tmp_path / n / "history.json").read_text()) for n in ("one", "two")]
    assert [round(h["train_loss"], 5) for h in history[0]] == [round(h["train_loss"], 5) for h in history[1]]
    said = " ".join(e.message for e in events["two"])
    assert "torchrun with 2 processes" in said and "168 train / 36 val texts" in said and "images" not in said


@pytest.mark.slow("two torchrun processes")
def test_a_distributed_run_is_cancelled_on_every_rank_and_sync_bn_on_cpu_is_refused(tl_home: Path,
                                                                                    tmp_path: Path) -> None:
    colours = make_colour_classes(tmp_path / "colours")
    config = RunConfig.from_dict({**_config(colours, 2).to_dict(), "epochs": 400})
    seen = []
    started = time.monotonic()
    status, error, _ = run_to_end(config, tmp_path / "long", seen.append,
                                  lambda: any(e.kind == "epoch" for e in seen))
    assert status == "cancelled" and "cancelled" in error and time.monotonic() - started < 120
    assert (tmp_path / "long" / "last_state.pt").is_file()  # the last complete epoch is kept for resume
    bn = RunConfig.from_dict({**_config(colours, 2).to_dict(), "distributed": {"nproc_per_node": 2, "sync_bn": True}})
    status, error, _ = run_to_end(bn, tmp_path / "bn", lambda e: None, lambda: False)
    assert status == "failed" and "sync_bn needs CUDA GPUs" in error


@pytest.mark.slow("two torchrun processes")
def test_cli_train_nproc(tl_home: Path, tmp_path: Path, capsys) -> None:
    from tlcore.cli import main

    path = tmp_path / "run.json"
    path.write_text(_config(make_colour_classes(tmp_path / "colours"), 1).to_json())
    assert main(["train", str(path), "--nproc", "2"]) == 0
    out = capsys.readouterr().out
    assert "torchrun with 2 processes" in out and ": succeeded" in out
    run_folder = next((tl_home / "runs").glob("2*"))  # `evaluate` takes a run folder too (multi-node torchrun)
    assert main(["evaluate", str(run_folder)]) == 0 and f"run {run_folder.name} on 12 held-out" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", str(path), "--nproc", "two"])
