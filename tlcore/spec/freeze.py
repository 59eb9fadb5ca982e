"""Freeze plans: which layer groups train in which epoch, and at what learning rate.

A plan is plain data (it goes into the run config and replays from the CLI). Group
indexes follow fastai's `freeze_to`: a stage's `trainable_from` is the first group
that trains, negative counts from the head (-1 = head only), 0 = everything.
The optimizer holds every group from the start; a plan only flips `requires_grad`
(and BatchNorm's mode), so gradual unfreezing and resume never rebuild it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from tlcore.errors import TransferLabError
from tlcore.core.strategies import STRATEGIES
from tlcore.core.typed import typed
from tlcore.models.groups import LayerGroup

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "STRATEGIES",
    "FINE_TUNE_LR_SPREAD",
    "FreezePlan",
    "GroupState",
    "PlanSummary",
    "Stage",
    "apply_plan",
    "default_lr_spread",
    "make_plan",
    "optimizer_param_groups",
    "set_train_mode",
    "summarize",
]

# One sentence per strategy on what it trades off; the UI and CLI show these.


class FreezePlanError(TransferLabError):
    pass


@dataclass(frozen=True)
class Stage:
    """From `epoch` on, the groups from `trainable_from` to the head train."""
    epoch: int  # from this epoch on (0-based)
    trainable_from: int  # first trainable group; negative counts from the head


@dataclass(frozen=True)
class FreezePlan:
    """Which layer groups train in which epoch, and at what learning-rate scale: a named strategy or explicit
    stages, plain data matched against any model's ordered layer groups."""
    strategy: str = "custom"  # a plan written as stages needs no strategy name
    stages: tuple[Stage, ...] = (Stage(0, -1),)
    lr_spread: float = 1.0  # head lr / stem lr, geometric in between; 1 = one learning rate everywhere
    lr_scales: tuple[float, ...] | None = None  # explicit per-group scales, stem to head (overrides lr_spread)
    train_bn: bool = False  # update BatchNorm statistics in frozen groups (default: keep ImageNet's)

    def __post_init__(self) -> None:
        if not self.stages or self.stages[0].epoch != 0:
            raise FreezePlanError("a freeze plan must start with a stage at epoch 0", "add a stage for epoch 0")
        epochs = [s.epoch for s in self.stages]
        if epochs != sorted(set(epochs)):
            raise FreezePlanError(f"freeze plan stage epochs {epochs} must be increasing", "sort the stages by epoch")
        if self.lr_spread < 1.0:
            raise FreezePlanError(f"lr_spread {self.lr_spread} is below 1",
                                  "use 1 for one learning rate, or e.g. 10 for a first group 10x slower than the head")

    # -- resolution against a model's groups ----------------------------------------------------
    def trainable_from(self, epoch: int, n_groups: int) -> int:
        """The first group that trains in this epoch (those before it stay frozen).

        Args:
            epoch: 0-based epoch.
            n_groups: the model's number of layer groups.

        Raises:
            FreezePlanError: the plan names a group the model does not have.
        """
        stage = [s for s in self.stages if s.epoch <= epoch][-1]
        index = stage.trainable_from + n_groups if stage.trainable_from < 0 else stage.trainable_from
        if not 0 <= index < n_groups:
            raise FreezePlanError(
                f"freeze plan stage at epoch {stage.epoch} starts training at group {stage.trainable_from}, "
                f"but the model has {n_groups} groups",
                f"use a group between {-n_groups} and {n_groups - 1}",
            )
        return index

    def trains_only_head(self, epochs: int, n_groups: int) -> bool:
        """The one definition of "head only": in every epoch of the run, only the last group (the new head) trains.

        Args:
            epochs: the run's epochs.
            n_groups: the model's number of layer groups.

        Returns:
            True when no backbone group trains within `epochs`.

        Raises:
            FreezePlanError: the plan names a group the model does not have.
        """
        return all(self.trainable_from(epoch, n_groups) == n_groups - 1 for epoch in range(epochs))

    def trainable_mask(self, epoch: int, n_groups: int) -> list[bool]:
        """Per group, stem to head, whether it trains in this epoch.

        Args:
            epoch: 0-based epoch.
            n_groups: the model's number of layer groups.
        """
        start = self.trainable_from(epoch, n_groups)
        return [i >= start for i in range(n_groups)]

    def scales(self, n_groups: int) -> list[float]:
        """Each group's learning-rate scale, stem to head (discriminative learning rates; 1.0 for all by default).

        Args:
            n_groups: the model's number of layer groups.

        Raises:
            FreezePlanError: given scales do not match the groups.
        """
        if self.lr_scales is not None:
            if len(self.lr_scales) != n_groups:
                raise FreezePlanError(f"{len(self.lr_scales)} learning-rate scales for {n_groups} groups",
                                      "give one scale per group, stem to head")
            return list(self.lr_scales)
        if n_groups == 1:
            return [1.0]
        return [self.lr_spread ** -((n_groups - 1 - i) / (n_groups - 1)) for i in range(n_groups)]

    # -- plain data -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """As the run config stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FreezePlan":
        """A full plan from a run config's `freeze` mapping with `stages`.

        Args:
            data: the mapping.

        Raises:
            FreezePlanError: a malformed plan, named by field.
        """
        return typed(cls, data, "the freeze plan", FreezePlanError)


FINE_TUNE_LR_SPREAD = 10.0  # fine_tune's stem learns 10x slower than its head; measured: bench/fine_tune_spread.py


def default_lr_spread(strategy: str) -> float:
    """The lr spread a strategy uses when none is given: fine_tune's recipe spreads, the others do not."""
    return FINE_TUNE_LR_SPREAD if strategy == "fine_tune" else 1.0


def make_plan(strategy: str, n_groups: int, *, k: int | None = None, every: int = 1, head_epochs: int = 1,
              lr_spread: float | None = None, train_bn: bool = False) -> FreezePlan:
    """A named strategy as a plan for a model with `n_groups` layer groups (stem first, the new head last).

    Args:
        strategy: one of `STRATEGIES`: feature_extraction, freeze_first_k, full, gradual, fine_tune.
        n_groups: `len(built.groups)` of the model the plan is for.
        k: freeze_first_k: groups kept frozen (default: half).
        every: gradual: epochs between unfreezing one more group, head to stem.
        head_epochs: fine_tune: head-only epochs before everything unfreezes.
        lr_spread: head lr / stem lr, geometric in between (1: one learning rate). Default: 1, except
            fine_tune, whose recipe is lower rates for earlier groups.
        train_bn: update BatchNorm statistics in frozen groups (default: keep ImageNet's).

    Returns a `FreezePlan` (plain data: stages, lr scales). Raises `FreezePlanError` for impossible settings.
    """
    if strategy == "feature_extraction":
        stages = (Stage(0, -1),)
    elif strategy == "full":
        stages = (Stage(0, 0),)
    elif strategy == "freeze_first_k":
        k = n_groups // 2 if k is None else k
        if not 0 <= k < n_groups:
            raise FreezePlanError(f"cannot freeze the first {k} of {n_groups} groups",
                                  f"choose k from 0 (train all) to {n_groups - 1} (head only)")
        stages = (Stage(0, k),)
    elif strategy == "gradual":
        if every < 1:
            raise FreezePlanError(f"unfreezing every {every} epochs is not possible", "use 1 or more")
        stages = tuple(Stage(i * every, -(i + 1)) for i in range(n_groups))
    elif strategy == "fine_tune":
        if head_epochs < 1:
            raise FreezePlanError(f"{head_epochs} head-only epochs", "use 1 or more (0 is the 'full' strategy)")
        stages = (Stage(0, -1), Stage(head_epochs, 0))
    else:
        raise FreezePlanError(f"unknown freeze strategy '{strategy}'", f"choose one of {', '.join(STRATEGIES)}")
    spread = default_lr_spread(strategy) if lr_spread is None else lr_spread
    return FreezePlan(strategy=strategy, stages=stages, lr_spread=spread, train_bn=train_bn)


# -- applying a plan ------------------------------------------------------------------------------
def _check_cover(model: nn.Module, groups: list[LayerGroup]) -> dict[str, int]:
    index = {name: g.index for g in groups for name in g.param_names}
    missing = [n for n, _ in model.named_parameters() if n not in index]
    if missing:
        raise FreezePlanError(f"{len(missing)} parameters belong to no layer group (first: {missing[0]})",
                              "rebuild the layer groups for this model")
    return index


def apply_plan(model: nn.Module, groups: list[LayerGroup], plan: FreezePlan, epoch: int) -> list[bool]:
    """Set `requires_grad` for `epoch`; returns which groups train. Call `set_train_mode` after `model.train()`.

    Args:
        model: the model.
        groups: its layer groups, stem to head.
        plan: the freeze plan.
        epoch: the epoch (from 0).

    Returns:
        One flag per group: True where it trains.
    """
    mask = plan.trainable_mask(epoch, len(groups))
    owner = _check_cover(model, groups)
    for name, param in model.named_parameters():
        param.requires_grad_(mask[owner[name]])
    return mask


def set_train_mode(model: nn.Module, groups: list[LayerGroup], plan: FreezePlan, epoch: int) -> None:
    """`model.train()`, except in frozen groups: dropout and stochastic depth are off there (a frozen block computes
    what it computes at inference, as the fast path's cached features do), and BatchNorm keeps its pretrained
    statistics (unless `train_bn`).

    Args:
        model: the model.
        groups: its layer groups.
        plan: the freeze plan.
        epoch: the epoch (from 0).
    """
    from torch import nn
    model.train()
    mask = plan.trainable_mask(epoch, len(groups))
    owner = _check_cover(model, groups)
    for module in model.modules():  # whole frozen blocks in inference mode: dropout, attention dropout, drop path
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
    if plan.train_bn:  # BatchNorm statistics in frozen groups are updated, as asked
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()
        return
    for module_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = [f"{module_name}.{p}" for p, _ in module.named_parameters(recurse=False)]
            if params and not any(mask[owner[p]] for p in params):
                module.eval()


def optimizer_param_groups(model: nn.Module, groups: list[LayerGroup], plan: FreezePlan, base_lr: float,
                           weight_decay: float) -> list[dict]:
    """Every parameter, frozen or not, in optimizer groups per layer group with its planned learning rate.

    Weight decay skips biases and norm weights (1-d tensors) and whatever the model lists in timm's
    `no_weight_decay()` (a ViT's cls_token and pos_embed): decaying them only hurts.

    Args:
        model: the model.
        groups: its layer groups.
        plan: the freeze plan (its learning-rate scales).
        base_lr: the head's learning rate.
        weight_decay: the weight decay of the parameters that take it.

    Returns:
        Parameter groups for a torch optimizer, each with its "lr" and "weight_decay".
    """
    params = dict(model.named_parameters())
    _check_cover(model, groups)
    scales = plan.scales(len(groups))
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decays = {n: p.ndim > 1 and n not in skip for n, p in params.items()}
    result = []
    for group, scale in zip(groups, scales):
        decay = [params[n] for n in group.param_names if decays[n]]
        no_decay = [params[n] for n in group.param_names if not decays[n]]
        for tensors, wd, kind in ((decay, weight_decay, "decay"), (no_decay, 0.0, "no_decay")):
            if tensors:
                result.append({"params": tensors, "lr": base_lr * scale, "weight_decay": wd,
                               "lr_scale": scale, "group": group.name, "group_index": group.index, "kind": kind})
    return result


# -- summaries for people -------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupState:
    """One layer group in a plan's summary: its size, whether it trains, its learning-rate scale, when it unfreezes."""
    index: int
    name: str
    role: str
    params: int
    trainable: bool
    lr_scale: float
    unfreezes_at: int | None  # first epoch this group trains, None if never within the horizon


@dataclass(frozen=True)
class PlanSummary:
    """A plan applied to a model's groups at one epoch (for the Freeze page and `freeze show`)."""
    epoch: int
    groups: list[GroupState] = field(default_factory=list)

    @property
    def trainable_params(self) -> int:
        """Parameters that train in the summarised epoch."""
        return sum(g.params for g in self.groups if g.trainable)

    @property
    def total_params(self) -> int:
        """Parameters of the whole model."""
        return sum(g.params for g in self.groups)

    @property
    def trainable_share(self) -> float:
        """The share of the parameters that train (0 for an empty model)."""
        return self.trainable_params / self.total_params if self.total_params else 0.0

    def table(self) -> str:
        """The plan as a text table, stem to head: parameters, frozen or training, learning-rate scale, when each group unfreezes."""
        width = max(len(g.name) for g in self.groups)
        lines = [f"  {'#':>2}  {'group':<{width}}  {'params':>12}  {'epoch ' + str(self.epoch):>9}  {'lr scale':>8}  unfreezes at"]
        for g in self.groups:
            state = "train" if g.trainable else "frozen"
            when = "-" if g.unfreezes_at is None else f"epoch {g.unfreezes_at}"
            lines.append(f"  {g.index:>2}  {g.name:<{width}}  {g.params:>12,}  {state:>9}  {g.lr_scale:>8.3g}  {when}")
        lines.append(f"  trainable {self.trainable_params:,} of {self.total_params:,} parameters "
                     f"({self.trainable_share:.2%})")
        return "\n".join(lines)


def summarize(groups: list[LayerGroup], plan: FreezePlan, epoch: int = 0, *, horizon: int = 100) -> PlanSummary:
    """The plan applied to these groups at one epoch.

    Args:
        groups: the model's layer groups; plan: the freeze plan; epoch: which epoch (0-based);
        horizon: epochs to look ahead for when each group unfreezes.

    Returns:
        The `PlanSummary`.
    """
    n = len(groups)
    scales = plan.scales(n)
    mask = plan.trainable_mask(epoch, n)
    starts = [plan.trainable_from(s.epoch, n) for s in plan.stages if s.epoch < horizon]
    stage_epochs = [s.epoch for s in plan.stages if s.epoch < horizon]

    def unfreezes_at(i: int) -> int | None:
        return next((e for e, start in zip(stage_epochs, starts) if i >= start), None)

    return PlanSummary(epoch=epoch, groups=[
        GroupState(g.index, g.name, g.role, g.params, mask[i], scales[i], unfreezes_at(i)) for i, g in enumerate(groups)
    ])
