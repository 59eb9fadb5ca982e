"""What can be checked of a run before it is queued, so a run that cannot start is refused with one line and
leaves nothing in the run list: its weights exist, its adaptation target is there, and its adaptation method
fits its model and freeze plan."""

from __future__ import annotations

import json
from dataclasses import replace

from tlcore.adaptation.adapt import check_method_fits
from tlcore.spec.adapt_spec import MIN_TARGET, NEEDS_TARGET, TRAINS_THE_BACKBONE, AdaptError, is_readable_picture, uses_adabn
from tlcore.config import RunConfig, resolve_freeze_plan
from tlcore.data import resolve_source
from tlcore.data.layout import IMAGE_SUFFIXES, walk_files
from tlcore.errors import TransferLabError
from tlcore.core.schema import value_at
from tlcore.core.schema import leaves, recommended_values
from tlcore.modality import for_data, of_config
from tlcore.models import DEFAULT_MODEL

__all__ = ["check_before_queueing", "model_for_the_data"]


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
    modality = of_config(config)
    modality.check_run(config)  # texts: no adaptation
    modality.check_model(config.model)
    method = config.adapt.method
    if method in NEEDS_TARGET:
        _check_target(config.adapt.target)
    if uses_adabn(method) or method in TRAINS_THE_BACKBONE:
        built = modality.build(replace(config.model, weights="random"), 2, input_size=config.input_size)
        n = len(built.groups)
        plan = resolve_freeze_plan(config.freeze, n)
        check_method_fits(config.adapt, built.model, plan.trains_only_head(config.epochs, n), built.arch)


def model_for_the_data(config: RunConfig) -> tuple[RunConfig, str | None]:
    """Texts need a text model and pictures an image model (the modality comes from the data); settings at their
    picture defaults where the field declares another value for texts (`tlcore.core.schema.Meta.recommended`: a whole
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
    data_kind, model_kind = for_data(config.data.source), of_config(config)
    notes = []
    if data_kind is not model_kind:
        if config.model.name != DEFAULT_MODEL or not data_kind.default_model:
            raise TransferLabError(f"{config.data.source} holds {data_kind.items_word}, and {config.model.name} is a "
                                   f"model for {model_kind.items_word}",
                                   f"use a model for {data_kind.items_word}, such as {data_kind.default_model}, "
                                   f"or give {model_kind.data_words}")
        # the default model is the pictures' default: data of another kind gets that kind's default model
        model = data_kind.default_model
        config = replace(config, model=replace(config.model, name=model),
                         name=config.name or f"{model} / {config.freeze.strategy}")
        notes.append(f"{data_kind.item_word} data: the model is {model} (the default {data_kind.item_word} model)")
    plain = json.loads(config.to_json())
    values = {leaf.path: value_at(plain, leaf.path) for leaf in leaves(RunConfig)}
    follow = recommended_values(RunConfig, values, data_kind.key,
                                not config.freeze.trains_only_head(config.epochs))
    for path, (value, why) in follow.items():
        notes.append(f"warning: {path} is {values[path]:g}, the picture default; with {data_kind.items_word} and the "
                     "encoder training "
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
