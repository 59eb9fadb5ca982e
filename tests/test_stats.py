"""The paired verdict: McNemar's exact test, a paired bootstrap interval, the pictures needed, in plain words."""

from __future__ import annotations

import numpy as np
import pytest

from tlcore.stats import compare_paired, mcnemar_exact, paired_bootstrap, pictures_needed, plain_words


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


def test_as_good_and_faster_is_said_when_the_faster_one_cannot_be_told_apart() -> None:
    a = np.array([True] * 10 + [False] * 2)
    b = np.array([True] * 9 + [False] * 3)
    c = compare_paired("full", a, "feature_extraction", b)
    assert plain_words(c, seconds_a=60.0, seconds_b=10.0).startswith(
        "feature_extraction is as good as far as this test set can tell (difference 8.3 points")
    assert "6.0x faster" in plain_words(c, seconds_a=60.0, seconds_b=10.0)
    clear = compare_paired("full", np.array([True] * 40 + [False] * 10), "fe", np.array([True] * 25 + [False] * 25))
    assert plain_words(clear, 60.0, 10.0).startswith("full is better")  # a real gap is not excused by speed


def test_pictures_must_be_paired() -> None:
    with pytest.raises(ValueError, match="same, non-empty list"):
        compare_paired("a", np.array([True, False]), "b", np.array([True]))
