"""Domain adaptation: for when the pictures a model will meet differ from the ones it learns from.

Transfer learning has three kinds: feature extraction, fine-tuning, and domain adaptation,
where labelled pictures of one domain (photos) and unlabeled pictures of another (paintings,
a new camera, winter) train a model for the second. A method is plain data in the run config,
`"adapt": {"method": ..., "target": FOLDER_OR_ZIP}`, and changes one of two things:

- the loss of each step (`Objective`): cross-entropy on the labelled batch plus a term on an
  unlabeled target batch (DANN, MCC, entropy) or on the weights (L2-SP);
- the model after training (AdaBN): BatchNorm statistics measured again on the target.

The target only ever gives pictures: its sub-folder names are never read as labels, and it never
takes part in validation, early stopping or choosing the best checkpoint.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from tlcore.core.step_context import StepContext
from tlcore.spec.adapt_spec import TRAINS_THE_BACKBONE, AdaptConfig, AdaptError, uses_adabn

__all__ = ["Objective", "StepContext", "make_objective", "check_method_fits", "adabn", "statistics_of", "GradientReverse"]


# -- checks against the model and the freeze plan -----------------------------------------------------------------
def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def check_method_fits(adapt: AdaptConfig, model: nn.Module, head_only: bool, arch: str) -> None:
    """A method that cannot act on this model or this freeze plan is refused before the run, by name.

    Args:
        adapt: the run's adaptation settings.
        model: the built model.
        head_only: only the head trains in every epoch.
        arch: the architecture's name, for the message.

    Raises:
        AdaptError: the method needs what this model or plan lacks (BatchNorm for AdaBN, a trainable backbone
            for DANN).
    """
    if uses_adabn(adapt.method) and not _batchnorms(model):
        raise AdaptError(f"{adapt.method} re-measures BatchNorm statistics, but {arch} has no BatchNorm layer",
                         "choose a model with BatchNorm (EfficientNet, ResNet, VGG-BN) or another method")
    if adapt.method in TRAINS_THE_BACKBONE and head_only:
        what = "aligns the features the backbone makes" if adapt.method == "dann" else \
            "keeps the pretrained layers that train near their ImageNet values"
        raise AdaptError(f"{adapt.method} {what}, but with this freeze plan only the new head trains",
                         "unfreeze some blocks (freeze_first_k, gradual, fine_tune or full), or use mcc, entropy or "
                         "adabn, which work with feature extraction")
    if adapt.method == "dann" and not all(hasattr(model, a) for a in ("forward_features", "forward_head")):
        raise AdaptError(f"dann needs the pooled features of {arch}, which it does not expose", "use mcc or entropy")


# -- the loss of one step --------------------------------------------------------------------------------------------
class Objective:
    """Cross-entropy on the labelled batch: the loss of one step without adaptation.

    Subclasses add their term; `modules` are extra trainable parts (their parameters join the optimizer
    and their weights the resume file). What a step needs besides its batch (the unlabeled target batches, the
    share of the run done) comes in its `StepContext`; the objective keeps no state of the run.
    """

    modules: nn.ModuleList

    def __init__(self, criterion: nn.Module) -> None:
        self.criterion = criterion
        self.modules = nn.ModuleList()

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 context: StepContext | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's loss and the labelled batch's logits.

        Args:
            model: the model stepped; x, y: the labelled batch; context: the step's situation (its target batches,
                the share of the run done); None for a step without adaptation.

        Returns:
            (loss, logits).
        """
        logits = model(x)
        return self.criterion(logits.float(), y), logits

    @staticmethod
    def next_target(like: torch.Tensor, context: StepContext | None) -> torch.Tensor:
        """The next batch of target pictures, on the device of `like` and no larger than it.

        Args:
            like: the labelled batch it goes beside; context: the step's situation, holding the target batches.

        Returns:
            The target batch.

        Raises:
            AdaptError: the step was given no target batches (a bug of the caller, said rather than a TypeError).
        """
        if context is None or context.targets is None:
            raise AdaptError("an adaptation step was given no target batches", "report this as a bug")
        return next(context.targets).to(like.device, non_blocking=True)[: len(like)]

    def state_dict(self) -> dict:
        """What resuming needs of the objective: its own modules (DANN's domain classifier)."""
        return {"modules": self.modules.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Puts back what `state_dict` gave.

        Args:
            state: a `state_dict` of this objective.
        """
        if state.get("modules"):
            self.modules.load_state_dict(state["modules"])


def _source_and_target(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward over both batches, as the papers do: BatchNorm in training sees both domains."""
    logits = model(torch.cat([x, target]))
    return logits[: len(x)], logits[len(x):]


class EntropyObjective(Objective):
    def __init__(self, criterion: nn.Module, weight: float) -> None:
        super().__init__(criterion)
        self.weight = weight

    def __call__(self, model, x, y, context=None):
        logits, target_logits = _source_and_target(model, x, self.next_target(x, context))
        p = target_logits.float().softmax(1)
        entropy = -(p * torch.log(p.clamp_min(1e-8))).sum(1).mean()
        return self.criterion(logits.float(), y) + self.weight * entropy, logits


def mcc_loss(target_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Minimum Class Confusion (Jin et al. 2020): the off-diagonal mass of the class-correlation matrix of the
    target predictions, each picture weighted by its certainty."""
    n, classes = target_logits.shape
    p = (target_logits.float() / temperature).softmax(1)
    entropy = -(p * torch.log(p.clamp_min(1e-8))).sum(1).detach()
    w = 1 + torch.exp(-entropy)
    w = n * w / w.sum()
    confusion = (p * w[:, None]).T @ p
    confusion = confusion / confusion.sum(1, keepdim=True)
    return (confusion.sum() - confusion.trace()) / classes


class MCCObjective(Objective):
    def __init__(self, criterion: nn.Module, weight: float, temperature: float) -> None:
        super().__init__(criterion)
        self.weight, self.temperature = weight, temperature

    def __call__(self, model, x, y, context=None):
        logits, target_logits = _source_and_target(model, x, self.next_target(x, context))
        return self.criterion(logits.float(), y) + self.weight * mcc_loss(target_logits, self.temperature), logits


class GradientReverse(torch.autograd.Function):
    """Identity going forward; going back, the gradient times -coeff (Ganin and Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


def dann_coefficient(progress: float, gamma: float = 10.0) -> float:
    """The reversal weight rises from 0 to 1 over the run (Ganin et al.'s 2 / (1 + exp(-10 p)) - 1), so the
    domain classifier's noisy early signal does not disturb the features."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class DANNObjective(Objective):
    def __init__(self, criterion: nn.Module, weight: float, features: int, hidden: int = 1024) -> None:
        super().__init__(criterion)
        self.weight = weight
        self.modules.append(nn.Sequential(  # TLlib's DomainDiscriminator: two hidden layers with BatchNorm
            nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 1)))

    def __call__(self, model, x, y, context=None):
        both = torch.cat([x, self.next_target(x, context)])
        pooled = model.forward_head(model.forward_features(both), pre_logits=True)
        logits = model.get_classifier()(pooled[: len(x)])
        domain = self.modules[0](GradientReverse.apply(pooled, dann_coefficient(context.progress))).squeeze(1)
        is_source = torch.cat([torch.ones(len(x)), torch.zeros(len(both) - len(x))]).to(domain.device)
        domain_loss = F.binary_cross_entropy_with_logits(domain.float(), is_source)
        return self.criterion(logits.float(), y) + self.weight * domain_loss, logits


class L2SPObjective(Objective):
    def __init__(self, criterion: nn.Module, weight: float, model: nn.Module, head_names: set[str]) -> None:
        super().__init__(criterion)
        self.weight = weight
        # the starting point: the pretrained weights as built, before any step (and before a resume loads others)
        self.start = {n: p.detach().clone() for n, p in model.named_parameters() if n not in head_names}

    def __call__(self, model, x, y, context=None):
        loss, logits = super().__call__(model, x, y, context)
        if self.weight == 0:
            return loss, logits
        pull = sum(((p - self.start[n]) ** 2).sum() for n, p in model.named_parameters()
                   if p.requires_grad and n in self.start)
        return loss + self.weight / 2 * pull, logits


def make_objective(adapt: AdaptConfig, criterion: nn.Module, model: nn.Module, head_names: set[str],
                   features: int, head_only: bool = False) -> Objective:
    """The step's loss for the method (adabn acts on BatchNorm statistics: its steps are plain).

    Args:
        adapt: the run's adaptation settings.
        criterion: the supervised loss.
        model: the model being trained.
        head_names: the parameter names of the new head.
        features: the width of the backbone's pooled features (DANN's domain classifier reads them).
        head_only: only the head trains.

    Returns:
        The objective the training step calls.
    """
    w = adapt.loss_weight(head_only)
    if adapt.method in ("mcc", "adabn+mcc"):
        return MCCObjective(criterion, w, adapt.temperature)
    if adapt.method == "entropy":
        return EntropyObjective(criterion, w)
    if adapt.method == "dann":
        return DANNObjective(criterion, w, features)
    if adapt.method == "l2sp":
        return L2SPObjective(criterion, w, model, head_names)
    return Objective(criterion)


# -- after training ---------------------------------------------------------------------------------------------------
@torch.no_grad()
def adabn(model: nn.Module, batches, device: torch.device) -> int:
    """Every BatchNorm layer's statistics measured again, as a plain average over the target batches.

    The statistics start from nothing and each batch counts equally, so the result does not depend on what
    the layers held before (running it twice gives the same model). Returns the number of layers.

    Args:
        model: the model whose BatchNorm layers are measured again.
        batches: (pictures, labels) batches of the domain; labels are not used.
        device: where the model runs.

    Returns:
        The number of BatchNorm layers measured.
    """
    layers = _batchnorms(model)
    if not layers:
        raise AdaptError("adabn needs BatchNorm layers, and this model has none", "choose another method")
    model.eval()
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    for x, _ in batches:
        model(x.to(device))
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.eval()
    return len(layers)


@contextmanager
def statistics_of(model: nn.Module, batches, device: torch.device) -> Iterator[int]:
    """Within the block, every BatchNorm layer holds the statistics of these batches (`adabn`); after it, the
    statistics it held before, exactly (the weights are never touched).

    Args:
        model: the model.
        batches: (pictures, labels) batches of the domain; labels are not used.
        device: where the model runs.

    Yields:
        The number of BatchNorm layers measured.
    """
    layers = _batchnorms(model)
    kept = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
    try:
        yield adabn(model, batches, device)
    finally:
        with torch.no_grad():
            for m, (mean, var, tracked) in zip(layers, kept):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(tracked)
