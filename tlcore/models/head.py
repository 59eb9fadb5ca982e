"""The new classifier for the user's classes, in place of the ImageNet one."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from tlcore.errors import TransferLabError
from tlcore.core.schema import setting

if TYPE_CHECKING:
    from torch import nn

__all__ = ["HeadSpec", "replace_head", "classifier_name"]


@dataclass(frozen=True)
class HeadSpec:
    """Linear by default; dropout and one hidden layer help on very small data sets, at some cost in speed."""

    hidden: int | None = setting(None, label="Head hidden layer (none or a width)", low=1, axis="hidden",
                                 try_values="none, 256", group="model",
                                 help="One hidden layer of this width in the new head; empty: a linear head.")
    dropout: float = setting(0.0, label="Head dropout", low=0.0, high=0.999999, axis="dropout", try_values="0, 0.2, 0.5",
                             group="model", help="Dropout before the new head: helps on very small data sets.")

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise TransferLabError(f"head dropout {self.dropout} is out of range", "use a value in [0, 1), such as 0.2")
        if self.hidden is not None and self.hidden < 1:
            raise TransferLabError(f"head hidden size {self.hidden} must be positive", "use e.g. 256, or none")

    def to_dict(self) -> dict:
        """As the run config stores it."""
        return asdict(self)


def classifier_names(model: nn.Module) -> list[str]:
    """The module paths of the model's classifier(s), from timm's pretrained_cfg (some models have two)."""
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    return [names] if isinstance(names, str) else list(names)


def classifier_name(model: nn.Module) -> str:
    """The one classifier a custom head replaces; models with several are refused."""
    names = classifier_names(model)
    if len(names) != 1:
        raise TransferLabError(f"{type(model).__name__} has {len(names)} classifiers",
                               "choose a model with a single classifier for a custom head")
    return names[0]


def replace_head(model: nn.Module, num_classes: int, spec: HeadSpec = HeadSpec()) -> None:
    """A freshly initialised head with `num_classes` outputs (timm's own reset, then the optional extras).

    Args:
        model: a timm model (changed in place).
        num_classes: the new head's outputs.
        spec: extras: a hidden layer, dropout.
    """
    from torch import nn
    model.reset_classifier(num_classes)
    if spec.hidden is None and spec.dropout == 0.0:
        return
    name = classifier_name(model)
    linear = model.get_submodule(name)
    if not isinstance(linear, nn.Linear):
        raise TransferLabError(f"the classifier of {type(model).__name__} is a {type(linear).__name__}, not a linear layer",
                               "keep the default linear head for this model")
    layers: list[nn.Module] = [nn.Dropout(spec.dropout)] if spec.dropout else []
    if spec.hidden is None:
        layers.append(linear)
    else:
        layers += [nn.Linear(linear.in_features, spec.hidden), nn.ReLU(inplace=True)]
        layers += [nn.Dropout(spec.dropout)] if spec.dropout else []
        layers.append(nn.Linear(spec.hidden, num_classes))
    model.set_submodule(name, nn.Sequential(*layers))
