"""What can be checked of a run before it is queued, so a run that cannot start is refused with one line and
leaves nothing in the run list: its weights exist, its adaptation target is there, and its adaptation method
fits its model and freeze plan."""

from __future__ import annotations

from dataclasses import replace

from tlcore.adapt import check_method_fits
from tlcore.adapt_spec import MIN_TARGET, NEEDS_TARGET, TRAINS_THE_BACKBONE, AdaptError, uses_adabn
from tlcore.config import RunConfig, resolve_freeze_plan
from tlcore.data import resolve_source
from tlcore.data.layout import IMAGE_SUFFIXES, walk_files
from tlcore.errors import TransferLabError
from tlcore.modality import is_text_model, is_text_source
from tlcore.models import DEFAULT_MODEL, build_model, check_weights
from tlcore.text.model import DEFAULT_TEXT_MODEL, check_text_model

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
    if is_text_model(config.model.name):
        check_text_model(config.model.name)
        if config.adapt.method != "none":
            raise TransferLabError(f"domain adaptation ({config.adapt.method}) is for pictures so far",
                                   "set adapt.method to none for text data")
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
    """Texts need a text model and pictures an image model (the modality comes from the data).

    Args:
        config: the run.

    Returns:
        The config, with the default text model where text data came with the default (image) model, and a
        note saying so (None when nothing changed).

    Raises:
        TransferLabError: any other mismatch (an image model chosen for texts, a text model for pictures).
    """
    text_data, text_model = is_text_source(config.data.source), is_text_model(config.model.name)
    if text_data and not text_model:
        if config.model.name != DEFAULT_MODEL:
            raise TransferLabError(f"{config.data.source} holds texts, and {config.model.name} is an image model",
                                   f"use a text model such as {DEFAULT_TEXT_MODEL}")
        changed = replace(config, model=replace(config.model, name=DEFAULT_TEXT_MODEL),
                          name=config.name or f"{DEFAULT_TEXT_MODEL} / {config.freeze.strategy}")
        return changed, f"text data: the model is {DEFAULT_TEXT_MODEL} (the default text model)"
    if text_model and not text_data:
        raise TransferLabError(f"{config.model.name} is a text model, and {config.data.source} holds pictures",
                               "choose an image model, or give a CSV, TSV or JSONL file of texts")
    return config, None


def _check_target(target: str) -> None:
    if not target:
        raise AdaptError("this adaptation method needs a target: a folder or zip of the other domain's pictures",
                         "set adapt.target (the Train page's 'Adapt to' folder)")
    try:
        root = resolve_source(target)
    except TransferLabError as exc:
        raise AdaptError(f"the adaptation target cannot be used: {exc.problem}", exc.hint) from None
    pictures = sum(1 for f in walk_files(root) if f.suffix.lower() in IMAGE_SUFFIXES)
    if pictures < MIN_TARGET:
        raise AdaptError(f"the adaptation target {target} holds {pictures} picture file(s)",
                         "give a folder or zip with many pictures of the target domain (dozens at least)")
