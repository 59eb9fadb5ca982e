"""Layer groups: every parameter in exactly one group, groups in forward order, the new head last and alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models_fixtures import ARCHITECTURES, tiny
from tlcore.models import layer_groups

each_arch = pytest.mark.parametrize("arch", list(ARCHITECTURES))


@each_arch
def test_groups_cover_every_parameter_exactly_once(arch: str) -> None:
    built = tiny(arch)
    names = [n for g in built.groups for n in g.param_names]
    assert len(names) == len(set(names))
    assert set(names) == {n for n, _ in built.model.named_parameters()}
    assert [g.index for g in built.groups] == list(range(len(built.groups)))
    params = dict(built.model.named_parameters())
    assert all(g.params == sum(params[n].numel() for n in g.param_names) for g in built.groups)


@each_arch
def test_groups_run_in_forward_order(arch: str) -> None:
    built = tiny(arch)
    owner = {n: g.index for g in built.groups for n in g.param_names}
    order: list[int] = []
    hooks = []
    for module_name, module in built.model.named_modules():
        own = [f"{module_name}.{p}" if module_name else p for p, _ in module.named_parameters(recurse=False)]
        if own:
            hooks.append(module.register_forward_hook(
                lambda *_, i=owner[own[0]]: order.append(i) if i not in order else None))
    with torch.no_grad():
        built.model.eval()(torch.zeros(1, *ARCHITECTURES[arch]))
    for hook in hooks:
        hook.remove()
    assert order == sorted(order), f"groups first run in the order {order}"


@each_arch
def test_new_head_is_the_last_group_and_only_the_head(arch: str) -> None:
    built = tiny(arch, num_classes=5)
    head = built.groups[-1]
    assert head.role == "head" and head.output_shape == (5,)
    classifier = built.model.get_classifier()
    assert set(head.param_names) == {f"{built.model.pretrained_cfg['classifier']}.{n}" for n, _ in classifier.named_parameters()}
    assert built.groups[0].role == "stem"
    assert all(g.output_shape is not None for g in built.groups[1:])


@each_arch
def test_fine_groups_are_at_least_as_many(arch: str) -> None:
    built = tiny(arch)
    fine = layer_groups(built.model, coarse=False, input_size=ARCHITECTURES[arch])
    assert len(fine) >= len(built.groups)
    assert {n for g in fine for n in g.param_names} == {n for g in built.groups for n in g.param_names}


def test_fallback_without_group_matcher() -> None:
    class Plain(nn.Module):
        pretrained_cfg = {"classifier": "fc", "input_size": (3, 8, 8)}

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.bn(self.conv(x)).mean((2, 3)))

    groups = layer_groups(Plain())
    assert [(g.name, g.role) for g in groups] == [("stem", "stem"), ("bn", "body"), ("head", "head")]
    assert groups[1].output_shape == (4, 6, 6)
