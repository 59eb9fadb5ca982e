"""Schedules: one-cycle is Smith's one-cycle (lr up then down, momentum the other way), not a renamed cosine."""

from __future__ import annotations

import pytest
import torch

from tlcore.core.schedules import ONECYCLE_WARMUP_SHARE, make_scheduler


def trace(optimizer: torch.optim.Optimizer, scheduler, steps: int) -> tuple[list[list[float]], list[float]]:
    lrs, momenta = [], []
    for _ in range(steps):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        momenta.append(optimizer.param_groups[0]["betas"][0])
        optimizer.step()
        scheduler.step()
    return lrs, momenta


def two_group_adamw() -> torch.optim.AdamW:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.AdamW([{"params": [a], "lr": 1e-4}, {"params": [b], "lr": 1e-2}], lr=1e-2)


def test_onecycle_rises_to_each_groups_peak_then_anneals_while_momentum_cycles() -> None:
    optimizer = two_group_adamw()
    scheduler = make_scheduler(optimizer, "onecycle", epochs=10, steps_per_epoch=10)
    lrs, momenta = trace(optimizer, scheduler, 100)
    peak_step = max(range(100), key=lambda i: lrs[i][1])
    assert peak_step == pytest.approx(ONECYCLE_WARMUP_SHARE * 100, abs=1)
    for group, peak in ((0, 1e-4), (1, 1e-2)):  # discriminative lrs keep their ratio: each group peaks at its own lr
        assert lrs[0][group] == pytest.approx(peak / 25)
        assert max(step[group] for step in lrs) == pytest.approx(peak, rel=1e-3)
        assert lrs[-1][group] < peak / 25 / 100  # ends far below where it started
    assert momenta[0] == pytest.approx(0.95) and momenta[peak_step] == pytest.approx(0.85, abs=1e-3)
    assert momenta[-1] > 0.94  # momentum back up as the lr comes down
    assert all(a <= b for a, b in zip([s[1] for s in lrs[:peak_step]], [s[1] for s in lrs[1:peak_step + 1]]))


def test_onecycle_warmup_epochs_set_the_rising_share_and_state_resumes() -> None:
    optimizer = two_group_adamw()
    scheduler = make_scheduler(optimizer, "onecycle", epochs=10, steps_per_epoch=10, warmup_epochs=5)
    lrs, _ = trace(optimizer, scheduler, 60)
    assert max(range(60), key=lambda i: lrs[i][1]) == pytest.approx(50, abs=1)
    resumed_opt = two_group_adamw()
    resumed = make_scheduler(resumed_opt, "onecycle", epochs=10, steps_per_epoch=10, warmup_epochs=5)
    resumed_opt.load_state_dict(optimizer.state_dict())
    resumed.load_state_dict(scheduler.state_dict())
    assert trace(resumed_opt, resumed, 5)[0] == trace(optimizer, scheduler, 5)[0]


def test_cosine_keeps_per_group_ratio_and_ends_at_the_floor() -> None:
    optimizer = two_group_adamw()
    lrs, momenta = trace(optimizer, make_scheduler(optimizer, "cosine", epochs=2, steps_per_epoch=50), 100)
    assert lrs[0] == pytest.approx([1e-4, 1e-2])
    assert all(s[1] / s[0] == pytest.approx(100) for s in lrs)
    assert lrs[-1][1] < 2e-4 and set(momenta) == {0.9}  # no momentum cycle outside one-cycle
