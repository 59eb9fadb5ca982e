"""The paired verdict: McNemar's exact test, a paired bootstrap interval, the pictures needed, in plain words."""

from __future__ import annotations

import numpy as np
import pytest

from tlcore.experiments.stats import compare_paired, mcnemar_exact, paired_bootstrap, pictures_needed, plain_words


@pytest.mark.parametrize("only_a,only_b", [(10, 2), (5, 0), (20, 10), (3, 3), (0, 7)])
def test_mcnemar_is_the_exact_two_sided_binomial_test(only_a: int, only_b: int) -> None:
    from scipy.stats import binomtest

    assert mcnemar_exact(only_a, only_b) == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert mcnemar_exact(only_a, only_b) == mcnemar_exact(only_b, only_a)
    assert mcnemar_exact(0, 0) == 1.0


def test_pictures_needed_follows_connor() -> None:
    # (1.96 sqrt(0.1) + 0.8416 sqrt(0.1 - 0.02^2))^2 / 0.02^2 = 1959.4
    assert pictures_needed(0.1) == 1960
    assert pictures_needed(0.05) < pictures_needed(0.1) < pictures_needed(0.2)  # more disagreement, more pictures
    assert pictures_needed(0.1, difference=0.05) < pictures_needed(0.1, difference=0.02)


def test_bootstrap_interval_is_around_the_difference_and_narrows_with_more_pictures() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(60) < 0.8
    b = rng.random(60) < 0.6
    low, high = paired_bootstrap(a, b)
    assert low < a.mean() - b.mean() < high
    big_low, big_high = paired_bootstrap(np.tile(a, 20), np.tile(b, 20))
    assert big_high - big_low < (high - low) / 3
    assert paired_bootstrap(a, b) == (low, high)  # seeded: the same interval every time


def test_a_clear_winner_is_called_better() -> None:
    a = np.array([True] * 40 + [False] * 10)
    b = np.array([True] * 25 + [False] * 25)  # right only where A is right too
    c = compare_paired("full", a, "feature_extraction", b)
    assert (c.only_a, c.only_b, c.n) == (15, 0, 50) and c.significant
    assert plain_words(c).startswith("full is better than feature_extraction (difference 30.0 points, 95% interval")


def test_a_small_gap_on_few_pictures_says_how_many_more_are_needed() -> None:
    a = np.array([True] * 10 + [False] * 2)
    b = np.array([True] * 9 + [False] * 3)
    c = compare_paired("gradual", a, "full", b)
    words = plain_words(c)
    assert not c.significant and words.startswith("cannot tell gradual from full with this test set")
    assert f"about {c.more_pictures_needed():,} more test pictures would be needed to see a 2-point difference" in words
    assert c.more_pictures_needed() > 100


def _pair(n: int, only_a: int, only_b: int, both: int) -> tuple[np.ndarray, np.ndarray]:
    """n pictures: `both` right for both, `only_a` right only for A, `only_b` only for B, the rest wrong for both."""
    a = np.array([True] * both + [True] * only_a + [False] * only_b + [False] * (n - both - only_a - only_b))
    b = np.array([True] * both + [False] * only_a + [True] * only_b + [False] * (n - both - only_a - only_b))
    return a, b


# (pictures, right only for A, right only for B, seconds A, seconds B, margin) -> how the verdict starts
VERDICTS = [
    # the case: an 18-point loss, not significant by McNemar's test, was called "as good" and faster
    ((120, 26, 4, 60.0, 8.8, 0.02), "full is better than gradual"),
    ((60, 11, 0, 60.0, 8.8, 0.02), "full is better than gradual"),
    ((60, 7, 2, 60.0, 8.8, 0.02), "cannot tell full from gradual with this test set: the difference could be as large"),
    ((12, 1, 0, 60.0, 10.0, 0.02), "cannot tell full from gradual"),  # before: "as good ... 6.0x faster"
    ((4000, 10, 8, 60.0, 10.0, 0.02), "gradual is as good as full within ±2 points"),
    ((4000, 10, 8, 60.0, 50.0, 0.02), "gradual is as good as full within ±2 points"),
    ((400, 10, 8, 60.0, 10.0, 0.02), "cannot tell full from gradual"),  # interval wider than ±2 points
    ((400, 10, 8, 60.0, 10.0, 0.05), "gradual is as good as full within ±5 points"),  # a wider margin, said
]


@pytest.mark.parametrize("case, start", VERDICTS, ids=[f"{c[0]}-{c[1]}-{c[2]}-m{c[5]}" for c, _ in VERDICTS])
def test_the_verdict_calls_two_as_good_only_from_an_equivalence_test(case: tuple, start: str) -> None:
    n, only_a, only_b, seconds_a, seconds_b, margin = case
    a, b = _pair(n, only_a, only_b, both=n // 2)
    c = compare_paired("full", a, "gradual", b)
    words = plain_words(c, seconds_a, seconds_b, margin)
    assert words.startswith(start), words
    p_words = "p < 0.001" if c.p_value < 0.001 else f"p = {c.p_value:.3f}"  # never "p = 0.000"
    assert p_words in words and "95% interval" in words  # in every branch
    if "as good" in words:  # the equivalence test itself: the whole interval within the margin
        assert -margin < c.low and c.high < margin
        assert ("faster" in words) is (seconds_b * 1.5 <= seconds_a)
    if words.startswith("cannot tell"):
        assert f"could be as large as {100 * max(abs(c.low), abs(c.high)):.1f} points" in words


def test_not_significant_is_never_equivalent_when_the_interval_leaves_the_margin() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(10, 300))
        a, b = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        c = compare_paired("a", a, "b", b)
        words = plain_words(c, 100.0, 10.0)
        if "as good" in words:
            assert -0.02 < c.low and c.high < 0.02, words


def test_pictures_must_be_paired() -> None:
    with pytest.raises(ValueError, match="same, non-empty list"):
        compare_paired("a", np.array([True, False]), "b", np.array([True]))


def test_runs_that_never_disagree_on_a_few_pictures_are_not_called_as_good() -> None:
    """Seen in Chromium (issue 38's labelling walk): on 3 test pictures two methods right on the same 2 got "as good
    within ±2 points (95% interval 0.0 to 0.0)": the percentile bootstrap collapses when nothing disagrees. Three
    pictures cannot show a 2-point equivalence; a thousand that all agree can."""
    from tlcore.experiments.stats import agresti_min_interval

    few = compare_paired("a", np.array([1, 1, 0]), "b", np.array([1, 1, 0]))
    assert not few.equivalent() and few.largest_plausible > 0.3
    assert "cannot tell" in plain_words(few)
    many = compare_paired("a", np.tile([1, 1, 0], 400), "b", np.tile([1, 1, 0], 400))
    assert many.equivalent() and many.largest_plausible < 0.005
    low, high = agresti_min_interval(np.array([1] * 60 + [0] * 40), np.array([1] * 50 + [0] * 50))
    assert 0.0 < low < 0.1 < high < 0.2  # 10 more right of 100, none the other way: about 4 to 16 points
    assert agresti_min_interval(np.array([1.0]), np.array([0.0])) == (pytest.approx(-0.51, abs=0.01), 1.0)  # not 118


def test_the_tests_name_reads_inside_the_verdicts_parentheses() -> None:
    """A walk: "Paired on the same 36 test pictures (McNemar's ... interval (widened to ...))" nested brackets."""
    from tlcore.experiments.stats import SEEDS_TEST_NAME, TEST_NAME

    assert all("(" not in name and ")" not in name for name in (TEST_NAME, SEEDS_TEST_NAME))
