"""A run made ready: its split, model, freeze plan, runtime and adaptation target, checked before any step.

Batch size "auto" is settled here too: it decides the config the loop is built from, so it comes before the loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from tlcore.adaptation.adapt import check_method_fits
from tlcore.spec.adapt_spec import (NEEDS_TARGET, TargetSet, check_labelled_classes, labelled_repeats, scan_labelled_target,
                               scan_target)
from tlcore.inputs.batch_size import BASE_BATCH, auto_batch_words, batch_limit, cuda_trial, keeping_buffers, largest_batch, scaled_lr
from tlcore.core.collectives import is_writer
from tlcore.config import RunConfig, resolve_freeze_plan
from tlcore.core.schema import leaves, value_at
from tlcore.data import SplitManifest
from tlcore.data.near_duplicates import Fingerprints, near_copies, same_picture
from tlcore.core.paths import data_home
from tlcore.data.split import SplitItem
from tlcore.errors import TransferLabError
from tlcore.core.events import Event, Progress, Sink, ignore
from tlcore.core.files import atomic_write
from tlcore.spec.freeze import FreezePlan, apply_plan
from tlcore.inputs.input_path import InputPath
from tlcore.modality import SPLIT_PHASES, Modality, for_data, load_manifest, of_built, of_config
from tlcore.models import BuiltModel
from tlcore.training.preflight import model_for_the_data
from tlcore.core.runtime import Runtime, select_runtime

__all__ = ["say_last_phase", "replanned", "PREPARE_PHASES", "Prepared", "prepare", "AUTO_BATCH"]

PREPARE_PHASES = SPLIT_PHASES + 2  # the split's phases, then building the model, then the items made ready

AUTO_BATCH = "auto_batch.json"  # the batch size "auto" found, so a resumed run keeps it


@dataclass
class Prepared:
    """Everything a run needs before its first step, built and checked by `prepare`.

    Attributes:
        config: the run's config, with batch size "auto" resolved to a number.
        manifest: the split the run trains on.
        built: the model, its layer groups and preprocessing.
        plan: the freeze plan resolved against those groups.
        runtime: device, precision and loader settings.
        target: unlabeled pictures of the domain to adapt to (adaptation methods that need them).
        labelled: the few labelled target pictures (path, class index, hash), when the config names them; with
            `adapt.labelled_use` "train" they are in the manifest's training pictures too.
        inputs: how pictures reach the model (tlcore.inputs.input_path).
    """

    config: RunConfig
    manifest: SplitManifest
    built: BuiltModel
    plan: FreezePlan
    runtime: Runtime
    target: TargetSet | None = None
    labelled: list[tuple[Path, int, str]] = field(default_factory=list)
    inputs: InputPath = field(default_factory=InputPath)

    @property
    def modality(self) -> Modality:
        """The kind of data the run trains on (pictures, texts...): what the engine asks how to read and load it."""
        return of_built(self.built)

    @property
    def model(self) -> nn.Module:
        """The model being trained."""
        return self.built.model

    @property
    def head_only(self) -> bool:
        """Only the new head trains, in every epoch of the plan."""
        return self.plan.trains_only_head(self.config.epochs, len(self.built.groups))


def left_out_of_the_data(config: RunConfig) -> str:
    """The items of the data that the split leaves out, counted by reason ("" for none; for pictures, whose
    unreadable files the scan report lists, always "").

    Args:
        config: the run.

    Returns:
        One line, or "".
    """
    return for_data(config.data.source).left_out_words(config.data)  # the data's kind, whatever the model


def prepare(config: RunConfig, run_dir: Path | None = None, sink: Sink = ignore) -> Prepared:
    """Everything a run needs, built and checked before the first step (so errors come early and clearly).

    Args:
        config: the run.
        run_dir: the run's folder, where batch size "auto" keeps what it found (None: not kept).
        sink: receives the warnings and log lines of preparing.

    Returns:
        The `Prepared` run; `"batch_size": "auto"` is resolved here (read back from `run_dir` when the run found
        it before), so `prep.config` always holds a number.

    Raises:
        TransferLabError: the data, the split, the model, its weights or the freeze plan cannot be used.
    """
    # on a CPU, the cores other work leaves free: a thread that waits for its core holds back every step
    runtime = select_runtime(config.device, config.precision, config.num_workers).on_free_cores()
    say = _preparing(sink)
    manifest = load_manifest(config.data, on_phase=lambda words, done, _split_phases: say(words, done, PREPARE_PHASES))
    for split in ("train", "val"):
        if not manifest.files(split):
            raise TransferLabError(f"the split has no {split} items", "use larger val/test shares or more data")
    config, note = model_for_the_data(config)
    if note:
        sink(Event("log", note))
    left_out = left_out_of_the_data(config)
    if left_out:  # said in the run's log too, not only by `data scan`
        sink(Event("log", f"{Path(config.data.source).name}: {left_out} (`python -m tlcore data scan` lists them)"))
    torch.manual_seed(config.seed)
    modality = of_config(config)
    modality.check_run(config)
    say(f"building {config.model.name}", SPLIT_PHASES, PREPARE_PHASES)
    built = modality.build(config.model, len(manifest.classes), input_size=config.input_size, seed=config.seed)
    plan = resolve_freeze_plan(config.freeze, len(built.groups))
    prep = Prepared(config, manifest, built, plan, modality.runtime(runtime))
    check_method_fits(config.adapt, built.model, prep.head_only, built.arch)
    if config.adapt.method in NEEDS_TARGET:
        prep.target = scan_target(config.adapt.target, config.adapt.max_target)
        _warn_if_the_target_is_the_data(prep, sink)
    if config.adapt.labelled:
        _add_labelled_target(prep, sink)
    if config.batch_size == "auto":
        prep.config = _auto_batch(prep, run_dir, sink)
    return prep


def replanned(prep: Prepared, config: RunConfig) -> Prepared:
    """The same prepared data and model under `config`'s freeze plan and epochs: what settings that differ only in
    what trains share (a comparison's strategies, timed on one built model).

    Args:
        prep: a prepared run whose config differs from `config` at most in its freeze settings, epochs and the
            settings that cost nothing (learning rate, schedule, seed...).
        config: the setting; its model and batch size are taken as `prep` resolved them.

    Returns:
        A `Prepared` sharing `prep`'s model, split and targets (not a copy of them).

    Raises:
        TransferLabError: the plan does not fit the model, or the adaptation method does not fit the plan.
        ValueError: `config` differs from `prep`'s in more than those settings (its data, model or step cost): timed
            on `prep`'s model, it would be told another run's time.
    """
    differ = _unshared(prep.config, config)
    if differ:
        raise ValueError(f"replanned shares a prepared run only between settings of the same data, model and step "
                         f"cost; these differ: {', '.join(differ)}")
    config = replace(config, model=prep.config.model, batch_size=prep.config.batch_size)
    prep.modality.check_run(config)
    plan = resolve_freeze_plan(config.freeze, len(prep.built.groups))
    again = replace(prep, config=config, plan=plan)
    check_method_fits(config.adapt, again.model, again.head_only, again.built.arch)
    return again


_REPLANNED = ("freeze", "epochs", "batch_size", "model")  # what a replanned setting may change (its model: the name kept)


def _unshared(prepared: RunConfig, config: RunConfig) -> list[str]:
    """The settings (dotted paths) in which `config` differs from the config a run was prepared with, beyond what
    `replanned` may change: what trains when, the epochs, settings that cost nothing, and a batch size of "auto"
    that the preparation resolved."""
    before, after = prepared.to_dict(), config.to_dict()
    differ = [leaf.path for leaf in leaves(RunConfig) if leaf.meta.cost and leaf.path.split(".")[0] not in _REPLANNED
              and value_at(before, leaf.path) != value_at(after, leaf.path)]
    if prepared.model.name != config.model.name:
        differ.append("model.name")
    if config.batch_size not in ("auto", prepared.batch_size):
        differ.append("batch_size")
    return differ


def say_last_phase(prep: Prepared, sink: Sink) -> None:
    """The last phase before a run's first step, said: its items made ready for training (tokenised texts, the
    loaders, the decoded-picture cache), half a minute for a million texts.

    Args:
        prep: the prepared run; sink: where the run's events go.
    """
    items = len(prep.manifest.items)
    _preparing(sink)(f"getting {items:,} {prep.modality.items_word} ready for training", PREPARE_PHASES - 1,
                     PREPARE_PHASES)


def _preparing(sink: Sink) -> Callable[[str, int, int], None]:
    """Progress events for the phases before a run's first step ("preparing: splitting 1,000,000 texts")."""
    def say(words: str, done: int, total: int) -> None:
        sink(Event("progress", f"preparing: {words} ({done + 1} of {total})", Progress("prepare", done, total).to_data()))
    return say


def _add_labelled_target(prep: Prepared, sink: Sink) -> None:
    """Reads the few labelled target pictures; with `labelled_use` "train" they join the training pictures. A
    picture that is also in the data's validation or test split is refused: it would flatter the run."""
    adapt = prep.config.adapt
    prep.labelled = scan_labelled_target(adapt.labelled, prep.manifest.classes)
    held_out = set(prep.manifest.hashes("val")) | set(prep.manifest.hashes("test"))
    shared = sum(sha in held_out for _path, _label, sha in prep.labelled)
    if shared:
        raise TransferLabError(f"{shared} of the labelled target pictures in {adapt.labelled} are also validation or "
                               "test pictures of the data", "keep the labelled target pictures apart from the data")
    check_labelled_classes(prep.labelled, prep.manifest.classes, adapt.labelled_use, adapt.labelled)
    _refuse_near_copies(prep, sink)  # after the cheap checks: the first time it decodes every picture of the data
    if adapt.labelled_use == "train":
        source = len(prep.manifest.hashes("train"))
        repeats = labelled_repeats(len(prep.labelled), source, adapt.labelled_share)
        extra = [SplitItem(str(path), prep.manifest.classes[label], "train", sha)
                 for _ in range(repeats) for path, label, sha in prep.labelled]
        prep.manifest = replace(prep.manifest, items=prep.manifest.items + extra)
        each = f", each {repeats} times ({len(extra) / (source + len(extra)):.0%} of an epoch)" if repeats > 1 else ""
        sink(Event("log", f"{len(prep.labelled)} labelled target pictures join the {source} training pictures{each}"))


def _refuse_near_copies(prep: Prepared, sink: Sink) -> None:
    """Labelled target pictures that are the data's own pictures saved again (a validation photo re-saved as PNG,
    a test photo re-encoded as JPEG: other bytes, the same picture) are refused as exact copies are; copies of
    training pictures are said (they teach nothing about the target). The data's pictures are decoded once and
    their fingerprints kept beside the splits."""
    manifest = prep.manifest
    fingerprints = Fingerprints(data_home() / "fingerprints" / f"{manifest.id}.json")
    def say(done: int, total: int) -> None:  # the first time: every picture of the data is decoded once
        sink(Event("progress", f"preparing: fingerprints of {done:,} of {total:,} pictures of the data, to compare "
                               "your labelled target pictures with", Progress("prepare", done, total).to_data()))
    mine = fingerprints.of((path, sha) for path, _label, sha in prep.labelled)
    of_split = {split: fingerprints.of(((Path(manifest.root) / item.path, item.sha256) for item in manifest.items
                                        if item.split == split), on_progress=say) for split in ("val", "test", "train")}
    paths = {sha: path for path, _label, sha in prep.labelled}
    paths.update({item.sha256: Path(manifest.root) / item.path for item in manifest.items})

    def confirm(my_sha: str, their_sha: str) -> bool:  # close fingerprints, and the pictures themselves agree
        return same_picture(paths[my_sha], paths[their_sha])

    held_out = near_copies(mine, {**of_split["val"], **of_split["test"]}, confirm)
    if held_out:
        raise TransferLabError(f"{len(held_out)} of the labelled target pictures in {prep.config.adapt.labelled} look "
                               "like validation or test pictures of the data (the same picture saved again)",
                               "keep the labelled target pictures apart from the data")
    trained = near_copies(mine, of_split["train"], confirm)
    if trained:
        sink(Event("warning", f"{len(trained)} of the labelled target pictures look like training pictures of the "
                              "data (the same picture saved again): they say nothing about the target domain"))


def _warn_if_the_target_is_the_data(prep: Prepared, sink: Sink) -> None:
    """Target pictures that are the labelled data set's own (by content): the adaptation then sees the validation
    and test pictures it is judged on, and says nothing about another domain. A warning, not a refusal."""
    target = set(prep.target.sha256)
    shared = {split: sum(h in target for h in prep.manifest.hashes(split)) for split in ("train", "val", "test")}
    if any(shared.values()):
        sink(Event("warning", f"{sum(shared.values())} of the {len(target)} target pictures are pictures of the "
                              f"labelled data set ({shared['val']} validation, {shared['test']} test): adaptation "
                              "then learns from the pictures it is tested on. Give a folder of the other domain's "
                              "pictures as the target"))


def _auto_batch(prep: Prepared, run_dir: Path | None, sink: Sink) -> RunConfig:
    """The config with batch size "auto" made a number (and the learning rate scaled to it)."""
    config, runtime = prep.config, prep.runtime
    found = run_dir / AUTO_BATCH if run_dir else None
    if found and found.exists():
        chosen = json.loads(found.read_text())
        sink(Event("log", f"batch size auto: {chosen['batch_size']}, as found when this run started"))
        return replace(config, batch_size=chosen["batch_size"], optimizer=replace(config.optimizer, lr=chosen["lr"]))
    if runtime.device.type != "cuda":
        batch, lr = BASE_BATCH, config.optimizer.lr
        sink(Event("log", f"batch size auto: {batch} (the search measures GPU memory; on the "
                          f"{runtime.device.type.upper()} the default batch is used)"))
    else:
        model = prep.model.to(runtime.device)
        if runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        n = len(prep.built.groups)
        widest = min(range(config.epochs), key=lambda e: prep.plan.trainable_from(e, n))  # most of the model trains
        apply_plan(model, prep.built.groups, prep.plan, widest)
        tried: list[tuple[int, int | None]] = []
        capacity = torch.cuda.get_device_properties(runtime.device).total_memory
        trial = cuda_trial(model, prep.built.preprocessing.input_size, len(prep.manifest.classes), runtime)
        with keeping_buffers(model):
            batch = largest_batch(trial, capacity, limit=batch_limit(len(prep.manifest.files("train"))),
                                  on_try=lambda b, peak: tried.append((b, peak)))
        lr = scaled_lr(config.optimizer.lr, config.optimizer.name, batch)
        sink(Event("log", auto_batch_words(batch, config.optimizer.lr, lr, config.optimizer.name, tried, capacity)))
    if found and is_writer():
        atomic_write(found, lambda tmp: tmp.write_text(json.dumps({"batch_size": batch, "lr": lr})))
    return replace(config, batch_size=batch, optimizer=replace(config.optimizer, lr=lr))
