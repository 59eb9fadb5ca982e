"""The `python -m tlcore` argument parser: every command, each option typed and bounded."""

from __future__ import annotations

import argparse
from pathlib import Path

from tlcore.core.strategies import STRATEGIES
from tlcore.cli.arguments import add_model_arguments, add_ray_arguments, bounded, path_value, text_columns
from tlcore.cli.compare_commands import cmd_compare
from tlcore.cli.data_commands import (cmd_augment_presets, cmd_augment_preview, cmd_augment_text_preview, cmd_data_cache,
                                     cmd_data_label,
                                      cmd_data_scan, cmd_data_split)
from tlcore.text.augment import TEXT_AUGMENT_PRESETS
from tlcore.cli.model_commands import cmd_freeze_show, cmd_models_list, cmd_models_rank, cmd_models_show
from tlcore.cli.result_commands import cmd_evaluate, cmd_export, cmd_predict
from tlcore.cli.run_commands import cmd_estimate, cmd_lr_find, cmd_runs_cancel, cmd_runs_list, cmd_runs_resume, cmd_runs_show, cmd_train, cmd_worker

__all__ = [
    "build_parser",
]


def build_parser() -> argparse.ArgumentParser:
    """The `python -m tlcore` argument parser: every command, each option typed and bounded.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(prog="python -m tlcore", description="Transfer Lab engine: transfer learning for image classifiers.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="inspect and split a data set").add_subparsers(dest="data_command", required=True)
    scan = data.add_parser("scan", help="check every file and print a report")
    scan.add_argument("path", help="a folder with one sub-folder per class (or train/val/test folders), a .zip, or "
                                   "texts: a .csv/.tsv/.jsonl file (a text and a label column) or class folders of .txt")
    scan.add_argument("--json", action="store_true", help="print the full report as JSON")
    text_columns(scan)
    scan.add_argument("--max-file-mb", type=bounded(float, 0, 100_000, above=True), help="skip files larger than this without reading them "
                                                        "(default 64, or TRANSFERLAB_MAX_FILE_MB)")
    scan.set_defaults(handler=cmd_data_scan)

    split = data.add_parser("split", help="make a stratified, seeded train/val/test split and save its manifest")
    split.add_argument("path", help="a folder, .zip or text file, as for `scan`")
    text_columns(split)
    split.add_argument("--seed", type=bounded(int, 0, 2**31 - 1), default=0, help="same seed, same split (default 0)")
    split.add_argument("--val", type=bounded(float, 0, 0.95), default=0.15, help="validation share per class (default 0.15)")
    split.add_argument("--test", type=bounded(float, 0, 0.95), default=0.15, help="test share per class (default 0.15)")
    split.add_argument("--test-from-val", type=bounded(float, 0, 1), default=0.5,
                       help="for folders already split without test/: share of val set aside as test (default 0.5)")
    split.add_argument("--out", type=path_value, help="where to write the manifest (default: the Transfer Lab data folder)")
    split.set_defaults(handler=cmd_data_split)

    cache = data.add_parser("cache", help="decode every picture once into the decoded-image cache a run on a GPU "
                                          "reads (runs build it on first use too)")
    cache.add_argument("path", help="a folder or .zip, as for `scan`")
    cache.add_argument("--model", default="tf_efficientnet_lite0", help="the model whose resize size the cache keeps")
    cache.add_argument("--input-size", type=bounded(int, 8, 4096), help="square input side, as the run's input_size")
    cache.add_argument("--max-gb", type=bounded(float, 0, 10_000, above=True), default=20.0, help="refuse a cache larger than this (default 20)")
    cache.set_defaults(handler=cmd_data_cache)

    label = data.add_parser("label", help="label a few target pictures: copy them into FOLDER/CLASS/, the layout "
                                          "adapt.labelled takes (the Data page does it one click each)")
    label.add_argument("pictures", nargs="*", help="target picture files")
    label.add_argument("--as", dest="label", help="their class (one of the data's classes)")
    label.add_argument("--into", type=path_value, required=True, help="the folder of labelled target pictures")
    label.add_argument("--data", help="the labelled data set whose classes these are (default: FOLDER's sub-folders "
                                      "and --as)")
    text_columns(label)
    label.add_argument("--undo", action="store_true", help="take back the last label instead")
    label.set_defaults(handler=cmd_data_label)

    models = commands.add_parser("models", help="browse pretrained models").add_subparsers(dest="models_command", required=True)
    listing = models.add_parser("list", help="recommended models, or search all of timm's pretrained models")
    listing.add_argument("--search", help="part of a model or family name, e.g. resnet, vit, convnext")
    listing.add_argument("--limit", type=bounded(int, 1, 10_000), default=40)
    listing.set_defaults(handler=cmd_models_list)
    rank = models.add_parser("rank", help="rank pretrained models for your pictures in seconds, before training "
                                          "(LogME and a logistic probe on frozen features)")
    rank.add_argument("--data", help="a folder (one sub-folder per class) or a .zip; split with the default seed")
    rank.add_argument("--config", help="instead, a run config: its data, split and input size are used")
    rank.add_argument("--models", help="comma-separated timm names; NAME@random for the same architecture without "
                                       "pretrained weights (default: recommended models with weights here)")
    rank.add_argument("--input-size", type=bounded(int, 8, 4096), help="square input side (smaller is faster, e.g. 160)")
    rank.add_argument("--json", action="store_true", help="one JSON object per model, as each is scored")
    rank.set_defaults(handler=cmd_models_rank)
    show = models.add_parser("show", help="a model's facts and its layer groups, stem to head")
    add_model_arguments(show)
    show.set_defaults(handler=cmd_models_show)

    augment = commands.add_parser("augment", help="augmentation presets and previews").add_subparsers(
        dest="augment_command", required=True)
    presets = augment.add_parser("presets", help="the presets, each with what it is for")
    presets.set_defaults(handler=cmd_augment_presets)
    aug_preview = augment.add_parser("preview", help="one picture augmented N times, as a grid image")
    aug_preview.add_argument("image", help="a picture of yours")
    aug_preview.add_argument("--preset", default="light", help="none, light, medium, heavy, photos, aerial, documents, "
                             "microscopy (default light)")
    aug_preview.add_argument("--spec", help="a JSON augmentation spec instead of a preset")
    aug_preview.add_argument("--model", default="tf_efficientnet_lite0", help="whose input size and crop to use")
    aug_preview.add_argument("--n", type=bounded(int, 1, 64), default=8)
    aug_preview.add_argument("--seed", type=bounded(int, 0, 2**31 - 1), default=0, help="same seed, same pictures")
    aug_preview.add_argument("--columns", type=bounded(int, 1, 16), default=4)
    aug_preview.add_argument("--model-view", action="store_true", help="add what the model sees at evaluation")
    aug_preview.add_argument("--out", type=path_value, default=Path("augment_preview.png"))
    aug_preview.set_defaults(handler=cmd_augment_preview)
    text_preview = augment.add_parser("text-preview", help="a text as N epochs would change it (text runs' "
                                      "text_augment: word dropout, swapped and deleted words)")
    text_preview.add_argument("text", help="a text, or a .txt file whose first line is used")
    text_preview.add_argument("--preset", choices=sorted(TEXT_AUGMENT_PRESETS), help="start from a preset "
                              "(light: 0.05 each, medium: 0.1 each); the options below change it")
    for option, what in (("--word-dropout", "each word becomes the unknown token with this probability"),
                         ("--swap", "this share of the words trades places"),
                         ("--deletion", "each word is left out with this probability")):
        text_preview.add_argument(option, type=bounded(float, 0.0, 0.5), help=f"{what} (0 to 0.5)")
    text_preview.add_argument("--n", type=bounded(int, 1, 64), default=5)
    text_preview.add_argument("--seed", type=bounded(int, 0, 2**31 - 1), default=0, help="same seed, same texts")
    text_preview.set_defaults(handler=cmd_augment_text_preview)

    train = commands.add_parser("train", help="train a run config (JSON) and evaluate it on the test split")
    train.add_argument("config", help="a run config JSON file (the Train page downloads one)")
    train.add_argument("--background", action="store_true", help="queue it for the background worker instead")
    train.add_argument("--nproc", type=bounded(int, 1, 64), help="train this one run on N processes with torchrun (one per GPU; "
                                                 "gloo on CPUs); sets distributed.nproc_per_node")
    add_ray_arguments(train)
    train.set_defaults(handler=cmd_train)
    worker = commands.add_parser("worker", help="run queued runs one at a time (the app starts this for you)")
    worker.set_defaults(handler=cmd_worker)
    runs = commands.add_parser("runs", help="list, show, cancel or resume runs").add_subparsers(dest="runs_command",
                                                                                              required=True)
    runs_list = runs.add_parser("list")
    runs_list.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    runs_list.set_defaults(handler=cmd_runs_list)
    for name, handler, text in (("show", cmd_runs_show, "epochs, events and errors of a run"),
                                ("cancel", cmd_runs_cancel, "stop a queued or running run"),
                                ("resume", cmd_runs_resume, "continue a failed or cancelled run from its checkpoint")):
        sub = runs.add_parser(name, help=text)
        sub.add_argument("run_id")
        if name == "show":
            sub.add_argument("--config", action="store_true", help="also print the run's config")
        if name == "resume":
            add_ray_arguments(sub)
        sub.set_defaults(handler=handler)
    evaluate = commands.add_parser("evaluate", help="score a run's best checkpoint on its held-out test split, or on "
                                                    "another labelled folder")
    evaluate.add_argument("run_id", help="a run id, or a run folder")
    evaluate.add_argument("--data", help="a folder (or zip) with one sub-folder per class of the run: another domain, "
                                         "new pictures; kept with the run under the folder's name")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object (its `accuracy` key: the accuracy)")
    evaluate.add_argument("--progress", help="with --data: append the work done (JSON, one line per batch) to this "
                                             "file as it happens")
    evaluate.set_defaults(handler=cmd_evaluate)
    lrf = commands.add_parser("lr-find", help="learning-rate range test for a run config")
    lrf.add_argument("config")
    lrf.add_argument("--steps", type=bounded(int, 5, 10_000), default=60)
    lrf.add_argument("--out", help="write the curve as JSON")
    lrf.add_argument("--progress", help="append each step (JSON, one line per step) to this file as it happens")
    lrf.set_defaults(handler=cmd_lr_find)
    estimate = commands.add_parser("estimate", help="how long a run config will take here, from a few measured steps")
    estimate.add_argument("config", nargs="+", help="one or more run configs, measured once per distinct step cost "
                          "(configs that differ only in learning rate, schedule, seed or epochs share one)")
    estimate.add_argument("--json", action="store_true", help="print one JSON object per config, one per line")
    estimate.add_argument("--progress", help="append each phase of the measuring (JSON, one line per phase) to this "
                                             "file as it starts")
    estimate.set_defaults(handler=cmd_estimate)

    compare = commands.add_parser("compare", help="several settings (freeze strategies by default) on the same split "
                                                  "and budget, repeated over seeds, with a paired verdict")
    compare.add_argument("config", nargs="?", help="the shared run config (the varied settings are replaced)")
    compare.add_argument("--vary", action="append", metavar="SETTING=V1,V2",
                         help="a setting to compare, e.g. optimizer.lr=1e-3,3e-4 or augment.preset=light,heavy "
                              "(up to 3; a grid of every combination). Settings: freeze.strategy, freeze.k, "
                              "freeze.lr_spread, freeze.every, optimizer.lr, optimizer.weight_decay, optimizer.name, "
                              "schedule.name, augment.preset, model.name, model.head.dropout, model.head.hidden, "
                              "epochs, batch_size, adapt.method, adapt.weight (none: the method's default), "
                              "early_stopping.metric (val_loss, val_acc, labelled_loss, labelled_acc: the best epoch "
                              "chosen on the few labelled target pictures)")
    compare.add_argument("--seeds", type=bounded(int, 1, 20), default=1, help="repeat every setting with seeds 0..N-1 (head "
                                                             "initialisation, batch order, augmentation; never the "
                                                             "split); the table gives mean and std (default 1)")
    compare.add_argument("--strategies", help="comma-separated: feature_extraction, freeze_first_half, gradual, "
                                              "full_discriminative, full (default: all five)")
    compare.add_argument("--methods", help="compare domain-adaptation methods instead (comma-separated: none, adabn, "
                                           "dann, l2sp, mcc, entropy, adabn+mcc), on the config's freeze plan and "
                                           "adapt.target; `auto`: every method that can act on the plan, the verdict "
                                           "naming the one chosen without the target's labels (head only: AdaBN where "
                                           "it changes over 8%% of the answers)")
    compare.add_argument("--evaluate-on", action="append", metavar="FOLDER",
                         help="also evaluate every run on this labelled folder (e.g. the target domain's test set)")
    compare.add_argument("--margin", type=bounded(float, 0.1, 50), default=2.0, metavar="POINTS",
                         help="the verdict calls two settings as good as each other only when the 95%% interval of "
                              "their difference lies within this many accuracy points either way (default 2)")
    compare.add_argument("--background", action="store_true", help="queue the runs and return")
    compare.add_argument("--resume", metavar="SWEEP_ID", help="run a comparison's failed and cancelled runs again")
    compare.add_argument("--report", metavar="SWEEP_ID", help="print the table and write the report of a comparison")
    compare.add_argument("--out", type=path_value, help="folder for the HTML report and CSV (default: data folder/reports)")
    add_ray_arguments(compare)
    compare.set_defaults(handler=cmd_compare)

    export = commands.add_parser("export", help="a finished run as safetensors, TorchScript, ONNX and a model card")
    export.add_argument("run", help="a run id or run folder")
    export.add_argument("out", type=path_value, help="the export folder to write")
    export.add_argument("--adapted", action="store_true", help="an AdaBN run's weights adapted to its target pictures "
                                                             "(their BatchNorm statistics) instead of the best epoch's")
    export.set_defaults(handler=cmd_export)
    predict = commands.add_parser("predict", help="top-k classes for pictures, with the run's own preprocessing")
    predict.add_argument("model", help="a run id, a run folder, or an export folder")
    predict.add_argument("images", help="a picture or a folder of pictures")
    predict.add_argument("--topk", type=bounded(int, 1, 1000), default=5)
    predict.add_argument("--csv", help="write the predictions to this CSV file")
    predict.add_argument("--adapted", action="store_true", help="a run's: the AdaBN weights adapted to its target "
                                                              "pictures (for pictures of that domain)")
    predict.add_argument("--explain", action="store_true", help="texts: after each prediction, the words that made it "
                         "(each word's weight: the probability points the class loses without it)")
    predict.add_argument("--cam", help="write a Grad-CAM overlay (a file for one picture, a folder for several)")
    predict.set_defaults(handler=cmd_predict)

    freeze = commands.add_parser("freeze", help="freeze plans").add_subparsers(dest="freeze_command", required=True)
    fshow = freeze.add_parser("show", help="which groups train when, with their learning-rate scales")
    add_model_arguments(fshow)
    fshow.add_argument("--strategy", default="feature_extraction", choices=sorted(STRATEGIES))
    fshow.add_argument("--k", type=bounded(int, 0, 10_000), help="freeze_first_k: groups kept frozen (default: half)")
    fshow.add_argument("--every", type=bounded(int, 1, 1000), default=1, help="gradual: epochs between unfreezing one more group")
    fshow.add_argument("--head-epochs", type=bounded(int, 1, 1000), default=1, help="fine_tune: head-only epochs before unfreezing all")
    fshow.add_argument("--lr-spread", type=bounded(float, 1, 1e6), help="head lr / stem lr (discriminative learning rates; default 1, "
                                                       "fine_tune 10)")
    fshow.add_argument("--train-bn", action="store_true", help="update BatchNorm statistics in frozen groups")
    fshow.add_argument("--epochs", type=bounded(int, 1, 1000), default=10, help="how many epochs to show")
    fshow.set_defaults(handler=cmd_freeze_show)
    return parser
