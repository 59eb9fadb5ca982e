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

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from tlcore.data import ImageReadError, decode_image, resolve_source
from tlcore.data.images import read_picture_file
from tlcore.data.layout import IMAGE_SUFFIXES, walk_files
from tlcore.errors import TransferLabError

__all__ = ["METHODS", "DEFAULT_WEIGHTS", "HEAD_ONLY_WEIGHTS", "AdaptConfig", "AdaptError", "TargetSet", "Objective", "check_adapt",
           "scan_target", "make_objective", "check_method_fits", "adabn", "uses_adabn", "GradientReverse"]

# One sentence per method, for the UI and the CLI.
METHODS = {
    "none": "No adaptation: the model learns from the labelled pictures only.",
    "adabn": "Each domain is normalised by its own BatchNorm statistics (AdaBN, Li et al. 2016): the source's while "
             "training, the target's when classifying target pictures; no labels, no extra training; for models with "
             "BatchNorm.",
    "dann": "A domain classifier learns to tell source features from target features while a gradient-reversal "
            "layer trains the backbone to make them indistinguishable (DANN, Ganin and Lempitsky 2015).",
    "l2sp": "The fine-tuned layers are pulled towards their pretrained values, so they keep what transfers "
            "(L2-SP, Li et al. 2018); needs no target pictures.",
    "mcc": "Predictions on the target pictures are pushed to be confident without confusing classes with each other "
           "(Minimum Class Confusion, Jin et al. 2020).",
    "entropy": "Predictions on the target pictures are pushed to be confident (entropy minimisation, Grandvalet and "
               "Bengio 2005).",
    "adabn+mcc": "AdaBN and MCC together: each domain normalised by its own BatchNorm statistics, and the "
                 "predictions on the target pictures kept confident and distinct.",
}
NEEDS_TARGET = ("adabn", "dann", "mcc", "entropy", "adabn+mcc")
TRAINS_THE_BACKBONE = ("dann", "l2sp")  # nothing to do when only the new head trains
DEFAULT_WEIGHTS = {"dann": 1.0, "mcc": 1.0, "entropy": 0.1, "l2sp": 0.01, "adabn+mcc": 1.0}  # papers' and TLlib's
# With a frozen backbone only the head can move, over few steps: MCC needs a larger share of the loss to act
# (bench/domain_shift.py, head-only on the chalk shapes: weight 1 +0 points, 3 +2.5, 10 +7; the other way +5 at both).
HEAD_ONLY_WEIGHTS = {"mcc": 10.0, "adabn+mcc": 10.0}
MIN_TARGET = 2


class AdaptError(TransferLabError):
    """An adaptation setting that cannot be used (unknown method, a target that cannot be read, a misfit)."""


def uses_adabn(method: str) -> bool:
    """Source statistics while training, each domain's own statistics when classifying it.

    Args:
        method: an `adapt.method` name, e.g. "adabn" or "adabn+mcc".

    Returns:
        True when the method uses AdaBN's statistics.
    """
    return method in ("adabn", "adabn+mcc")


@dataclass(frozen=True)
class AdaptConfig:
    """The run's domain adaptation: method, target pictures, loss weight (plain data, part of the run config)."""
    method: str = "none"
    target: str = ""  # a folder or zip of target pictures; sub-folder names are ignored
    weight: float | None = None  # the method's loss weight (l2sp: its strength); None: DEFAULT_WEIGHTS
    temperature: float = 2.5  # mcc: softens the target predictions (Jin et al.)
    max_target: int = 5000  # at most this many target pictures are used (drawn evenly, in file order)

    def loss_weight(self, head_only: bool = False) -> float:
        """The weight given, or the method's default (for some methods, another one when only the head trains)."""
        if self.weight is not None:
            return self.weight
        return (head_only and HEAD_ONLY_WEIGHTS.get(self.method)) or DEFAULT_WEIGHTS.get(self.method, 0.0)


def check_adapt(adapt: AdaptConfig) -> None:
    """What can be checked without the model: the method, its target and its numbers.

    Args:
        adapt: the run's adaptation settings.

    Raises:
        AdaptError: an unknown method, a method without its target pictures, or a number out of range.
    """
    if adapt.method not in METHODS:
        raise AdaptError(f"invalid adapt.method: {adapt.method!r}", f"use one of {', '.join(METHODS)}")
    if adapt.method in NEEDS_TARGET and not adapt.target.strip():
        raise AdaptError(f"adapt.method {adapt.method} needs target pictures",
                         "set adapt.target to a folder or zip of pictures from the domain the model will meet")
    if adapt.weight is not None and not 0 <= adapt.weight <= 100:
        raise AdaptError(f"invalid adapt.weight: {adapt.weight!r}", "use 0 to 100 (empty: the method's default)")
    if not 0 < adapt.temperature <= 100:
        raise AdaptError(f"invalid adapt.temperature: {adapt.temperature!r}", "use a positive number, e.g. 2.5")
    if not MIN_TARGET <= adapt.max_target <= 1_000_000:
        raise AdaptError(f"invalid adapt.max_target: {adapt.max_target!r}", "use 2 or more, e.g. 5000")


# -- the target pictures -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetSet:
    """The readable target pictures of an adaptation, in file order, with their hashes and how many were skipped."""
    root: str
    paths: list[Path]  # readable pictures, in file order
    sha256: list[str]
    skipped: int

    def items(self) -> list[tuple[Path, int]]:
        """As a data set's items: every label 0, which nothing reads (the target has no labels)."""
        return [(p, 0) for p in self.paths]


def scan_target(source: str, max_pictures: int = 5000) -> TargetSet:
    """Every readable picture under a folder (or zip), at any depth; folder names are not labels.

    Raises `AdaptError` when fewer than two pictures can be read.

    Args:
        source: the target folder or zip.
        max_pictures: at most this many pictures are used (spread evenly over the folders, the same every time).

    Returns:
        The target pictures' paths and hashes.
    """
    root = resolve_source(source)
    files = walk_files(root)
    candidates = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    if len(candidates) > max_pictures:  # evenly spread over the folders, the same every time
        step = len(candidates) / max_pictures
        candidates = [candidates[int(i * step)] for i in range(max_pictures)]
    paths, digests = [], []
    for path in candidates:
        try:
            data = read_picture_file(path)
            decode_image(data, draft=1)
        except ImageReadError:
            continue
        paths.append(path)
        digests.append(hashlib.sha256(data).hexdigest())
    if len(paths) < MIN_TARGET:
        found = "no readable picture" if not paths else "only one readable picture"
        raise AdaptError(f"the adaptation target {source} has {found} ({len(files)} file(s) in all)",
                         "give a folder or zip with many pictures of the target domain (dozens at least)")
    return TargetSet(str(root), paths, digests, len(candidates) - len(paths))


# -- checks against the model and the freeze plan -----------------------------------------------------------------
def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


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
    and their weights the resume file), `targets` the stream of unlabeled target batches.
    """

    modules: nn.ModuleList

    def __init__(self, criterion: nn.Module) -> None:
        self.criterion = criterion
        self.modules = nn.ModuleList()
        self.targets: Iterator[torch.Tensor] | None = None
        self.progress = 0.0  # share of the run's steps done, 0 to 1

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return self.criterion(logits.float(), y), logits

    def next_target(self, like: torch.Tensor) -> torch.Tensor:
        return next(self.targets).to(like.device, non_blocking=True)[: len(like)]

    def state_dict(self) -> dict:
        return {"modules": self.modules.state_dict()}

    def load_state_dict(self, state: dict) -> None:
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

    def __call__(self, model, x, y):
        logits, target_logits = _source_and_target(model, x, self.next_target(x))
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

    def __call__(self, model, x, y):
        logits, target_logits = _source_and_target(model, x, self.next_target(x))
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

    def __call__(self, model, x, y):
        both = torch.cat([x, self.next_target(x)])
        pooled = model.forward_head(model.forward_features(both), pre_logits=True)
        logits = model.get_classifier()(pooled[: len(x)])
        domain = self.modules[0](GradientReverse.apply(pooled, dann_coefficient(self.progress))).squeeze(1)
        is_source = torch.cat([torch.ones(len(x)), torch.zeros(len(both) - len(x))]).to(domain.device)
        domain_loss = F.binary_cross_entropy_with_logits(domain.float(), is_source)
        return self.criterion(logits.float(), y) + self.weight * domain_loss, logits


class L2SPObjective(Objective):
    def __init__(self, criterion: nn.Module, weight: float, model: nn.Module, head_names: set[str]) -> None:
        super().__init__(criterion)
        self.weight = weight
        # the starting point: the pretrained weights as built, before any step (and before a resume loads others)
        self.start = {n: p.detach().clone() for n, p in model.named_parameters() if n not in head_names}

    def __call__(self, model, x, y):
        loss, logits = super().__call__(model, x, y)
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
