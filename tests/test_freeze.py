"""Freeze plans on real (tiny, random-weight) models: by parameter name, bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from models_fixtures import ARCHITECTURES, tiny
from tlcore.spec.freeze import (
    STRATEGIES, FreezePlan, Stage, apply_plan, make_plan, optimizer_param_groups, set_train_mode, summarize,
)
from tlcore.errors import TransferLabError
from tlcore.models import BuiltModel, ModelSpec, build_model


def fresh(arch: str) -> BuiltModel:  # each test mutates its own copy
    return build_model(ModelSpec(name=arch, weights="random"), 3, input_size=ARCHITECTURES[arch])


def one_step(built, plan: FreezePlan, epoch: int, optimizer: torch.optim.Optimizer) -> None:
    apply_plan(built.model, built.groups, plan, epoch)
    set_train_mode(built.model, built.groups, plan, epoch)
    x = torch.randn(4, *ARCHITECTURES[built.arch])
    loss = nn.functional.cross_entropy(built.model(x), torch.tensor([0, 1, 2, 0]))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def tensors_of_groups(built, indexes: set[int]) -> set[str]:
    """State-dict keys (weights and BatchNorm buffers) owned by the given groups."""
    modules = {n.rsplit(".", 1)[0] for g in built.groups if g.index in indexes for n in g.param_names}
    return {k for k in built.model.state_dict() if k.rsplit(".", 1)[0] in modules or k in
            {n for g in built.groups if g.index in indexes for n in g.param_names}}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("strategy", ["feature_extraction", "freeze_first_k", "full"])
def test_requires_grad_follows_the_plan(arch: str, strategy: str) -> None:
    built = tiny(arch)
    n = len(built.groups)
    plan = make_plan(strategy, n, k=2)
    mask = apply_plan(built.model, built.groups, plan, 0)
    expected = {"feature_extraction": [i == n - 1 for i in range(n)],
                "freeze_first_k": [i >= 2 for i in range(n)],
                "full": [True] * n}[strategy]
    assert mask == expected
    for group in built.groups:
        params = dict(built.model.named_parameters())
        assert all(params[name].requires_grad == mask[group.index] for name in group.param_names)


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224"])
def test_frozen_weights_and_batchnorm_statistics_do_not_move(arch: str) -> None:
    built = fresh(arch)
    n = len(built.groups)
    plan = make_plan("freeze_first_k", n, k=n // 2)
    optimizer = torch.optim.AdamW(optimizer_param_groups(built.model, built.groups, plan, 1e-2, 0.05))
    before = state_copy(built.model)
    one_step(built, plan, 0, optimizer)
    after = built.model.state_dict()
    frozen = tensors_of_groups(built, set(range(n // 2)))
    trained = tensors_of_groups(built, set(range(n // 2, n)))
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen), "a frozen tensor changed"
    changed = [k for k in trained if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert changed, "nothing in the trainable groups moved"


def test_train_bn_updates_statistics_of_frozen_groups() -> None:
    built = fresh("resnet18")
    plan = make_plan("feature_extraction", len(built.groups), train_bn=True)
    optimizer = torch.optim.SGD(optimizer_param_groups(built.model, built.groups, plan, 0.1, 0.0), momentum=0.9)
    before = state_copy(built.model)
    one_step(built, plan, 0, optimizer)
    assert not torch.equal(before["bn1.running_mean"], built.model.state_dict()["bn1.running_mean"])
    assert torch.equal(before["conv1.weight"], built.model.state_dict()["conv1.weight"])


def test_gradual_unfreezing_turns_on_groups_at_the_planned_epochs() -> None:
    built = tiny("resnet18")  # stem, layer1..4, head
    plan = make_plan("gradual", len(built.groups), every=2)
    trained = [apply_plan(built.model, built.groups, plan, epoch) for epoch in range(12)]
    assert trained[0] == trained[1] == [False] * 5 + [True]
    assert trained[2] == trained[3] == [False] * 4 + [True] * 2
    assert trained[4] == [False] * 3 + [True] * 3
    assert trained[10] == trained[11] == [True] * 6
    assert [g.unfreezes_at for g in summarize(built.groups, plan, 0).groups] == [10, 8, 6, 4, 2, 0]


def test_optimizer_is_built_once_and_newly_unfrozen_groups_learn() -> None:
    built = fresh("resnet18")
    plan = make_plan("fine_tune", len(built.groups), head_epochs=1, lr_spread=10)
    optimizer = torch.optim.AdamW(optimizer_param_groups(built.model, built.groups, plan, 1e-2, 0.01))
    start = state_copy(built.model)
    one_step(built, plan, 0, optimizer)
    assert torch.equal(start["layer4.1.conv2.weight"], built.model.state_dict()["layer4.1.conv2.weight"])
    one_step(built, plan, 1, optimizer)  # same optimizer object: no rebuild at the unfreeze
    assert not torch.equal(start["layer4.1.conv2.weight"], built.model.state_dict()["layer4.1.conv2.weight"])
    assert not torch.equal(start["conv1.weight"], built.model.state_dict()["conv1.weight"])


def test_optimizer_groups_carry_planned_learning_rates() -> None:
    built = tiny("resnet18")
    n = len(built.groups)
    plan = make_plan("full", n, lr_spread=100)
    groups = optimizer_param_groups(built.model, built.groups, plan, 1e-3, 0.05)
    by_group = {}
    for g in groups:
        by_group.setdefault(g["group"], set()).add(g["lr"])
    assert all(len(lrs) == 1 for lrs in by_group.values())  # decay and no-decay halves share the group's lr
    lrs = [next(iter(by_group[g.name])) for g in built.groups]
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1e-3)
    assert lrs == sorted(lrs) and all(b / a == pytest.approx(100 ** (1 / (n - 1))) for a, b in zip(lrs, lrs[1:]))
    assert all(g["weight_decay"] == 0.0 for g in groups if g["kind"] == "no_decay")
    assert all(p.ndim <= 1 for g in groups if g["kind"] == "no_decay" for p in g["params"])
    counted = sum(p.numel() for g in groups for p in g["params"])
    assert counted == sum(p.numel() for p in built.model.parameters())  # every parameter, frozen or not


def test_plan_round_trips_through_json() -> None:
    for strategy in STRATEGIES:
        plan = make_plan(strategy, 7, lr_spread=10, train_bn=strategy == "full")
        assert FreezePlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_summary_counts_trainable_share() -> None:
    built = tiny("resnet18")
    summary = summarize(built.groups, make_plan("feature_extraction", len(built.groups)), 0)
    head = built.groups[-1].params
    assert summary.trainable_params == head
    assert summary.trainable_share == pytest.approx(head / sum(g.params for g in built.groups))
    assert "trainable" in summary.table()


@pytest.mark.parametrize(("build", "message"), [
    (lambda: make_plan("freeze_first_k", 6, k=6), "cannot freeze the first 6 of 6"),
    (lambda: make_plan("sideways", 6), "unknown freeze strategy"),
    (lambda: FreezePlan("x", stages=(Stage(1, -1),)), "must start with a stage at epoch 0"),
    (lambda: FreezePlan("x", lr_spread=0.5), "below 1"),
    (lambda: FreezePlan("x", stages=(Stage(0, -9),)).trainable_mask(0, 6), "model has 6 groups"),
    (lambda: FreezePlan.from_dict({"strategy": "x", "colour": "red"}), "unknown setting\\(s\\) in the freeze plan"),
])
def test_invalid_plans_say_what_is_wrong(build, message: str) -> None:
    with pytest.raises(TransferLabError, match=message):
        build()


def test_vit_tokens_and_position_embedding_get_no_weight_decay() -> None:
    built = tiny("vit_tiny_patch16_224")
    groups = optimizer_param_groups(built.model, built.groups, make_plan("full", len(built.groups)), 1e-3, 0.05)
    names = {id(p): n for n, p in built.model.named_parameters()}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    skipped = {names[id(p)] for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert set(built.model.no_weight_decay()) & set(names.values()) <= skipped
    assert {"cls_token", "pos_embed"} <= skipped
    assert "blocks.0.attn.qkv.weight" in decayed  # matrices still decay


def test_fine_tune_spreads_learning_rates_by_default_as_it_promises() -> None:
    from tlcore.spec.freeze import FINE_TUNE_LR_SPREAD

    plan = make_plan("fine_tune", 6)
    scales = plan.scales(6)
    assert FINE_TUNE_LR_SPREAD > 1 and scales[-1] == 1.0 and scales[0] == pytest.approx(1 / FINE_TUNE_LR_SPREAD)
    assert scales == sorted(scales)  # earlier groups learn slower
    assert make_plan("full", 6).scales(6) == [1.0] * 6  # the others keep one rate unless asked
    assert make_plan("fine_tune", 6, lr_spread=1.0).scales(6) == [1.0] * 6  # an explicit choice wins
