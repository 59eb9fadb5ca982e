"""The model as an ordered list of layer groups, stem to head: what the freeze plan and the UI work on.

Groups come from timm's own `group_matcher` (regexes over parameter names) where the
model has one; otherwise from its top-level modules. The new classifier is always
a group of its own ("head"); pretrained layers after the last block that timm counts
with the head (ConvNeXt's final norm, VGG's fc6/fc7) form a "neck", so "head only"
really trains only the new layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from tlcore.models.head import classifier_names

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LayerGroup", "layer_groups"]

STEM, BODY, NECK, HEAD = "stem", "body", "neck", "head"


@dataclass(frozen=True)
class LayerGroup:
    """One block of a model, stem to head: its parameters (by name), their count and its output shape."""
    index: int
    name: str
    role: str  # stem, body, neck or head
    param_names: tuple[str, ...]
    params: int
    output_shape: tuple[int, ...] | None  # per image, from a forward pass; None if the group never ran

    def to_dict(self) -> dict:
        """The group as plain data."""
        return asdict(self)


def _is_under(param: str, modules: list[str]) -> bool:
    return any(param == m or param.startswith(m + ".") for m in modules)


def _fallback_groups(model: nn.Module) -> list[list[str]]:
    """One group per top-level module, in registration order (which is forward order for most models)."""
    by_child: dict[str, list[str]] = {}
    for name, _ in model.named_parameters():
        by_child.setdefault(name.split(".")[0], []).append(name)
    return list(by_child.values())


def _prefixes(groups: list[list[str]]) -> list[list[str]]:
    """Per group, the shortest module paths that hold its parameters and no other group's.

    They name the group and are the modules whose output is the group's output.

    ResNet stages come out as `layer1`, EfficientNet stages as `blocks.3`, a stage merged
    with the final conv as `blocks.6+conv_head+bn2`.
    """
    owners: dict[str, set[int]] = {}
    for index, group in enumerate(groups):
        for param in group:
            parts = param.split(".")[:-1] or [param]
            for depth in range(1, len(parts) + 1):
                owners.setdefault(".".join(parts[:depth]), set()).add(index)
    result = []
    for index, group in enumerate(groups):
        prefixes: list[str] = []
        for param in group:
            parts = param.split(".")[:-1] or [param]
            prefix = next((".".join(parts[:d]) for d in range(1, len(parts) + 1)
                           if owners[".".join(parts[:d])] == {index}), ".".join(parts))
            if prefix not in prefixes:
                prefixes.append(prefix)
        result.append(prefixes)
    return result


def layer_groups(model: nn.Module, *, coarse: bool = True, input_size: tuple[int, int, int] | None = None) -> list[LayerGroup]:
    """Ordered groups covering every parameter exactly once; output shapes from one batch-1 forward pass.

    `coarse=False` gives timm's finer groups (e.g. every residual block instead of every stage).

    Args:
        model: a timm model.
        coarse: timm's coarse groups (stages) or, False, its finer ones.
        input_size: the input for the shape pass (default: the model's own).

    Returns:
        The groups, stem first, the head last.
    """
    from timm.models import group_parameters
    if hasattr(model, "group_matcher"):
        raw = [list(names) for names in group_parameters(model, model.group_matcher(coarse=coarse)).values()]
    else:
        raw = _fallback_groups(model)
    classifier = classifier_names(model)
    head = [p for group in raw for p in group if _is_under(p, classifier)]
    body = [[p for p in group if not _is_under(p, classifier)] for group in raw]
    body = [g for g in body if g]
    roles = [STEM] + [BODY] * (len(body) - 1)
    if raw and head and body and set(raw[-1]) - set(head):
        roles[-1] = NECK  # pretrained layers timm files under the head: keep them apart from the new classifier
    prefixes = _prefixes(body + ([head] if head else []))
    named = [(STEM if role == STEM else NECK if role == NECK else "+".join(p), role, g)
             for g, role, p in zip(body, roles, prefixes)]
    if head:
        named.append((HEAD, HEAD, head))
    params = dict(model.named_parameters())
    shapes = _output_shapes(model, prefixes, input_size)
    return [
        LayerGroup(index=i, name=name, role=role, param_names=tuple(g), params=sum(params[p].numel() for p in g),
                   output_shape=shapes[i])
        for i, (name, role, g) in enumerate(named)
    ]


def _output_shapes(model: nn.Module, prefixes: list[list[str]], input_size: tuple[int, int, int] | None) -> list[tuple[int, ...] | None]:
    """Each group's output: that of the last of its top modules to run, from one batch-1 forward pass."""
    import torch
    input_size = input_size or tuple(getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224)))
    owner = {name: index for index, names in enumerate(prefixes) for name in names}
    last: list[tuple[int, ...] | None] = [None] * len(prefixes)
    handles = []

    def hook(index: int):
        def record(_module: nn.Module, _inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor):
                last[index] = tuple(output.shape[1:])
        return record

    for name, module in model.named_modules():
        if name in owner:  # parameters held by the model itself (ViT's cls_token) have no module to hook
            handles.append(module.register_forward_hook(hook(owner[name])))
    device = next(model.parameters()).device
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return last
