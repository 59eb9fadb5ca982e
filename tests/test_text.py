"""Text classification through the same walk (issue 27): labelled texts read and reported on, the seeded split,
all-MiniLM-L6-v2 from its package with layer groups, training through the same loop and parts, evaluation,
prediction, and one line for each kind of bad input."""

from __future__ import annotations

import json
import re
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, tlcore_in_process
from tlcore.data import make_split
from tlcore.config import RunConfig
from tlcore.errors import DatasetError, TransferLabError
from tlcore.models import ModelSpec
from tlcore.text.data import is_text_source, read_texts
from tlcore.text.model import build_text_model
from tlcore.runs import RunStore
from tlcore.results.text_predict import TextPredictor
from tlcore.training.train import Cancelled, train
from train_fixtures import tiny_config

TICKETS = ROOT / "sample_data" / "support_tickets.csv"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_the_bundled_tickets_are_read_with_their_columns_found() -> None:
    report = read_texts(TICKETS)
    assert report.ok and report.text_column == "text" and report.label_column == "label"
    assert report.counts == {"billing": 60, "bug": 60, "login": 60, "shipping": 60}
    assert is_text_source(TICKETS) and not is_text_source(ROOT / "sample_data")


def test_bad_rows_are_named_by_line_and_the_rest_is_used(tmp_path: Path) -> None:
    rows = ["review,sentiment", "great phone,pos", "awful battery,neg", '"broken, quoted",neg,extra', "   ,pos",
            "fine,", "Great  PHONE,neg", "works well,pos", "stopped working,neg", "love it,pos", "hate it,neg"]
    data = ("\n".join(rows) + "\n").encode() + b"caf\xe9 latte,pos\nok again,pos\n"
    report = read_texts(write(tmp_path / "reviews.csv", data))
    assert (report.text_column, report.label_column) == ("review", "sentiment")
    skipped = dict(report.skipped)
    assert "fields" in skipped["line 4"] and skipped["line 6"] == "no label" and "UTF-8" in skipped["line 12"]
    assert report.empty == ["line 5"]
    assert report.conflicts == [["reviews.csv#2", "reviews.csv#7"]]  # same words, other case and spacing
    assert report.counts == {"neg": 4, "pos": 4}


@pytest.mark.parametrize("content, says", [
    (b"", "is empty"),
    (b"text,label\nsame,only\nother,only\nthird,only\n", None),
    (b"words,kind\na,x\n", "cannot tell which column holds the texts"),
])
def test_unusable_files_say_why_in_one_line(tmp_path: Path, content: bytes, says: str | None) -> None:
    path = write(tmp_path / "data.csv", content)
    if says is None:  # one class: a report error, and the split refuses it
        report = read_texts(path)
        assert report.errors == ["only one class ('only'): a classifier needs two or more"]
        with pytest.raises(DatasetError):
            make_split(report, seed=0)
        return
    with pytest.raises(DatasetError, match=says) as caught:
        read_texts(path)
    assert "\n" not in str(caught.value)


def test_a_100_mb_file_and_a_wrong_column_name_are_refused_in_one_line(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as fh:
        fh.truncate(100 * 2**20)  # sparse: the size is refused before anything is read
    result = tlcore_in_process("data", "scan", str(big))
    assert result.returncode == 1 and result.stderr.count("error: ") == 1 and "100 MB" in result.stderr
    result = tlcore_in_process("data", "scan", str(TICKETS), "--text-column", "body")
    assert result.returncode == 1 and "no column 'body'" in result.stderr and "text, label" in result.stderr


def test_jsonl_tsv_and_class_folders_of_txt_files_read_alike(tmp_path: Path) -> None:
    rows = [("the app crashes", "bug"), ("charged twice", "billing"), ("app freezes on start", "bug"),
            ("refund please", "billing"), ("error on login screen", "bug"), ("wrong invoice", "billing")]
    jsonl = write(tmp_path / "t.jsonl", "\n".join(json.dumps({"text": t, "label": y}) for t, y in rows) + "\nnope\n")
    tsv = write(tmp_path / "t.tsv", "text\tlabel\n" + "\n".join(f"{t}\t{y}" for t, y in rows) + "\n")
    folder = tmp_path / "folders"
    for i, (text, label) in enumerate(rows):
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"{i}.txt").write_text(text)
    reports = [read_texts(jsonl), read_texts(tsv), read_texts(folder)]
    assert all(r.counts == {"billing": 3, "bug": 3} for r in reports)
    assert reports[0].skipped == [("line 7", "not valid JSON")]
    assert is_text_source(folder) and sorted(r.path for r in reports[2].images)[0] == "billing/1.txt"


def test_the_split_is_seeded_and_copies_stay_together(tmp_path: Path) -> None:
    rows = ["text,label"] + [f"ticket number {i} about billing,billing" for i in range(20)] \
        + [f"ticket number {i} about a bug,bug" for i in range(20)] + ["Ticket number 3 about  BILLING,billing"]
    report = read_texts(write(tmp_path / "t.csv", "\n".join(rows) + "\n"))
    first, again, other = (make_split(report, seed=s) for s in (4, 4, 5))
    assert first.id == again.id != other.id
    splits = {item.split for item in first.items if item.path in ("t.csv#5", "t.csv#42")}
    assert len(splits) == 1  # the copy (other case and spacing) is dealt with its original


def test_minilm_loads_from_its_package_with_groups_from_embeddings_to_head() -> None:
    built = build_text_model(ModelSpec(name="all-MiniLM-L6-v2"), 3)
    assert [g.name for g in built.groups] == ["embeddings"] + [f"layer {i}" for i in range(1, 7)] + ["head"]
    names = [n for n, _ in built.model.named_parameters()]
    grouped = [n for g in built.groups for n in g.param_names]
    assert sorted(grouped) == sorted(names)  # every parameter in exactly one group
    assert built.weights.pretrained and "package" in built.weights.description
    encoded = built.tokenizer(["charged twice", "the app crashes on start"], padding=True, return_tensors="pt")
    x = torch.stack([encoded["input_ids"], encoded["attention_mask"]], 1)
    padded = torch.cat([x, torch.zeros(2, 2, 5, dtype=torch.long)], 2)  # more padding: the same embedding
    built.model.eval()
    assert torch.allclose(built.model.forward_features(x), built.model.forward_features(padded), atol=1e-5)
    random = build_text_model(ModelSpec(name="all-MiniLM-L6-v2", weights="random"), 3)
    assert not random.weights.pretrained


@pytest.fixture(scope="module")
def tickets_config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {"data": {"source": str(TICKETS), "split_seed": 0}, "augment": {"preset": "none"}, "epochs": 2,
            "batch_size": 16, "device": "cpu", "num_workers": 0}


def _edited_exports_are_one_line_of_our_own(export: Path, tmp_path: Path, text: str) -> None:
    """Issue 37: export files edited with their checksums recomputed were "unexpected OverflowError" (max_length
    -5), "unexpected TypeError" (model_type gpt2), "unexpected JSONDecodeError" (a tokenizer that is not JSON), and
    a config.json of random bytes was taken for a run folder with "no best.safetensors"."""
    import shutil

    from tlcore.results.artifacts import sha256_file
    from tlcore.core.run_files import META_SHA256, meta_checksum

    def edited(name: str, change) -> Path:
        copy = tmp_path / f"edited-{name.replace('/', '-')}-{len(list(tmp_path.glob('edited-*')))}"
        shutil.copytree(export, copy)
        change(copy)
        meta = json.loads((copy / "config.json").read_text())
        if name != "config.json":
            meta["files"][name] = sha256_file(copy / name)
        meta[META_SHA256] = meta_checksum(meta)
        (copy / "config.json").write_text(json.dumps(meta))
        return copy

    def meta_edit(**fields):
        def change(copy: Path) -> None:
            meta = json.loads((copy / "config.json").read_text())
            (copy / "config.json").write_text(json.dumps({**meta, **fields}))
        return change

    def encoder_config(copy: Path) -> None:
        path = copy / "encoder" / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "model_type": "gpt2"}))

    cases = [
        (edited("config.json", meta_edit(max_length=-5)), "max_length -5 is not a number of tokens"),
        (edited("config.json", meta_edit(modality="sound")), "modality 'sound' is no kind of data this version reads (image, text)"),
        (edited("encoder/config.json", encoder_config), "the export's model cannot be built from its files"),
        (edited("encoder/tokenizer.json", lambda c: (c / "encoder" / "tokenizer.json").write_text("not json {")),
         "the export's model cannot be built from its files"),
    ]
    garbled = tmp_path / "garbled"
    shutil.copytree(export, garbled)
    (garbled / "config.json").write_bytes(bytes(range(256)) * 8)
    cases.append((garbled, "config.json is not a text file"))
    for folder, message in cases:
        said = tlcore_in_process("predict", str(folder), text)
        assert said.returncode == 1 and said.stderr.count("\n") == 1 and message in said.stderr, said.stderr
        assert "unexpected error" not in said.stderr and "best.safetensors" not in said.stderr  # not the catch-all


def test_a_csv_trains_evaluates_and_predicts_through_the_cli(tickets_config: dict, tmp_path: Path,
                                                             tl_home: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({**tickets_config, "freeze": {"strategy": "feature_extraction"}}))
    result = tlcore_in_process("train", str(config))
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[1]
    assert result.stdout.startswith(f"run {run_id} (all-MiniLM-L6-v2 / feature_extraction)")
    assert " held-out texts" in result.stdout + result.stderr and "held-out images" not in result.stdout + result.stderr
    said = tlcore_in_process("evaluate", run_id).stdout
    assert said.startswith(f"run {run_id} on 36 held-out test texts: accuracy")
    shown = tlcore_in_process("runs", "show", run_id).stdout  # the speed in the run's own unit
    assert " texts/s " in shown and "img/s" not in shown
    shown = json.loads(tlcore_in_process("evaluate", run_id, "--json").stdout)
    assert shown["accuracy"] > 0.6 and shown["classes"] == ["billing", "bug", "login", "shipping"]  # chance 0.25
    other = tmp_path / "more_tickets.csv"
    other.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in [
        ("I was charged twice this month", "billing"), ("my refund never arrived", "billing"),
        ("the app crashes on start", "bug"), ("the page shows error 500", "bug"),
        ("cannot sign in as the password is rejected", "login"), ("my account is locked", "login"),
        ("parcel never arrived", "shipping"), ("the box came damaged", "shipping")]) + ",billing\n")
    elsewhere = json.loads(tlcore_in_process("evaluate", run_id, "--data", str(other), "--json").stdout)
    assert elsewhere["n"] == 8 and 0 <= elsewhere["accuracy"] <= 1 and len(elsewhere["confusion"]) == 4
    assert elsewhere["left_out"] == "1 of 9 rows left out: 1 empty"  # before: "on 8 texts", the row not named
    said = tlcore_in_process("evaluate", run_id, "--data", str(other)).stdout
    assert "  not scored: 1 of 9 rows left out: 1 empty" in said
    predicted = tlcore_in_process("predict", run_id, "I was charged twice and want my money back", "--topk", "2")
    assert predicted.returncode == 0 and "billing" in predicted.stdout.split(":")[-1].split(",")[0]
    text = "I was charged twice and want my money back"
    explained = tlcore_in_process("predict", run_id, text, "--explain")
    assert explained.returncode == 0 and "  why billing (points lost without the word): for it '" in explained.stdout
    # occlusion, exactly: a word's weight is the class's probability without that word subtracted from its own
    predictor = TextPredictor.from_run(RunStore().get(run_id).run_dir)
    why = predictor.explain(text)
    assert [w for w, _ in why.words] == text.split()
    alone = predictor.probabilities([text, text.replace("charged ", "")])[:, predictor.classes.index(why.label)]
    assert dict(why.words)["charged"] == pytest.approx(float(alone[0] - alone[1]), abs=1e-6)
    assert why.probability == pytest.approx(float(alone[0]), abs=1e-6)
    supporting, opposing = why.strongest(3)
    assert all(a[1] >= b[1] > 0 for a, b in zip(supporting, supporting[1:])) and all(v < 0 for _, v in opposing)
    lines = tmp_path / "to_classify.jsonl"
    lines.write_text('{"text": "my refund never arrived"}\n' + "[" * 5000 + "\n" + '{"text": ""}\n')
    noted = tlcore_in_process("predict", run_id, str(lines))
    assert noted.returncode == 0 and noted.stdout.count("\n") == 1  # one text classified
    assert "note: 2 row(s) of to_classify.jsonl held no text and are not classified" in noted.stderr
    refused = tlcore_in_process("predict", run_id, str(TICKETS), "--explain")
    assert refused.returncode != 0 and "240 texts are too many to explain" in refused.stderr
    # the export: weights, the encoder's config and tokenizer, ONNX, a card; it predicts as the run does
    out = tmp_path / "export"
    exported = tlcore_in_process("export", run_id, str(out))
    assert exported.returncode == 0, exported.stderr
    assert "onnx max logit difference" in exported.stdout and "torchscript" not in exported.stdout
    assert {"config.json", "tokenizer.json"} <= {p.name for p in (out / "encoder").iterdir()}
    card = (out / "MODEL_CARD.md").read_text()
    assert "up to 128 tokens" in card and "test set (" in card and "texts)" in card and "224x224" not in card
    assert "| F1 | texts |" in card and "pictures" not in card
    assert "ImageNet" not in card and "augmentation light" not in card  # issue 39: words that fit the modality
    import yaml

    header = yaml.safe_load(card.split("---\n")[1])
    assert header["pipeline_tag"] == "text-classification" and header["library_name"] == "transformers"
    assert header["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    from_run = tlcore_in_process("predict", run_id, text, "--topk", "4")
    from_export = tlcore_in_process("predict", str(out), text, "--topk", "4")
    assert from_export.returncode == 0 and from_export.stdout == from_run.stdout
    import onnxruntime

    exported_model = TextPredictor.from_export(out)
    ids = exported_model.tokenizer([text, "refund"], truncation=True, max_length=128)["input_ids"]
    from tlcore.text.loader import collate_texts

    tokens = collate_texts([(torch.tensor(i), 0) for i in ids])[0]  # two lengths: the padding is masked
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]  # transformers' convention
    with torch.inference_mode():
        torch_logits = exported_model.model(tokens).numpy()
    # issue 39: the ecosystem's tools load it as their own: ONNX Runtime fed by the tokenizer, plain transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    tokenizer = AutoTokenizer.from_pretrained(str(out / "encoder"))
    encoded = tokenizer([text, "refund"], padding=True, truncation=True, max_length=128, return_tensors="np")
    onnx_logits = session.run(None, {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})[0]
    assert abs(onnx_logits - torch_logits).max() < 1e-3
    plain = AutoModelForSequenceClassification.from_pretrained(str(out / "encoder"), trust_remote_code=True).eval()
    with torch.inference_mode():
        plain_logits = plain(**tokenizer([text, "refund"], padding=True, return_tensors="pt")).logits.numpy()
    assert abs(plain_logits - torch_logits).max() < 1e-4
    assert plain.config.id2label == dict(enumerate(["billing", "bug", "login", "shipping"]))
    with pytest.raises(ValueError):  # without its code it is not silently another model (random weights)
        AutoModelForSequenceClassification.from_pretrained(str(out / "encoder"))
    top = pipeline("text-classification", model=str(out / "encoder"), trust_remote_code=True)(text)[0]
    assert top["label"] == exported_model.classes[int(torch_logits[0].argmax())]
    _edited_exports_are_one_line_of_our_own(out, tmp_path, text)
    (out / "encoder" / "tokenizer.json").write_text("{}")
    tampered = tlcore_in_process("predict", str(out), text)
    assert tampered.returncode != 0 and "encoder/tokenizer.json is missing or changed" in tampered.stderr
    out = tmp_path / "p.csv"
    lines = tlcore_in_process("predict", run_id, str(TICKETS), "--csv", str(out))
    assert lines.returncode == 0 and len(out.read_text().splitlines()) == 241
    shown = tlcore_in_process("models", "show", "all-MiniLM-L6-v2")
    assert "6 transformer layers" in shown.stdout and "vocabulary 30,522" in shown.stdout


def test_full_fine_tuning_of_text_resumes_bit_identically(tickets_config: dict, tmp_path: Path) -> None:
    config = tiny_config(Path(TICKETS), **{**tickets_config, "model": {"name": "all-MiniLM-L6-v2"},
                                          "freeze": {"strategy": "gradual", "every": 1},
                                          "optimizer": {"name": "adamw", "lr": 1e-4}, "input_size": None})
    whole = train(config, tmp_path / "whole")
    seen = []
    with pytest.raises(Cancelled):
        train(config, tmp_path / "parts", sink=lambda e: seen.append(e) if e.kind == "epoch" else None,
              should_stop=lambda: len(seen) >= 1)
    rest = train(config, tmp_path / "parts", resume=True)
    assert [h["val_loss"] for h in whole.history] == [h["val_loss"] for h in rest.history]
    a, b = load_file(str(tmp_path / "whole" / "last.safetensors")), load_file(str(tmp_path / "parts" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = load_file(str(tmp_path / "whole" / "best.safetensors"))
    assert whole.history[1]["trainable_params"] > whole.history[0]["trainable_params"]  # layer 6 unfroze
    assert first.keys() == a.keys()


@pytest.mark.parametrize("overrides, says", [
    ({"model": {"name": "resnet50"}}, "holds texts, and resnet50 is a model for pictures"),
    ({"data": {"source": "sample_data"}, "model": {"name": "all-MiniLM-L6-v2"}}, "all-MiniLM-L6-v2 is a model for texts"),
    ({"adapt": {"method": "mcc", "target": str(TICKETS)}}, "for pictures so far"),
])
def test_mismatched_runs_are_refused_before_they_are_queued(tickets_config: dict, tmp_path: Path, tl_home: Path,
                                                            overrides: dict, says: str) -> None:
    data = {**tickets_config, **overrides}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    result = tlcore_in_process("train", str(path), "--background")
    assert result.returncode == 1 and result.stderr.count("error: ") == 1 and says in result.stderr, result.stderr
    from tlcore.runs import RunStore

    assert RunStore().list() == []


def test_errors_name_the_text_problem_not_a_picture_one(tmp_path: Path) -> None:
    with pytest.raises(TransferLabError, match="no such file or folder"):
        read_texts(tmp_path / "missing.csv")


def test_frozen_transformer_layers_run_without_dropout_and_trainable_ones_with_it() -> None:
    """Head-only training must see the features inference sees: dropout in frozen layers was on (noisy features,
    and half the step speed of a plain loop), and attention dropout, which transformers applies by the attention
    module's own training flag, not through a Dropout module."""
    from tlcore.spec.freeze import apply_plan, make_plan, set_train_mode

    built = build_text_model(ModelSpec(name="all-MiniLM-L6-v2", weights="random"), 2)
    n = len(built.groups)
    for strategy, frozen_layers in (("feature_extraction", range(6)), ("freeze_first_k", range(2)), ("full", ())):
        plan = make_plan(strategy, n, k=3)
        apply_plan(built.model, built.groups, plan, 0)
        set_train_mode(built.model, built.groups, plan, 0)
        for i, layer in enumerate(built.model.encoder.encoder.layer):
            modes = {m.training for m in layer.modules()}
            assert modes == ({False} if i in frozen_layers else {True}), (strategy, i, modes)
        assert built.model.head.training


def test_head_only_text_runs_train_on_embeddings_computed_once_with_the_slow_paths_result(tickets_config: dict,
                                                                                           tmp_path: Path,
                                                                                           monkeypatch) -> None:
    events = []
    base = {**tickets_config, "model": {"name": "all-MiniLM-L6-v2", "weights": "auto"}, "input_size": None,
            "freeze": {"strategy": "feature_extraction"}, "optimizer": {"name": "adamw", "lr": 3e-3}}
    fast = train(tiny_config(Path(TICKETS), **base), tmp_path / "fast", sink=events.append)
    slow = train(tiny_config(Path(TICKETS), **{**base, "feature_cache": False}), tmp_path / "slow")
    fast_log = [e.message for e in events if e.message.startswith("feature extraction fast path")]
    assert fast_log and "training texts computed once and cached" in fast_log[0], fast_log
    counts = [(e.data["done"], e.data["total"]) for e in events if e.kind == "progress" and
              e.message.startswith("features of the texts")]  # issue 36: a count in the wait before epoch 1
    assert counts[0][0] == 0 and counts[-1][0] == counts[-1][1] > 0 and all(t == counts[0][1] for _, t in counts)
    val, train_texts = map(int, re.search(r"features of (\d+) val texts and the (\d+) training", fast_log[0]).groups())
    assert counts[0][1] == val + train_texts  # unaugmented texts pass once, however many views (372 said for 204)
    assert not any("unit" in e.data for e in events if e.kind == "progress" and e.data.get("phase") == "features")
    for a, b in zip(fast.history, slow.history):  # frozen layers in inference mode (attention dropout too): equal
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5) and a["train_acc"] == b["train_acc"]
    x, y = load_file(str(tmp_path / "fast" / "best.safetensors")), load_file(str(tmp_path / "slow" / "best.safetensors"))
    assert all(torch.allclose(x[k], y[k], atol=1e-5) for k in x)
    # issue 35: a second head-only run on the same split (another seed and learning rate) reads the embeddings
    again = []
    import tlcore.text.data as text_data

    reads = []
    read_file = text_data.read_regular_file
    monkeypatch.setattr(text_data, "read_regular_file", lambda *a, **k: reads.append(a[0]) or read_file(*a, **k))
    os.utime(TICKETS)  # the file looks changed: read once again, and only once (it was read up to 6 times a run)
    train(tiny_config(Path(TICKETS), **{**base, "seed": 1, "optimizer": {"name": "adamw", "lr": 1e-3}}),
          tmp_path / "again", sink=again.append)
    assert len(reads) == 1, reads
    read = [e.message for e in again if e.message.startswith("feature extraction fast path")]
    assert read and "read from the cache" in read[0], read


def test_text_augmentation_changes_training_texts_the_same_way_for_the_same_epoch(tmp_path: Path) -> None:
    import random

    from tlcore.text.augment import TextAugment, TextAugmenter, augment_text

    text = "the parcel arrived two weeks late and the box was damaged"
    words = text.split()
    assert augment_text(text, TextAugment(), random.Random(0)) == text  # off: the text as it is
    dropped = augment_text(text, TextAugment(word_dropout=0.5), random.Random(1), unknown="[UNK]").split()
    assert len(dropped) == len(words) and 0 < dropped.count("[UNK]") < len(words)
    assert all(d in (w, "[UNK]") for d, w in zip(dropped, words))
    swapped = augment_text(text, TextAugment(swap=0.5), random.Random(2)).split()
    assert sorted(swapped) == sorted(words) and swapped != words
    deleted = augment_text(text, TextAugment(deletion=0.5), random.Random(3)).split()
    assert 0 < len(deleted) < len(words) and all(w in words for w in deleted)
    assert len(augment_text("hello", TextAugment(deletion=0.5), random.Random(4)).split()) == 1  # one word stays
    augmenter = TextAugmenter(TextAugment(0.2, 0.2, 0.2))
    augmenter.set_random_seed(7)
    first = [augmenter(text, i) for i in range(5)]
    assert [augmenter(text, i) for i in reversed(range(5))] == first[::-1]  # same epoch, any order: the same texts
    augmenter.set_random_seed(8)
    assert [augmenter(text, i) for i in range(5)] != first  # the next epoch draws again
    with pytest.raises(TransferLabError, match="text_augment.swap"):
        RunConfig.from_dict({"data": {"source": "x"}, "text_augment": {"swap": 0.9}})


def test_an_augmented_text_run_trains_on_changed_texts_and_skips_the_embedding_cache(tickets_config: dict,
                                                                                    tmp_path: Path) -> None:
    from tlcore.training.prepare import prepare
    from tlcore.training.steps import make_loader

    config = RunConfig.from_dict({**tickets_config, "epochs": 1, "freeze": {"strategy": "feature_extraction"},
                                  "text_augment": {"word_dropout": 0.3, "swap": 0.0, "deletion": 0.0}})
    prep = prepare(config)
    plain = make_loader(prep, "train", training=False).dataset
    augmented = make_loader(prep, "train", training=True).dataset
    augmented.pipeline.set_random_seed(1)
    unk = prep.built.tokenizer.unk_token_id
    changed = [i for i in range(20) if not torch.equal(augmented[i][0], plain[i][0])]
    assert len(changed) >= 15 and all((augmented[i][0] == unk).any() for i in changed)
    assert [augmented[i][1] for i in range(20)] == [plain[i][1] for i in range(20)]  # labels never change
    events = []
    train(config, tmp_path / "run", sink=events.append)
    log = " ".join(e.message for e in events)
    assert "fast path" not in log  # the embeddings change every epoch: no cache of them


def test_the_cli_previews_a_texts_augmentation_seeded() -> None:
    text = "the parcel arrived two weeks late and the box was damaged"
    first = tlcore_in_process("augment", "text-preview", text, "--preset", "light", "--deletion", "0.3", "--n", "4")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0] == "text_augment {'word_dropout': 0.05, 'swap': 0.05, 'deletion': 0.3}"
    assert lines[1] == f"as it is: {text}" and [line.split(":")[0] for line in lines[2:]] == [f"epoch {i}" for i in (1, 2, 3, 4)]
    assert all(line.split(": ", 1)[1] != text for line in lines[2:])
    again = tlcore_in_process("augment", "text-preview", text, "--preset", "light", "--deletion", "0.3", "--n", "4")
    assert again.stdout == first.stdout  # same seed, same texts
    off = tlcore_in_process("augment", "text-preview", text)
    assert off.returncode == 0 and "nothing changes" in off.stdout and off.stdout.count(text) == 6  # as it is + 5


def test_a_file_read_again_unchanged_is_not_read_again_and_each_caller_gets_its_own_report(tmp_path: Path,
                                                                                          monkeypatch) -> None:
    import tlcore.text.data as text_data

    table = tmp_path / "t.csv"
    table.write_text("text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(60)))
    reads = []
    read_file = text_data.read_regular_file
    monkeypatch.setattr(text_data, "read_regular_file", lambda *a, **k: reads.append(a[0]) or read_file(*a, **k))
    first = read_texts(table)
    first.images.clear()  # a caller that changes its report changes nobody else's
    second = read_texts(table)
    assert len(reads) == 1 and len(second.images) == 60
    read_texts(table, text_column="text", label_column="label")  # other columns asked for: another read
    assert len(reads) == 2
    table.write_text("text,label\n" + "".join(f"other text {i},{'ab'[i % 2]}\n" for i in range(40)))
    assert len(read_texts(table).images) == 40 and len(reads) == 3  # changed: read again
    with pytest.raises(DatasetError, match="limit"):  # a limit below the file's size still refuses it
        read_texts(table, max_file_mb=1e-4)
