"""What a time estimate says, and which settings it depends on: plain data, no torch.

A run's time is its steps, and a step's cost depends on the data, the model, what
trains, the batch, the pictures' size and loading, and the device; it does not depend
on the learning rate, the weight decay, the schedule or the seed. So one measurement
serves every run that differs only in those (`timing_key`). Under a one-stage freeze
plan a run with fewer epochs also takes the first epochs of a longer one's estimate;
under a staged plan (gradual unfreezing, head first) the number of epochs decides
whether the head-only fast path applies, so it stays in the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tlcore.config import RunConfig
from tlcore.errors import TransferLabError
from tlcore.core.schema import counted, leaves

if TYPE_CHECKING:
    from tlcore.runs import Run, RunStore

__all__ = ["TimeEstimate", "format_duration", "timing_key", "run_cost_key", "measured_epoch_seconds",
           "features_cached_by", "EXTRACTED_ONCE", "CACHED_BY", "timing_words", "comparison_estimate_words"]

# settings that change what a run learns but not what a step costs: declared by each field (`cost=False`)
_FREE_OF_COST = frozenset(leaf.path for leaf in leaves(RunConfig) if not leaf.meta.cost)
_ONE_STAGE = {"feature_extraction", "freeze_first_k", "full"}  # what trains is the same in every epoch
EXTRACTED_ONCE = "features extracted once, then the head trains on them"  # an estimate's basis, on the fast path
CACHED_BY = "features cached by run"  # the basis once a later run cached those features: no extraction left


@dataclass(frozen=True)
class TimeEstimate:
    """Seconds a run should take on this machine, and what they rest on.

    Args:
        setup_s: building the model, plus extracting features on the fast path.
        epoch_s: one number per epoch.
        basis: what was measured, in words.
        finish_s: after the last epoch: the evaluation on the held-out test split.
        extract_s: the part of `setup_s` that extracts features on the fast path (0 when they were cached).
    """

    setup_s: float
    epoch_s: tuple[float, ...]
    basis: str
    finish_s: float = 0.0
    extract_s: float = 0.0

    @property
    def total_s(self) -> float:
        """The start, every epoch and the evaluation after them, in seconds."""
        return self.setup_s + sum(self.epoch_s) + self.finish_s

    @property
    def typical_epoch_s(self) -> float:
        """The median epoch, in seconds."""
        return sorted(self.epoch_s)[len(self.epoch_s) // 2]

    def describe(self) -> str:
        """One sentence for people, e.g. "about 2.0 s per epoch, 12 s for 5 epoch(s) (...)"."""
        start = f", {self.setup_s:.0f} s of it to start" if self.setup_s >= 1 else ""
        start += f", {self.finish_s:.0f} s to evaluate at the end" if self.finish_s >= 1 else ""
        return (f"about {self.typical_epoch_s:.1f} s per epoch, {format_duration(self.total_s)} for "
                f"{counted(len(self.epoch_s), 'epoch')}{start} ({self.basis})")

    def for_epochs(self, epochs: int) -> "TimeEstimate":
        """The estimate of the same run stopped after `epochs` epochs.

        Args:
            epochs: at most `len(self.epoch_s)`.

        Returns:
            The same start and the first `epochs` epoch times.

        Raises:
            ValueError: when this estimate covers fewer epochs.
        """
        if not 0 < epochs <= len(self.epoch_s):
            raise ValueError(f"an estimate of {len(self.epoch_s)} epoch(s) cannot say how {epochs} take")
        return TimeEstimate(self.setup_s, self.epoch_s[:epochs], self.basis, self.finish_s, self.extract_s)

    def with_features_cached(self, run_id: str) -> "TimeEstimate":
        """The same run once the features it would extract are cached (by `run_id`, after this was measured).

        Args:
            run_id: the run whose features the run will read.

        Returns:
            The estimate without the extraction.
        """
        basis = self.basis.replace(EXTRACTED_ONCE, f"{CACHED_BY} {run_id}")
        return TimeEstimate(self.setup_s - self.extract_s, self.epoch_s, basis, self.finish_s, 0.0)

    def to_dict(self) -> dict:
        """Plain data for JSON (`total_s` added for readers)."""
        return {**asdict(self), "epoch_s": list(self.epoch_s), "total_s": self.total_s}

    @classmethod
    def from_dict(cls, data: dict) -> "TimeEstimate":
        """An estimate back from the experiment's stored data.

        Args:
            data: what `asdict` gave.
        """
        return cls(float(data["setup_s"]), tuple(float(s) for s in data["epoch_s"]), str(data["basis"]),
                   float(data.get("finish_s", 0.0)), float(data.get("extract_s", 0.0)))  # older versions: none


def format_duration(seconds: float) -> str:
    """A duration for people: seconds under 90 s, minutes and tens of seconds under 10 min, minutes under 90 min,
    else hours. Whole minutes alone had said "about 3 min" of 209 s and "2 min" of 90 s (a third more).

    Args:
        seconds: the duration.

    Returns:
        E.g. "45 s", "3 min 30 s", "12 min", "1.5 h".
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 595:
        minutes, rest = divmod(round(seconds / 10) * 10, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _without(tree: dict, dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if rest and isinstance(tree.get(head), dict):
        _without(tree[head], rest)
    else:
        tree.pop(head, None)


def timing_key(config: RunConfig) -> str:
    """A short key equal for run configs whose steps cost the same: they differ only in the learning rate,
    weight decay, schedule, early stopping, seed or name (every field declared `cost=False`), in settings their
    freeze strategy does not read, or (under a one-stage freeze plan) the number of epochs.

    Args:
        config: a run config.

    Returns:
        20 hex digits.
    """
    tree = json.loads(config.to_json())
    unread = {leaf.path for leaf in leaves(RunConfig) if not leaf.used_by(config.freeze.strategy)}
    for dotted in _FREE_OF_COST | unread | ({"epochs"} if config.freeze.strategy in _ONE_STAGE else set()):
        _without(tree, dotted)
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:20]


def run_cost_key(config: RunConfig) -> str:
    """`timing_key` of a run as it was submitted: its data path made absolute, the split's manifest file aside (a
    comparison pins one, a single run makes it when it starts; the split's seed and shares stay in the key).

    Args:
        config: a run config, as the experiment makes it or as the store keeps it.

    Returns:
        The key.
    """
    data = replace(config.data, source=str(Path(config.data.source).resolve()), manifest=None)
    return timing_key(replace(config, data=data))


def measured_epoch_seconds(store: "RunStore", config: RunConfig,
                           first: Iterable[str] = ()) -> tuple[float, str, float | None] | None:
    """Seconds per epoch that a finished run of the same step cost took on this machine (the median of its epochs).

    "The same step cost" is the estimate's own key (every setting that changes what a step costs, the freeze
    plan's options included), so a comparison's freeze_first_half run is not quoted for a run that freezes 5 groups.

    Args:
        store: the run store.
        config: the run to be timed.
        first: run ids to look at first (the experiment's own runs), the rest newest first.

    Returns:
        (seconds per epoch, that run's id, the seconds it took before and between its epochs: building the model, a
        head-only run's feature extraction; None for a resumed run, whose clock includes the time it sat stopped),
        or None before any such run.
    """
    preferred = set(first)
    runs = store.list(status="succeeded")
    for run in _of_the_same_cost([r for r in runs if r.id in preferred] + [r for r in runs if r.id not in preferred],
                                 config):
        seconds = sorted(m["epoch_seconds"] for m in store.metrics(run.id))  # only for a run of the same cost
        if seconds:
            start = None if run.resume or not run.finished else max(0.0, run.finished - run.started - sum(seconds))
            return seconds[len(seconds) // 2], run.id, start
    return None


def features_cached_by(store: "RunStore", config: RunConfig, since: float) -> str | None:
    """A run that finished after `since` with the same step cost and seed as `config`: a head-only run's features
    are then in the cache, and an estimate measured before it counts their extraction for nothing (a comparison's
    feature extraction was estimated at 6 s and took 2.6 s, after a Train run had cached them).

    Args:
        store: the run store; config: the run to be estimated; since: when its estimate was measured.

    Returns:
        That run's id, or None.
    """
    later = [r for r in store.list(status="succeeded") if (r.finished or 0.0) > since and
             r.config.get("seed", 0) == config.seed]
    return next((run.id for run in _of_the_same_cost(later, config)), None)


_COST_KEYS: dict[tuple[str, str], str | None] = {}  # (run id, run folder) -> its run_cost_key; a run's config never changes
_COST_KEYS_KEPT = 10_000


def _cost_key_of(run: "Run") -> str | None:
    """A stored run's `run_cost_key`, None for a config this version does not read; worked out once per run (the
    pages ask on every rerun, and reading a config costs about 10 ms: a second for a hundred runs)."""
    key = (run.id, run.run_dir)
    if key not in _COST_KEYS:
        if len(_COST_KEYS) >= _COST_KEYS_KEPT:
            _COST_KEYS.clear()
        try:
            _COST_KEYS[key] = run_cost_key(RunConfig.from_dict(run.config))
        except TransferLabError:  # a run of an older version whose config this one does not read
            _COST_KEYS[key] = None
    return _COST_KEYS[key]


def _of_the_same_cost(runs: list["Run"], config: RunConfig) -> Iterator["Run"]:
    """The runs, in their order, whose config has `config`'s step cost (`run_cost_key`)."""
    wanted = run_cost_key(config)
    return (run for run in runs if _cost_key_of(run) == wanted)


def timing_words(configs: list[RunConfig]) -> str:
    """What a comparison's estimate is doing, for its progress bar: settings whose steps cost alike are timed once,
    so "setting 1 of 4" of five chosen settings is explained before it is said.

    Args:
        configs: the settings (one config each).

    Returns:
        "Timing a few steps of each setting", or of "the 4 of 5 settings whose steps differ (...)".
    """
    distinct = len({timing_key(c) for c in configs})
    if distinct == len(configs):
        return "Timing a few steps of each setting"
    return (f"Timing a few steps of the {distinct} of {len(configs)} settings whose steps differ (the others step "
            "alike)")


def comparison_estimate_words(names: list[str], estimates: list[TimeEstimate], seeds: int) -> str:
    """A comparison's time estimate in a sentence: the total, each setting's time, and what they rest on.

    Args:
        names: the settings' names; estimates: one per setting (its first seed); seeds: runs of each setting.

    Returns:
        "Estimated time: about 4 min in all, one run after the other (feature extraction 11 s, ...; up to 5 steps
        of 32 pictures measured on this machine's cpu)."; a setting whose estimate dropped its feature extraction
        (a later run cached the features) says so, so its smaller time is not a silent change.
    """
    total = seeds * sum(e.total_s for e in estimates)
    each = ", ".join(f"{name} {format_duration(e.total_s)}"
                     + (" now that its features are cached" if CACHED_BY in e.basis else "")
                     for name, e in zip(names, estimates))
    # what all were measured by; "features extracted once" was the first setting's alone
    return (f"Estimated time: about {format_duration(total)} in all, one run after the other ({each}"
            + (f", each x {seeds} seeds" if seeds > 1 else "") + f"; {estimates[0].basis.split(';')[0]}).")
