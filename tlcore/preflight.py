"""What can be checked of a run before it is queued, so a run that cannot start is refused with one line and
leaves nothing in the run list: its weights exist, its adaptation target is there, and its adaptation method
fits its model and freeze plan."""

from __future__ import annotations

from dataclasses import replace

from tlcore.adapt import MIN_TARGET, NEEDS_TARGET, TRAINS_THE_BACKBONE, AdaptError, check_method_fits, uses_adabn
from tlcore.config import RunConfig, resolve_freeze_plan
from tlcore.data import resolve_source
from tlcore.data.layout import IMAGE_SUFFIXES, walk_files
from tlcore.errors import TransferLabError
from tlcore.models import build_model, check_weights

__all__ = ["check_before_queueing"]


def check_before_queueing(config: RunConfig) -> None:
    """Refuse a run that would fail at its start.

    Args:
        config: the run.

    Raises:
        TransferLabError: the model's weights are missing; the adaptation target is missing or holds fewer than
            two pictures; the method cannot act on this model (AdaBN without BatchNorm) or freeze plan (DANN or
            L2-SP when only the head trains).
    """
    check_weights(config.model)
    method = config.adapt.method
    if method in NEEDS_TARGET:
        _check_target(config.adapt.target)
    if uses_adabn(method) or method in TRAINS_THE_BACKBONE:
        built = build_model(replace(config.model, weights="random"), 2, input_size=config.input_size)
        n = len(built.groups)
        plan = resolve_freeze_plan(config.freeze, n)
        head_only = all(plan.trainable_from(e, n) == n - 1 for e in range(config.epochs))
        check_method_fits(config.adapt, built.model, head_only, built.arch)


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
