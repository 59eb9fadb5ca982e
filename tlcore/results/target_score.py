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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tlcore.spec.adapt_spec import scan_target, uses_adabn
from tlcore.core.run_files import TARGET_PROBABILITIES
from tlcore.results.artifacts import BEST, TARGET_SCORE, load_trained
from tlcore.errors import TransferLabError
from tlcore.results.evaluate import class_probabilities
from tlcore.core.files import atomic_write

__all__ = ["SND_TEMPERATURE", "SELECTION_SCORE", "MAX_SCORED", "TargetScore", "soft_neighbourhood_density", "information_score",
           "score_target", "best_by_target_score", "consensus_agreement", "LABEL_FREE_RULES", "LABEL_FREE_RULE", "rule_words"]

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
    meant to be used there) and keep their scores in the run folder (`target_score.json`), with the probabilities
    themselves (`target_probabilities.npy`: rules that compare runs' answers on the same pictures read them).

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
    atomic_write(run_dir / TARGET_PROBABILITIES, lambda tmp: _save_array(tmp, probabilities.astype(np.float32)))
    atomic_write(run_dir / TARGET_SCORE, lambda tmp: tmp.write_text(json.dumps(score.to_dict(), indent=1)))
    return score


def _save_array(path: Path, values: np.ndarray) -> None:
    """np.save to exactly this path (given a name, np.save appends ".npy" to one that lacks it)."""
    with open(path, "wb") as fh:
        np.save(fh, values, allow_pickle=False)


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


# -- choosing among runs by their answers on the same target pictures ----------------------------------------------
def consensus_agreement(answers: dict[str, np.ndarray]) -> dict[str, float]:
    """Each candidate's agreement with the candidates' consensus: the share of target pictures on which its class
    is the class most candidates give (a vote; the mean probability breaks a tie). It does not reward confidence:
    one sure candidate cannot outvote two unsure ones, and a sure candidate that disagrees with them scores low.

    Args:
        answers: candidate name -> (pictures, classes) probabilities, all on the same pictures in the same order.

    Returns:
        Candidate name -> agreement between 0 and 1.
    """
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in answers.values()])  # candidates x pictures x classes
    votes = np.eye(stacked.shape[2])[stacked.argmax(2)].sum(0)  # pictures x classes
    consensus = (votes + 1e-3 * stacked.mean(0)).argmax(1)  # the mean probability only breaks ties between votes
    return {name: float((np.asarray(p).argmax(1) == consensus).mean()) for name, p in answers.items()}


def _by_score(score: Callable[[np.ndarray], float]) -> Callable[[dict[str, np.ndarray], str | None], str]:
    """A rule that takes the candidate with the highest `score` of its own answers (the first among equals)."""
    def choose(answers: dict[str, np.ndarray], baseline: str | None) -> str:
        scores = {name: score(p) for name, p in answers.items()}
        return max(scores, key=lambda name: scores[name])
    return choose


def _guarded(rule_scores: Callable[[dict[str, np.ndarray]], dict[str, float]], margin: float,
             relative: bool = False) -> Callable[[dict[str, np.ndarray], str | None], str]:
    """A rule that keeps the baseline (no adaptation) unless the best candidate's score beats it by more than
    `margin` (a share of the baseline's score when `relative`)."""
    def choose(answers: dict[str, np.ndarray], baseline: str | None) -> str:
        scores = rule_scores(answers)
        best = max(scores, key=lambda name: scores[name])
        if baseline in scores:
            needed = margin * abs(scores[baseline]) if relative else margin
            if scores[best] - scores[baseline] <= needed:
                return baseline
        return best
    return choose


def _scores_of(score: Callable[[np.ndarray], float]) -> Callable[[dict[str, np.ndarray]], dict[str, float]]:
    """Candidate name -> `score` of its answers."""
    return lambda answers: {name: score(p) for name, p in answers.items()}


LABEL_FREE_RULES: dict[str, Callable[[dict[str, np.ndarray], str | None], str]] = {
    "none": lambda answers, baseline: baseline if baseline in answers else next(iter(answers)),
    "im": _by_score(information_score),
    "snd": _by_score(soft_neighbourhood_density),
    "confidence": _by_score(lambda p: float(np.asarray(p).max(1).mean())),
    "consensus": _guarded(consensus_agreement, 0.0),
    "consensus+2": _guarded(consensus_agreement, 0.02),
    "im+10%": _guarded(_scores_of(information_score), 0.10, relative=True),
    "snd+1%": _guarded(_scores_of(soft_neighbourhood_density), 0.01, relative=True),
}
"""Label-free rules: (candidate -> target probabilities, the no-adaptation candidate or None) -> the chosen
candidate. `bench/choose_adaptation.py` compares them on the shift suite, leave one shift out."""

LABEL_FREE_RULE = "im"  # the comparison's rule (bench/choose_adaptation.py --shifts suite: why this one)
_RULE_WORDS = {
    "none": "no adaptation unless labels say otherwise",
    "im": "it fits the target pictures best: confident answers spread over the classes",
    "snd": "its answers on the target pictures form the densest neighbourhoods",
    "confidence": "the most confident on the target pictures",
    "consensus": "it agrees most with the methods' majority vote on the target pictures",
    "consensus+2": "it agrees with the methods' majority vote on 2% more target pictures than no adaptation",
    "im+10%": "its information score on the target pictures is over 10% above no adaptation's",
    "snd+1%": "its neighbourhood density on the target pictures is over 1% above no adaptation's",
}


def rule_words(rule: str) -> str:
    """Why a label-free rule chose what it chose, in words for the verdict.

    Args:
        rule: a name of `LABEL_FREE_RULES`.

    Returns:
        The words.
    """
    return _RULE_WORDS[rule]
