"""Is A really better than B? Paired tests on the same test pictures, said in plain words.

Two models scored on the same pictures are compared picture by picture: only the pictures
one gets right and the other wrong tell them apart. McNemar's exact test asks whether those
disagreements lean one way more than chance allows; a paired bootstrap gives a 95% interval
for the accuracy difference. With few test pictures most differences cannot be told from
noise, and the verdict says how many more pictures would be needed to see a 2-point one.

Not significant is not the same as equivalent. "As good" is said only from an equivalence test: the paired 95%
interval of the difference lies wholly within a stated margin (±2 points by default), which is two one-sided tests
at the 2.5% level each (Schuirmann 1987). Otherwise a difference that is not significant is "cannot tell", with
how large it could be.

Repeated over seeds, each picture's correctness becomes the share of seeds that got it right; the
test is then a paired sign-flip permutation test on those per-picture differences (with one seed it
is McNemar's test again), and the bootstrap still resamples pictures, never runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedComparison", "mcnemar_exact", "paired_bootstrap", "agresti_min_interval", "pictures_needed",
           "compare_paired",
           "plain_words", "sign_flip_test", "TEST_NAME", "SEEDS_TEST_NAME", "EQUIVALENCE_MARGIN"]

# said inside the verdict's own parentheses ("Paired on the same 36 test pictures (...)"): no brackets of their own
TEST_NAME = ("McNemar's exact test on per-picture correctness, with a paired bootstrap 95% interval, widened to "
             "Agresti and Min's where narrower")
SEEDS_TEST_NAME = ("a paired sign-flip permutation test on per-picture correctness averaged over seeds, with a "
                   "paired bootstrap 95% interval that resamples pictures, widened to Agresti and Min's where narrower")
ALPHA = 0.05
EQUIVALENCE_MARGIN = 0.02  # accuracy share: two settings are "as good" only within ±2 points, unless told otherwise


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided p-value: `only_a` pictures right only for A, `only_b` only for B (exact binomial, p = 1/2)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def sign_flip_test(diff: np.ndarray, resamples: int = 20_000, seed: int = 0) -> float:
    """Two-sided p-value that the per-picture differences are centred on 0: under no difference each picture's
    sign is a coin flip. Exact for up to 16 non-zero differences, Monte Carlo (with the +1 rule) beyond.

    Args:
        diff: the per-picture differences.
        resamples: random sign patterns beyond the exact case.
        seed: their seed.

    Returns:
        The p-value.
    """
    diff = np.asarray(diff, dtype=float)
    diff = diff[diff != 0]
    if not len(diff):
        return 1.0
    observed = abs(diff.sum()) - 1e-12
    if len(diff) <= 16:
        signs = np.array(np.meshgrid(*[[-1.0, 1.0]] * len(diff))).reshape(len(diff), -1).T
        return float((np.abs(signs @ diff) >= observed).mean())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(resamples, len(diff)))
    return float(((np.abs(signs @ diff) >= observed).sum() + 1) / (resamples + 1))


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, float]:
    """95% interval of accuracy(A) - accuracy(B), resampling pictures (both models keep their pair).

    Args:
        correct_a: per picture, 1 where A was right (or the share of its seeds that were).
        correct_b: the same for B, on the same pictures.
        resamples: bootstrap samples.
        seed: their seed.

    Returns:
        (low, high).
    """
    diff = correct_a.astype(float) - correct_b.astype(float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[picks].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def agresti_min_interval(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, float]:
    """95% interval of accuracy(A) - accuracy(B) for paired results with half a picture added to each of the four
    agreement cells (Agresti and Min 2005): never narrower than the test set can resolve. With 0 disagreements on 3
    pictures it is about ±39 points, where the bootstrap says 0.0 to 0.0; on 1,000 pictures about ±0.2 points.

    Args:
        correct_a: per picture, 1 where A was right (or the share of its seeds that were).
        correct_b: the same for B, on the same pictures.

    Returns:
        (low, high).
    """
    diff = np.asarray(correct_a, dtype=float) - np.asarray(correct_b, dtype=float)
    only_a, only_b = float(np.clip(diff, 0, None).sum()) + 0.5, float(np.clip(-diff, 0, None).sum()) + 0.5
    n = len(diff) + 2.0
    centre = (only_a - only_b) / n
    spread = 1.959963984540054 * math.sqrt(max(0.0, (only_a + only_b) - (only_a - only_b) ** 2 / n)) / n
    return max(-1.0, centre - spread), min(1.0, centre + spread)  # a difference of accuracies lies in -1 to 1


def pictures_needed(discordant_share: float, difference: float = 0.02, alpha: float = ALPHA,
                    power: float = 0.8) -> int:
    """Test pictures McNemar's test needs to see `difference` (accuracy share) with this power (Connor 1987).

    `discordant_share` is the share of pictures the two models disagree on; it is at least the difference.

    Args:
        discordant_share: see above.
        difference: the accuracy difference to detect.
        alpha: the test's level.
        power: the chance of detecting it.

    Returns:
        The number of test pictures.
    """
    z_alpha, z_power = 1.959963984540054, 0.8416212335729143  # two-sided 5%, 80% power
    if (alpha, power) != (ALPHA, 0.8):
        from statistics import NormalDist

        z_alpha, z_power = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    share = max(discordant_share, difference)
    n = (z_alpha * math.sqrt(share) + z_power * math.sqrt(share - difference ** 2)) ** 2 / difference ** 2
    return math.ceil(n)


@dataclass(frozen=True)
class PairedComparison:
    """Two strategies compared on the same pictures: accuracy difference with its interval, and disagreements."""
    a: str
    b: str
    n: int  # pictures both were scored on
    accuracy_a: float
    accuracy_b: float
    only_a: int  # right for A, wrong for B
    only_b: int
    p_value: float
    low: float  # 95% interval of accuracy_a - accuracy_b
    high: float
    test: str = TEST_NAME

    @property
    def difference(self) -> float:
        """Accuracy of a minus accuracy of b, on the same pictures."""
        return self.accuracy_a - self.accuracy_b

    @property
    def significant(self) -> bool:
        """McNemar's exact test says the two differ (p < 0.05)."""
        return self.p_value < ALPHA and self.low > 0

    def equivalent(self, margin: float = EQUIVALENCE_MARGIN) -> bool:
        """The equivalence test: the 95% interval of the difference lies within ±`margin` (two one-sided tests).

        Args:
            margin: the largest difference, as a share (0.02: 2 points), still called "as good".

        Returns:
            Whether the two are shown to be within the margin of each other.
        """
        return -margin < self.low and self.high < margin

    @property
    def largest_plausible(self) -> float:
        """The largest difference, either way, that the 95% interval leaves possible (a share)."""
        return max(abs(self.low), abs(self.high))

    def more_pictures_needed(self, difference: float = 0.02) -> int:
        """About how many more test pictures would show a difference this large as significant, given how often
        the two disagree here.

        Args:
            difference: the accuracy difference to show (2 points by default).
        """
        share = (self.only_a + self.only_b) / self.n if self.n else 1.0
        return max(0, pictures_needed(share, difference) - self.n)


def compare_paired(a: str, correct_a: np.ndarray, b: str, correct_b: np.ndarray) -> PairedComparison:
    """A against B on the same pictures, in the same order. `correct_*`: one value per picture, a bool (one run)
    or the share of seeds that got it right (repeated runs).

    Args:
        a: A's name.
        correct_a: see above.
        b: B's name.
        correct_b: see above.

    Returns:
        The difference, its interval, the p-value and the pictures a clear answer would need.
    """
    correct_a, correct_b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if correct_a.shape != correct_b.shape or correct_a.ndim != 1 or not len(correct_a):
        raise ValueError("a paired comparison needs both models' results on the same, non-empty list of pictures")
    if not ((0 <= correct_a) & (correct_a <= 1) & (0 <= correct_b) & (correct_b <= 1)).all():
        raise ValueError("per-picture correctness is a share between 0 and 1")
    only_a, only_b = int((correct_a > correct_b).sum()), int((correct_a < correct_b).sum())
    binary = np.isin(correct_a, (0.0, 1.0)).all() and np.isin(correct_b, (0.0, 1.0)).all()
    p_value = mcnemar_exact(only_a, only_b) if binary else sign_flip_test(correct_a - correct_b)
    low, high = paired_bootstrap(correct_a, correct_b)
    # the wider of the two: a percentile bootstrap collapses to 0.0 to 0.0 when the two never disagree, which on
    # 3 test pictures called them "as good within ±2 points"
    wide_low, wide_high = agresti_min_interval(correct_a, correct_b)
    low, high = min(low, wide_low), max(high, wide_high)
    return PairedComparison(a, b, len(correct_a), float(correct_a.mean()), float(correct_b.mean()), only_a, only_b,
                            p_value, low, high, TEST_NAME if binary else SEEDS_TEST_NAME)


def plain_words(c: PairedComparison, seconds_a: float | None = None, seconds_b: float | None = None,
                margin: float = EQUIVALENCE_MARGIN, items: str = "pictures") -> str:
    """One of three things, as a person would say it: A is better; the two are as good (within the margin); or
    cannot tell, with how large the difference could be. The difference, interval and p-value in every case.

    Args:
        c: the comparison (A is the better-ranked one).
        seconds_a: A's training time, when known.
        seconds_b: B's.
        margin: the equivalence margin, as a share (0.02: 2 points).
        items: what was classified, in words ("texts").

    Returns:
        One sentence.
    """
    points = 100 * c.difference
    p_words = "p < 0.001" if c.p_value < 0.001 else f"p = {c.p_value:.3f}"
    numbers = f"difference {points:.1f} points, 95% interval {100 * c.low:.1f} to {100 * c.high:.1f}, {p_words}"
    if c.significant:
        return f"{c.a} is better than {c.b} ({numbers})"
    if c.equivalent(margin):
        faster = ""
        if seconds_a and seconds_b and seconds_b * 1.5 <= seconds_a:
            faster = f", and {c.b} is {seconds_a / seconds_b:.1f}x faster"
        return (f"{c.b} is as good as {c.a} within ±{100 * margin:g} points ({numbers}; the whole interval lies "
                f"within the margin){faster}")
    return (f"cannot tell {c.a} from {c.b} with this test set: the difference could be as large as "
            f"{100 * c.largest_plausible:.1f} points ({numbers}); about {c.more_pictures_needed():,} more test "
            f"{items} would be needed to see a 2-point difference")
