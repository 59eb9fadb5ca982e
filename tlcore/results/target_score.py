"""How well a trained model fits the target pictures, without their labels: soft neighbourhood density (SND).

Saito, Kim, Teterwak, Sclaroff, Darrell and Saenko, "Tune it the Right Way: Unsupervised Validation of Domain
Adaptation via Soft Neighborhood Density", ICCV 2021. A model that has adapted well to a new domain puts the
target pictures of one class close together in its output space, in dense clusters; one that has not scatters
them (uncertain, inconsistent answers) or collapses everything into one class. SND measures this: each
target picture's class probabilities, L2-normalised, are compared with every other picture's; the
similarities, over a temperature of 0.05, become a distribution over neighbours; the score is that
distribution's entropy, averaged over the pictures. Higher is better.

Why this score: it needs nothing but the target pictures' predictions, which every run here can make. The
alternatives need more or hold less: importance-weighted validation (DEV, You et al. 2019) needs a domain
classifier's density ratios, unstable with the few hundred target pictures people bring; the mean prediction
entropy rewards any confident model, so entropy minimisation wins it by construction; a source validation
set says nothing about the target. In the paper SND ranked adaptation methods and their weights closer to
target accuracy than entropy or DEV did. Its blind spot, measured here too (README): it compares models on
the same target pictures, never two data sets, and it can prefer a confident model that is confidently wrong.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tlcore.spec.adapt_spec import scan_target, uses_adabn
from tlcore.results.artifacts import BEST, TARGET_SCORE, load_trained
from tlcore.errors import TransferLabError
from tlcore.results.evaluate import class_probabilities
from tlcore.core.files import atomic_write

__all__ = ["SND_TEMPERATURE", "SELECTION_SCORE", "MAX_SCORED", "TargetScore", "soft_neighbourhood_density", "information_score",
           "score_target", "best_by_target_score"]

SND_TEMPERATURE = 0.05  # the paper's
SELECTION_SCORE = "im"  # what chooses between runs (bench/choose_adaptation.py: why this one)
MAX_SCORED = 2000  # the similarity matrix is pictures x pictures: more are sampled evenly (the same every time)


def soft_neighbourhood_density(probabilities: np.ndarray, temperature: float = SND_TEMPERATURE) -> float:
    """SND of a set of predictions.

    Args:
        probabilities: one row of class probabilities per target picture (at least two pictures).
        temperature: scales the similarities before the softmax over neighbours.

    Returns:
        The mean entropy of the neighbour distributions, between 0 and log(pictures - 1).

    Raises:
        ValueError: fewer than two pictures.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) < 2:
        raise ValueError("SND needs the predictions of at least two pictures")
    p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
    similarity = p @ p.T / temperature
    np.fill_diagonal(similarity, -np.inf)  # a picture is not its own neighbour
    similarity -= similarity.max(axis=1, keepdims=True)
    weights = np.exp(similarity)
    weights /= weights.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(weights > 0, weights * np.log(weights), 0.0).sum(axis=1)
    return float(entropy.mean())


def information_score(probabilities: np.ndarray) -> float:
    """Information maximisation (IM): the entropy of the mean prediction minus the mean entropy of the
    predictions. High when each picture gets a confident answer and the answers spread over the classes;
    0 for a model that collapses to one class or is unsure of everything.

    Args:
        probabilities: one row of class probabilities per target picture.

    Returns:
        A value between 0 and log(classes).
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    mean = p.mean(axis=0)
    return float(-(mean * np.log(mean)).sum() + (p * np.log(p)).sum(axis=1).mean())


@dataclass(frozen=True)
class TargetScore:
    """A run's fit to its target pictures, measured without their labels.

    Args:
        snd: soft neighbourhood density (higher is better; compare runs on the same target pictures only).
        im: the information maximisation score (higher is better; the same caveat).
        pictures: the target pictures scored.
        mean_confidence: the mean of each picture's top probability.
        predicted_shares: the share of pictures given each class (a model that collapses to one class shows).
    """

    snd: float
    im: float
    pictures: int
    mean_confidence: float
    predicted_shares: dict[str, float]

    def to_dict(self) -> dict:
        """Plain data for JSON."""
        return asdict(self)


def score_target(run_dir: str | Path, checkpoint: str = BEST) -> TargetScore:
    """Classify a finished run's target pictures (AdaBN runs with the target's BatchNorm statistics, as they are
    meant to be used there) and keep their SND in the run folder (`target_score.json`).

    Args:
        run_dir: the run folder of a run whose config names target pictures (`adapt.target`).
        checkpoint: which weights of the run.

    Returns:
        The score.

    Raises:
        TransferLabError: the run has no target pictures, or they cannot be read.
    """
    run_dir = Path(run_dir)
    trained = load_trained(run_dir, checkpoint)
    adapt = trained.config.adapt
    if not adapt.target.strip():
        raise TransferLabError(f"run {run_dir.name} names no target pictures",
                               "give adapt.target (the Data page's target folder) to score a run on them")
    target = scan_target(adapt.target, min(adapt.max_target, MAX_SCORED))
    probabilities = class_probabilities(trained, target.items(), own_statistics=uses_adabn(adapt.method))
    classes = trained.manifest.classes
    predicted = probabilities.argmax(1)
    score = TargetScore(snd=soft_neighbourhood_density(probabilities), im=information_score(probabilities),
                        pictures=len(probabilities),
                        mean_confidence=float(probabilities.max(1).mean()),
                        predicted_shares={c: float((predicted == i).mean()) for i, c in enumerate(classes)})
    atomic_write(run_dir / TARGET_SCORE, lambda tmp: tmp.write_text(json.dumps(score.to_dict(), indent=1)))
    return score


def best_by_target_score(scores: dict[str, float]) -> str:
    """The candidate with the highest SND.

    Args:
        scores: candidate name -> SND, all on the same target pictures.

    Returns:
        The name (the first one listed among equals).

    Raises:
        ValueError: no candidate.
    """
    if not scores:
        raise ValueError("no candidate to choose from")
    return max(scores, key=lambda name: scores[name])
