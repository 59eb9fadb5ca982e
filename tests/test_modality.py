"""One modality interface (issue 35): a third kind of data, defined only here, trains, evaluates, predicts, exports
and compares through the public API, and nothing in tlcore asks which kind of data a run has."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import ROOT, tlcore_in_process
from tlcore import modality as modalities
from tlcore.results.artifacts import load_export
from tlcore.experiments.compare import launch_sweep, sweep_rows, verdict
from tlcore.config import RunConfig
from tlcore.data.split import file_of
from tlcore.errors import TransferLabError
from tlcore.results.evaluate import evaluate_run
from tlcore.results.export import export_run
from tlcore.modality import Modality
from tlcore.models import BuiltModel, ModelSpec, Preprocessing
from tlcore.models.groups import LayerGroup
from tlcore.models.weights import WeightsSource
from tlcore.results.predict import classify
from tlcore.runs import RunStore
from tlcore.training.train import train
from tlcore.running.worker import run_worker

WIDTH = 8


@dataclass(frozen=True)
class VectorRecord:
    path: str
    label: str
    sha256: str
    split: str | None = None


@dataclass
class VectorReport:
    root: str
    source: str
    classes: list[str]
    images: list[VectorRecord]
    layout: str = "vectors"
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    leakage: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return f"{len(self.classes)} classes, {len(self.images)} vectors"

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps({"classes": self.classes, "n": len(self.images)}, indent=indent)


class TwoLayer(nn.Module):
    """A two-layer network with timm's three methods, so the feature-cache fast path applies to it as is."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(WIDTH, 16)
        self.head = nn.Linear(16, classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.hidden(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class VectorData(torch.utils.data.Dataset):
    def __init__(self, items: list[tuple[Path, int]]) -> None:
        self.items = items
        tables: dict[Path, list[dict]] = {}
        self.x = []
        for path, _ in items:
            table = Path(file_of(str(path)))
            rows = tables.setdefault(table, _rows(table))
            self.x.append(torch.tensor(rows[int(str(path).rsplit("#", 1)[1]) - 1]["x"], dtype=torch.float32))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.x[index], self.items[index][1]


class Vectors(Modality):
    """Fixed-length numeric vectors, one JSON object per line of a `.vec` file: {"x": [8 numbers], "label": ...}."""

    key = export_key = "vectors"
    items_word, item_word = "vectors", "vector"
    default_model = "toy-mlp"

    def owns_data(self, source: str) -> bool:
        return str(source).endswith(".vec")

    def owns_model(self, name: str) -> bool:
        return name == "toy-mlp"

    def read(self, source: str, data=None, **options):
        path = Path(source)
        if not path.is_file():
            raise TransferLabError(f"no such vector file: {source}", "check the path")
        records = [VectorRecord(f"{path.name}#{i + 1}", row["label"],
                                hashlib.sha256(json.dumps(row["x"]).encode()).hexdigest())
                   for i, row in enumerate(_rows(path))]
        return VectorReport(str(path.parent), str(path), sorted({r.label for r in records}), records)

    def build(self, spec: ModelSpec, num_classes: int, *, input_size=None, seed: int = 0) -> BuiltModel:
        torch.manual_seed(seed)
        model = TwoLayer(num_classes or 2)
        groups = [LayerGroup(i, name, role, (f"{name}.weight", f"{name}.bias"),
                             sum(p.numel() for p in getattr(model, name).parameters()), None)
                  for i, (name, role) in enumerate((("hidden", "stem"), ("head", "head")))]
        return BuiltModel(model, "toy-mlp", "", num_classes or 2, WeightsSource("random", "", "random initialisation"),
                          Preprocessing((WIDTH, 1, 1), (0.0,) * 3, (1.0,) * 3, "none", 1.0), groups,
                          modality=self.key)

    def example_input(self, built, n: int = 2) -> torch.Tensor:
        return torch.randn(n, WIDTH, generator=torch.Generator().manual_seed(0))

    def dataset(self, built, items, *, root, source, config, training):
        return VectorData(items), None

    def items_to_predict(self, given: str):
        return [(f"row {i + 1}", row["x"]) for i, row in enumerate(_rows(Path(given)))]

    def probabilities(self, built, items, batch_size: int = 32) -> torch.Tensor:
        with torch.inference_mode():
            return built.model.eval()(torch.tensor(items, dtype=torch.float32)).softmax(1)


@pytest.fixture
def vectors(tmp_path: Path):
    """The kind registered for the test only, and a data file of it: two classes told apart by the sign of x[0]."""
    kind = modalities.register(Vectors())
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i in range(60):
        x = torch.randn(WIDTH, generator=generator)
        x[0] = abs(x[0]) + 0.5 if i % 2 else -abs(x[0]) - 0.5
        rows.append({"x": [round(v, 4) for v in x.tolist()], "label": "up" if i % 2 else "down"})
    source = tmp_path / "points.vec"
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    yield kind, source
    modalities.unregister(kind.key)


def _config(source: Path, strategy: str = "full", **more) -> RunConfig:
    return RunConfig.from_dict({
        "data": {"source": str(source), "split_seed": 0, "val": 0.25, "test": 0.25},
        "model": {"name": "toy-mlp", "weights": "random"}, "freeze": {"strategy": strategy},
        "optimizer": {"name": "adamw", "lr": 0.05, "weight_decay": 0.0}, "schedule": {"name": "constant"},
        "early_stopping": {"patience": 0}, "epochs": 6, "batch_size": 8, "device": "cpu", "num_workers": 0, **more})


def test_a_third_modality_trains_evaluates_predicts_and_exports(vectors, tmp_path: Path) -> None:
    kind, source = vectors
    assert modalities.for_data(source) is kind and modalities.for_model("toy-mlp") is kind
    assert modalities.for_data(tmp_path) is modalities.PICTURES  # the others are untouched
    logs: list[str] = []
    run_dir = tmp_path / "run"
    result = train(_config(source), run_dir, sink=lambda e: logs.append(e.message))
    assert result.best_epoch >= 1
    assert any("train / " in line and " val vectors" in line for line in logs), logs  # its own words
    evaluation = evaluate_run(run_dir)
    assert evaluation.n == 16 and evaluation.accuracy >= 0.8  # the sign of x[0] is learnt

    given = tmp_path / "new.vec"
    given.write_text('{"x": [3, 0, 0, 0, 0, 0, 0, 0]}\n{"x": [-3, 0, 0, 0, 0, 0, 0, 0]}\n')
    found = classify(run_dir, str(given))
    assert [top[0][0] for _, top in found] == ["up", "down"]

    report = export_run(run_dir, tmp_path / "export")
    assert {"model.safetensors", "model.onnx", "model.torchscript.pt", "MODEL_CARD.md"} <= set(report.files)
    assert all(diff < 1e-4 for diff in report.max_abs_diff.values())
    exported = load_export(tmp_path / "export")
    assert exported.built.modality == "vectors"
    assert [top[0][0] for _, top in classify(tmp_path / "export", str(given))] == ["up", "down"]
    card = (tmp_path / "export" / "MODEL_CARD.md").read_text()
    assert "held-out test set (16 vectors)" in card.lower() and "picture" not in card.lower()

    cli = tlcore_in_process("predict", str(tmp_path / "export"), str(given))
    assert cli.returncode == 0 and "row 1: up" in cli.stdout and "row 2: down" in cli.stdout, cli


def test_a_third_modality_takes_the_fast_path_and_reuses_its_features(vectors, tmp_path: Path) -> None:
    """Head only: the features are computed once, keyed by content; the next run on the same split reads them."""
    kind, source = vectors
    first, second = [], []
    train(_config(source, "feature_extraction"), tmp_path / "a", sink=lambda e: first.append(e.message))
    again = _config(source, "feature_extraction", optimizer={"name": "sgd", "lr": 0.1, "weight_decay": 0.0})
    train(again, tmp_path / "b", sink=lambda e: second.append(e.message))  # another seed: other random weights
    fast = [line for line in first if line.startswith("feature extraction fast path")]
    assert fast and "training vectors computed once" in fast[0], first
    assert any("read from the cache" in line for line in second if line.startswith("feature extraction")), second


def test_a_third_modality_compares_strategies(vectors, tmp_path: Path) -> None:
    kind, source = vectors
    store = RunStore()
    sweep = launch_sweep(_config(source, epochs=3), ("feature_extraction", "full"), store=store, start=False)
    assert run_worker(store) == 2
    rows = sweep_rows(store, sweep)
    assert [r.status for r in rows] == ["succeeded", "succeeded"] and {r.items for r in rows} == {"vectors"}
    words = verdict(rows)
    assert "picture" not in words and words


def test_a_model_of_one_kind_is_refused_for_data_of_another(vectors, tmp_path: Path) -> None:
    from tlcore.training.preflight import model_for_the_data

    kind, source = vectors
    config = _config(source)
    folder = tmp_path / "pictures"
    folder.mkdir()
    with pytest.raises(TransferLabError, match="holds pictures, and toy-mlp is a model for vectors"):
        model_for_the_data(RunConfig.from_dict({**config.to_dict(), "data": {"source": str(folder)}}))
    defaulted, note = model_for_the_data(RunConfig.from_dict({**config.to_dict(), "model": {"name": RunConfig().model.name}}))
    assert defaulted.model.name == "toy-mlp" and "the default vector model" in note


# ---- nothing in tlcore asks which kind of data a run has ----

KIND_MODULES = ("tlcore/modality/", "tlcore/text/", "tlcore/results/text_predict.py")  # where a kind's own code lives
KIND_NAMES = {"is_text_model", "is_text_source", "text_run", "texts_chosen"}
KIND_WORDS = {"text", "texts", "image", "images", "picture", "pictures"}


def _asks_the_kind(test: ast.expr) -> bool:
    for node in ast.walk(test):
        if isinstance(node, ast.Name) and node.id in KIND_NAMES:
            return True
        if isinstance(node, ast.Attribute) and (node.attr in KIND_NAMES or node.attr == "text"):
            return True
        if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value in KIND_WORDS
                                                 for c in [node.left, *node.comparators]):
            return True
    return False


def kind_branches(root: Path = ROOT / "tlcore") -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        if where.startswith(KIND_MODULES):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            tests = [node.test] if isinstance(node, (ast.If, ast.IfExp, ast.While)) else []
            tests += [v for v in node.values] if isinstance(node, ast.BoolOp) else []
            found += [f"{where}:{node.lineno}" for t in tests if _asks_the_kind(t)]
    return sorted(set(found))


def test_no_branch_on_the_kind_of_data_outside_the_modality_modules() -> None:
    assert kind_branches() == []


def test_the_branch_finder_finds_a_branch_on_the_kind(tmp_path: Path) -> None:
    """The check above can fail: a module that asks "is this text?" is found."""
    module = tmp_path / "tlcore" / "engine.py"
    module.parent.mkdir()
    module.write_text("def f(built, name):\n    if built.text:\n        return 1\n"
                      "    return 2 if is_text_model(name) else 3\n\ndef g(m):\n    return m.modality == 'texts'\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert kind_branches(tmp_path / "tlcore") == ["tlcore/engine.py:2", "tlcore/engine.py:4"]
    finally:
        ROOT = saved


# ---- the feature cache, shared by every kind (review of issue 35) ----

def test_text_features_are_keyed_by_the_text_as_written_not_its_normalised_hash(tmp_path: Path) -> None:
    """The manifest's hash folds case and spacing (to find duplicates); a tokenizer reads "Apple" and "apple"
    apart, so the cache must not give one the other's embedding."""
    from tlcore.training.prepare import prepare

    rows = ["text,label"] + [f"{w} order {i},{label}" for i in range(6) for w, label in
                             (("Refund", "billing"), ("refund", "billing"), ("Crash", "bug"), ("crash", "bug"))]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    prep = prepare(RunConfig.from_dict({"data": {"source": str(tmp_path / "t.csv"), "val": 0.25, "test": 0.25},
                                        "model": {"name": "all-MiniLM-L6-v2", "weights": "random"},
                                        "freeze": {"strategy": "feature_extraction"}, "input_size": None}))
    hashes, keys = prep.manifest.hashes("train"), prep.modality.feature_keys(prep, "train")
    assert len(keys) == len(hashes) and len(set(hashes)) < len(hashes)  # "Refund order 1" and "refund order 1"
    assert len(set(keys)) == len(keys)


def test_a_model_named_by_a_folder_path_keeps_its_features_in_the_cache_folder(tmp_path: Path) -> None:
    from dataclasses import replace

    from tlcore.training.features import FeatureCache
    from tlcore.core.paths import data_home

    built = Vectors().build(ModelSpec(name="toy-mlp"), 2)
    cache = FeatureCache(replace(built, arch=str(tmp_path / "models" / "my bert")), {"split": "eval"})
    assert cache.path.parent == data_home() / "feature_cache" and cache.path.name.startswith("my_bert-")


def test_weights_rewritten_inside_a_model_folder_are_new_weights(tmp_path: Path) -> None:
    """A text encoder's weights are a folder: its own size and time do not change when `save_pretrained` writes
    model.safetensors again in it, so the cache served the old encoder's embeddings."""
    import os

    from tlcore.training.features import _file_fingerprint

    folder = tmp_path / "mybert"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"old weights")
    before, folder_time = _file_fingerprint(str(folder)), os.stat(folder).st_mtime_ns
    (folder / "model.safetensors").write_bytes(b"new weights, longer")
    assert os.stat(folder).st_mtime_ns == folder_time  # what the old fingerprint looked at did not change
    assert _file_fingerprint(str(folder)) != before
