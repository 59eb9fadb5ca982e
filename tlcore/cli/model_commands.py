"""`models list/rank/show` and `freeze show`: choosing a model and what of it trains."""

from __future__ import annotations

import argparse
import json
import sys

from tlcore.errors import TransferLabError

__all__ = [
    "cmd_models_list",
    "cmd_models_rank",
    "cmd_models_show",
    "cmd_freeze_show",
]


def _print_cards(cards: list) -> None:
    width = max([len(c.name) for c in cards] + [5])
    print(f"{'model':<{width}}  {'family':<26} {'params':>9}  {'input':>9}  offline weights")
    for card in cards:
        size = "x".join(str(v) for v in card.input_size[1:])
        offline = "yes" if card.offline_weights else "no (needs a weights file)"
        print(f"{card.name:<{width}}  {card.family:<26} {card.params_millions:>8.1f}M  {size:>9}  {offline}")


def cmd_models_list(args: argparse.Namespace) -> int:
    """`models list [--search TEXT]`: the recommended models, or a search of timm's pretrained ones.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.models import search

    cards = search(args.search or "", limit=args.limit)
    if not cards:
        raise TransferLabError(f"no model matches '{args.search}'", "try a shorter part of a name, e.g. 'resnet' or "
                                                                    "'vit'; `models list` shows the recommended ones")
    if not args.search:
        print("recommended models (use --search TEXT to search all of timm's pretrained models):")
    _print_cards(cards)
    return 0


def cmd_models_rank(args: argparse.Namespace) -> int:
    """`models rank`: candidate models scored on the user's pictures from frozen features.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from dataclasses import replace

    from tlcore.config import DataConfig, RunConfig
    from tlcore.experiments.rank import ModelScore, default_candidates, parse_candidates, rank_models

    if bool(args.data) == bool(args.config):
        raise TransferLabError("give the pictures to rank models on: --data FOLDER, or --config RUN.json",
                               "e.g. python -m tlcore models rank --data sample_data --models tf_efficientnet_lite0,"
                               "tf_efficientnet_lite0@random")
    base = RunConfig.load(args.config) if args.config else RunConfig(data=DataConfig(source=args.data))
    if args.input_size:
        base = replace(base, input_size=(3, args.input_size, args.input_size))
    from tlcore.modality import for_data

    modality = for_data(base.data.source)
    candidates = parse_candidates(args.models) if args.models else default_candidates(base.data.source)
    if not candidates:
        raise TransferLabError("no recommended model has weights on this machine", "name models with --models")

    def progress(done: int, total: int, score: ModelScore) -> None:
        if args.json:
            print(json.dumps(score.to_dict()), flush=True)
        else:
            print(f"[{done}/{total}] {score.candidate}: " + (score.error or f"{score.seconds:.1f} s"), flush=True)

    scores = rank_models(base, candidates, progress)
    if all(s.error for s in scores):
        raise TransferLabError(f"none of the {len(scores)} model(s) could be scored ({scores[0].candidate}: "
                               f"{scores[0].error})", "rank models with offline weights, or give their weights files")
    if args.json:
        return 0
    rate = modality.speed_unit
    print(f"\n{'rank':<4} {'model':<46} {'LogME':>7} {'probe acc':>9} {'seconds':>8} {rate:>7} {'params M':>8}")
    for i, s in enumerate(scores, 1):
        if s.error:
            print(f"{'-':<4} {s.candidate:<46} not scored: {s.error}")
            continue
        speed = "cached" if s.images_per_s is None else f"{s.images_per_s:.0f}"
        print(f"{i:<4} {s.label[:46]:<46} {s.logme:>7.3f} {s.probe_accuracy:>9.3f} {s.seconds:>8.1f} {speed:>7} "
              f"{s.params_millions:>8.1f}")
    print("LogME: how well a linear model on the frozen features explains the labels (higher is better); probe acc: "
          f"a logistic regression on the training features, scored on the validation split. {rate}: feature "
          "extraction speed here, a guide to training speed.")
    if sum(s.error is None for s in scores) < 2:
        print("only one model could be scored: add a baseline such as NAME@random, or give other models' weights")
    return 0


def _build_for_show(args: argparse.Namespace):
    """Showing groups needs no weights: without any, build randomly initialised and say so once."""
    from tlcore.modality import for_model
    from tlcore.models import ModelSpec, WeightsError

    modality = for_model(args.name)
    spec = ModelSpec(name=args.name, weights="random" if args.random_init else (args.weights or "auto"),
                     allow_download=args.download, fine_groups=args.fine)
    try:
        return modality.build(spec, args.classes)
    except WeightsError as exc:
        if args.weights:  # a file the user named must load
            raise
        print(f"note: {exc}", file=sys.stderr)
        return modality.build(ModelSpec(name=args.name, weights="random", fine_groups=args.fine), args.classes)


def _show_text_model(args: argparse.Namespace) -> int:
    from tlcore.text.model import text_facts

    facts = text_facts(args.name)
    built = _build_for_show(args)
    print(f"{facts.name}  (text encoder: {facts.layers} transformer layers, hidden size {facts.hidden}, "
          f"{facts.params / 1e6:.1f}M parameters)")
    print(f"weights: {facts.weights}")
    print(f"input: at most {facts.max_length} tokens per text (runs use {built.max_length}); vocabulary "
          f"{facts.vocabulary:,} word pieces; mean pooling over the tokens, then the new head")
    print(f"layer groups, embeddings to head ({len(built.groups)}):")
    width = max(len(g.name) for g in built.groups)
    for g in built.groups:
        print(f"  {g.index:>2}  {g.name:<{width}}  {g.role:<4}  {g.params:>12,}")
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    """`models show NAME`: a model's facts and its layer groups, stem to head.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.modality import for_model

    shown = _SHOW.get(for_model(args.name).key)
    if shown is not None:  # a kind of model with facts of its own
        return shown(args)
    return _show_picture_model(args)


def _show_picture_model(args: argparse.Namespace) -> int:
    from tlcore.models import model_card

    card = model_card(args.name)
    built = _build_for_show(args)
    p = built.preprocessing
    print(f"{built.label}  ({card.family}, {card.params_millions:.1f}M parameters with the ImageNet head)")
    print(f"weights: {built.weights.description}")
    print(f"input: {'x'.join(map(str, p.input_size))}, {p.interpolation}, crop {p.crop_pct}, mean {p.mean}, std {p.std}")
    print(f"layer groups, stem to head ({len(built.groups)}):")
    width = max(len(g.name) for g in built.groups)
    for g in built.groups:
        shape = "x".join(map(str, g.output_shape)) if g.output_shape else "?"
        print(f"  {g.index:>2}  {g.name:<{width}}  {g.role:<4}  {g.params:>12,}  -> {shape}")
    return 0


_SHOW = {"texts": _show_text_model}  # models show, per kind of model other than timm's


def cmd_freeze_show(args: argparse.Namespace) -> int:
    """`freeze show NAME --strategy S`: which groups train in which epoch, with their lr scales.

    Args:
        args: the command's parsed options (see `parser`).

    Returns:
        The exit status: 0 done, `EXIT_USER_ERROR` when the work did not succeed.
    """
    from tlcore.core.strategies import strategy_sentence
    from tlcore.modality import of_built
    from tlcore.spec.freeze import make_plan, summarize

    built = _build_for_show(args)
    plan = make_plan(args.strategy, len(built.groups), k=args.k, every=args.every, head_epochs=args.head_epochs,
                     lr_spread=args.lr_spread, train_bn=args.train_bn)
    kind = of_built(built)
    print(f"{built.label}: {args.strategy}. "
          f"{strategy_sentence(args.strategy, kind.early_features_words, kind.first_group_words)}")
    if kind.normalisation_words:
        print(f"BatchNorm in frozen groups: {'updated' if plan.train_bn else 'kept at ' + kind.normalisation_words}")
    for stage in plan.stages:
        if stage.epoch < args.epochs:
            print(f"\nfrom epoch {stage.epoch}:")
            print(summarize(built.groups, plan, stage.epoch, horizon=args.epochs).table())
    print(f"\nplan as JSON (a run config's freeze): {json.dumps({**plan.to_dict(), 'strategy': 'custom'})}")
    return 0
