"""Which pretrained model suits my pictures? A ranking in seconds, before any training.

Each candidate's frozen backbone turns the training and validation pictures into features once
(the same cached features the feature-extraction fast path reads later). Two scores follow:
LogME (You et al., ICML 2021), the log marginal evidence of a Bayesian linear model on the
features, averaged over classes (higher: the classes are easier to tell apart linearly); and the
validation accuracy of a logistic-regression probe trained on the training features. Neither
needs a training run; both tend to follow the accuracy after fine-tuning.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from tlcore.config import FreezeConfig, RunConfig
from tlcore.errors import TransferLabError
from tlcore.models import ModelSpec

__all__ = ["ModelScore", "logme", "probe_accuracy", "score_model", "rank_models", "ranked", "parse_candidates",
           "default_candidates", "RANDOM_SUFFIX"]

RANDOM_SUFFIX = "@random"  # `resnet50@random`: the same architecture without pretrained weights (a baseline)


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of features (N x D) for integer labels: mean over classes of the per-sample log evidence of a
    Bayesian linear regression onto the class's one-hot column, with its priors fitted by evidence maximisation
    (the fixed-point iteration of You et al. 2021)."""
    f = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    n, d = f.shape
    if n < 2 or len(np.unique(labels)) < 2:
        raise ValueError("LogME needs at least two pictures of at least two classes")
    s, v = np.linalg.eigh(f.T @ f)  # F^T F = V diag(s) V^T
    s = np.clip(s, 0, None)
    evidences = []
    for k in np.unique(labels):
        y = (labels == k).astype(np.float64)
        projected = v.T @ (f.T @ y)
        alpha, beta, eps = 1.0, 1.0, 1e-5
        lam = alpha / beta
        for _ in range(11):  # converges in two or three steps in practice
            gamma = (s / (s + lam)).sum()
            m = v @ (projected * beta / (alpha + beta * s))
            alpha_de = float((m * m).sum())
            alpha = gamma / (alpha_de + eps)
            beta_de = float(((y - f @ m) ** 2).sum())
            beta = (n - gamma) / (beta_de + eps)
            new_lam = alpha / beta
            if abs(new_lam - lam) / lam < 0.01:
                break
            lam = new_lam
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * np.log(alpha + beta * s).sum()
                    - beta / 2 * (beta_de + eps) - alpha / 2 * (alpha_de + eps) - n / 2 * math.log(2 * math.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def probe_accuracy(train: torch.Tensor, train_labels: torch.Tensor, val: torch.Tensor, val_labels: torch.Tensor,
                   weight_decay: float = 1e-3, steps: int = 100) -> float:
    """Validation accuracy of a logistic regression on standardised features (full-batch L-BFGS, seeded).

    Args:
        train: training features, one row per picture.
        train_labels: their class indexes.
        val: validation features.
        val_labels: their class indexes.
        weight_decay: the L2 penalty.
        steps: L-BFGS iterations.

    Returns:
        The accuracy on `val`.
    """
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    x, xv = (train - mean) / std, (val - mean) / std
    classes = int(max(train_labels.max(), val_labels.max())) + 1
    torch.manual_seed(0)
    layer = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(x), train_labels) + weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float((layer(xv).argmax(1) == val_labels).float().mean())


@dataclass(frozen=True)
class ModelScore:
    """One candidate model's score on the user's data: LogME, linear-probe accuracy, time and speed."""
    candidate: str  # as asked, e.g. "resnet50" or "resnet50@random"
    label: str  # the built model's name, random weights said out loud
    logme: float | None
    probe_accuracy: float | None
    seconds: float  # building the model and getting its features (0-ish when cached)
    features_from_cache: bool
    images_per_s: float | None  # forward passes per second when the features were computed (None: cached)
    params_millions: float | None
    error: str | None = None  # why this candidate could not be scored

    def to_dict(self) -> dict:
        """The score as plain data (kept with the experiment)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def parse_candidates(text: str) -> list[str]:
    """The candidate models of a comma-separated list, each once, in order.

    Args:
        text: e.g. "tf_efficientnet_lite0,resnet50".

    Returns:
        The names.

    Raises:
        TransferLabError: the list is empty.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise TransferLabError("no models to rank", "e.g. --models tf_efficientnet_lite0,resnet50")
    return list(dict.fromkeys(names))


def _spec(base: ModelSpec, candidate: str) -> ModelSpec:
    name, random = candidate.removesuffix(RANDOM_SUFFIX), candidate.endswith(RANDOM_SUFFIX)
    return replace(base, name=name, weights="random" if random else "auto")


def score_model(base: RunConfig, candidate: str) -> ModelScore:
    """Features of the base's training and validation pictures (cached), then LogME and the probe.

    Args:
        base: the run config whose data and split are used.
        candidate: a timm name, or NAME@random for the architecture without pretrained weights.

    Returns:
        The score, or the reason it could not be computed.
    """
    from tlcore.training.features import cached_features
    from tlcore.training.preflight import model_for_the_data
    from tlcore.training.prepare import prepare
    from tlcore.training.steps import make_loader

    start = time.perf_counter()
    try:
        config, _ = model_for_the_data(replace(base, model=_spec(base.model, candidate),
                                               freeze=FreezeConfig("feature_extraction"),
                                               adapt=replace(base.adapt, method="none")))
        prep = prepare(config)
    except TransferLabError as exc:
        return ModelScore(candidate, candidate, None, None, time.perf_counter() - start, False, None, None, str(exc))
    built = prep.built
    features, labels, hits, counted = {}, {}, [], 0
    computed_s = 0.0
    for split in ("train", "val"):
        loader = make_loader(prep, split, training=False)
        hashes = prep.modality.feature_keys(prep, split)
        t0 = time.perf_counter()
        features[split], hit = cached_features(built.model, built, loader, hashes, {"split": "eval"}, prep.runtime)
        if not hit:
            computed_s += time.perf_counter() - t0
            counted += len(hashes)
        hits.append(hit)
        labels[split] = loader.labels()
    params = sum(p.numel() for p in built.model.parameters()) / 1e6
    score = logme(features["train"].numpy(), labels["train"].numpy())
    probe = probe_accuracy(features["train"].float(), labels["train"], features["val"].float(), labels["val"])
    return ModelScore(candidate, built.label, score, probe, time.perf_counter() - start, all(hits),
                      counted / computed_s if computed_s else None, params)


def rank_models(base: RunConfig, candidates: list[str],
                on_progress: Callable[[int, int, ModelScore], None] = lambda done, total, score: None
                ) -> list[ModelScore]:
    """Every candidate scored on the base's split, best first (by LogME; the probe breaks ties); candidates that
    could not be scored (no weights here, an unknown name) come last, each with its reason.

    Args:
        base: the run config whose data and split are used.
        candidates: timm names.
        on_progress: hears (scored, total, the latest score) after each.

    Returns:
        The scores, best first.
    """
    scores = []
    for i, candidate in enumerate(candidates):
        scores.append(score_model(base, candidate))
        on_progress(i + 1, len(candidates), scores[-1])
    return ranked(scores)


def ranked(scores: list[ModelScore]) -> list[ModelScore]:
    """Best first by LogME (the probe breaks ties); candidates without a score last, in the order asked.

    Args:
        scores: the scores, in the order asked.

    Returns:
        The same scores, ordered.
    """
    return sorted(scores, key=lambda s: (s.logme is None, -(s.logme or 0), -(s.probe_accuracy or 0)))


def default_candidates(source: str) -> list[str]:
    """The models worth ranking on this data whose weights are on this machine (nothing to download), as its kind
    of data recommends them (`Modality.candidate_models`).

    Args:
        source: the data.

    Returns:
        Candidate names, as `parse_candidates` gives them.
    """
    from tlcore.modality import for_data

    return for_data(source).candidate_models()
