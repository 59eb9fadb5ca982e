"""What can be checked of a run before it is queued, so a run that cannot start is refused with one line and
leaves nothing in the run list: its weights exist, its adaptation target is there, and its adaptation method
fits its model and freeze plan."""

from __future__ import annotations

import json
from dataclasses import replace

from tlcore.adapt import check_method_fits
from tlcore.adapt_spec import MIN_TARGET, NEEDS_TARGET, TRAINS_THE_BACKBONE, AdaptError, is_readable_picture, uses_adabn
from tlcore.config import RunConfig, resolve_freeze_plan
from tlcore.data import resolve_source
from tlcore.data.layout import IMAGE_SUFFIXES, walk_files
from tlcore.errors import TransferLabError
from tlcore.grid import value_at
from tlcore.schema import leaves, recommended_values
from tlcore.modality import is_text_model, is_text_source
from tlcore.models import DEFAULT_MODEL, build_model, check_weights
from tlcore.text.model import DEFAULT_TEXT_MODEL, check_text_model

__all__ = ["check_before_queueing", "model_for_the_data", "refuse_adaptation_of_texts"]


def refuse_adaptation_of_texts(config: RunConfig) -> None:
    """Domain adaptation, and the few labelled target pictures, are for pictures so far: one rule for the check
    before queueing and the one before training (before, a text run with adapt.labelled was queued, then failed).

    Args:
        config: a text run.

    Raises:
        TransferLabError: the run asks for an adaptation method or labelled target items.
    """
    asked = [f"adapt.method {config.adapt.method}" if config.adapt.method != "none" else "",
             "adapt.labelled" if config.adapt.labelled.strip() else ""]
    if any(asked):
        raise TransferLabError(f"domain adaptation ({', '.join(a for a in asked if a)}) is for pictures so far",
                               "set adapt.method to none and adapt.labelled to empty for text data")


def check_before_queueing(config: RunConfig) -> None:
    """Refuse a run that would fail at its start.

    Args:
        config: the run.

    Raises:
        TransferLabError: the model's weights are missing; the adaptation target is missing or holds fewer than
            two pictures; the method cannot act on this model (AdaBN without BatchNorm) or freeze plan (DANN or
            L2-SP when only the head trains).
    """
    config, _ = model_for_the_data(config)
    if is_text_model(config.model.name):
        check_text_model(config.model.name)
        refuse_adaptation_of_texts(config)
        return
    check_weights(config.model)
    method = config.adapt.method
    if method in NEEDS_TARGET:
        _check_target(config.adapt.target)
    if uses_adabn(method) or method in TRAINS_THE_BACKBONE:
        built = build_model(replace(config.model, weights="random"), 2, input_size=config.input_size)
        n = len(built.groups)
        plan = resolve_freeze_plan(config.freeze, n)
        check_method_fits(config.adapt, built.model, plan.trains_only_head(config.epochs, n), built.arch)


def model_for_the_data(config: RunConfig) -> tuple[RunConfig, str | None]:
    """Texts need a text model and pictures an image model (the modality comes from the data); settings at their
    picture defaults where the field declares another value for texts (`tlcore.schema.Meta.recommended`: a whole
    encoder fine-tuned at lr 1e-4 with a warm-up, not at the picture head's 3e-3) are said, not changed: a config
    holds what it says (a comparison's "lr 0.003" cell trains at 0.003), and the app sets the texts' values where the
    user picks the data and the strategy.

    Args:
        config: the run.

    Returns:
        The config, with the default text model where text data came with the default (image) model, and a note
        saying so and naming the texts' usual values where the picture defaults are kept (None when neither).

    Raises:
        TransferLabError: any other mismatch (an image model chosen for texts, a text model for pictures).
    """
    text_data, text_model = is_text_source(config.data.source), is_text_model(config.model.name)
    notes = []
    if text_data and not text_model:
        if config.model.name != DEFAULT_MODEL:
            raise TransferLabError(f"{config.data.source} holds texts, and {config.model.name} is an image model",
                                   f"use a text model such as {DEFAULT_TEXT_MODEL}")
        config = replace(config, model=replace(config.model, name=DEFAULT_TEXT_MODEL),
                         name=config.name or f"{DEFAULT_TEXT_MODEL} / {config.freeze.strategy}")
        notes.append(f"text data: the model is {DEFAULT_TEXT_MODEL} (the default text model)")
    if text_model and not text_data:
        raise TransferLabError(f"{config.model.name} is a text model, and {config.data.source} holds pictures",
                               "choose an image model, or give a CSV, TSV or JSONL file of texts")
    plain = json.loads(config.to_json())
    values = {leaf.path: value_at(plain, leaf.path) for leaf in leaves(RunConfig)}
    follow = recommended_values(RunConfig, values, "texts" if text_data else "images",
                                not config.freeze.trains_only_head(config.epochs))
    for path, (value, why) in follow.items():
        notes.append(f"warning: {path} is {values[path]:g}, the picture default; with texts and the encoder training "
                     f"the usual is {value:g} ({why})")
    return config, "; ".join(notes) or None

def _check_target(target: str) -> None:
    if not target:
        raise AdaptError("this adaptation method needs a target: a folder or zip of the other domain's pictures",
                         "set adapt.target (the Train page's 'Adapt to' folder)")
    try:
        root = resolve_source(target)
    except TransferLabError as exc:
        raise AdaptError(f"the adaptation target cannot be used: {exc.problem}", exc.hint) from None
    files = [f for f in walk_files(root) if f.suffix.lower() in IMAGE_SUFFIXES]
    if len(files) < MIN_TARGET:
        raise AdaptError(f"the adaptation target {target} holds {len(files)} picture file(s)",
                         "give a folder or zip with many pictures of the target domain (dozens at least)")
    # pictures that can be read, not only named so: read until MIN_TARGET are found, at most the first 50 files
    # (two unreadable .jpg files passed before, and 4 of 5 comparison runs then failed at their start)
    readable = 0
    for path in files[:50]:
        readable += is_readable_picture(path)
        if readable >= MIN_TARGET:
            return
    raise AdaptError(f"the adaptation target {target} has {readable} readable picture(s) among its first "
                     f"{min(50, len(files))} picture files", "check the files open as pictures (they may be damaged "
                                                             "or of another format under a picture's name)")
