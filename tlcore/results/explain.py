"""Where the model looks: Grad-CAM heat maps (the well-kept `grad-cam` package), for CNNs and ViTs.

The target layer comes from the layer groups: the output of the last body group,
a feature map for CNNs, a token sequence for ViTs (reshaped back to its patch grid).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tlcore.inputs.augment import eval_pipeline
from tlcore.errors import TransferLabError
from tlcore.models.groups import LayerGroup

__all__ = ["target_layer", "grad_cam", "overlay"]


def target_layer(model: nn.Module, groups: list[LayerGroup]) -> tuple[nn.Module, bool]:
    """(module, is_token_sequence): the last module of the last body group with a spatial output.

    Args:
        model: the classifier.
        groups: its layer groups, stem to head.

    Returns:
        The module whose activations Grad-CAM reads, and whether it outputs tokens (a ViT) rather than a map.

    Raises:
        TransferLabError: no group has a spatial output.
    """
    for group in reversed(groups):
        if group.role not in ("body", "stem") or not group.output_shape or len(group.output_shape) not in (2, 3):
            continue
        modules = dict(model.named_modules())
        if len(group.output_shape) == 2:
            # Tokens: the last block's input norm; after it, only the class token reaches the head.
            for name in group.name.split("+"):
                norms = [m for m in modules.get(name, nn.Identity()).modules() if isinstance(m, nn.LayerNorm)]
                if norms:
                    return norms[0], True
        for name in reversed(group.name.split("+")):
            if name in modules and name:
                return modules[name], len(group.output_shape) == 2
        prefixes = sorted({p.rsplit(".", 1)[0] for p in group.param_names if "." in p}, key=len)
        for name in reversed(prefixes):
            if name in modules:
                return modules[name], len(group.output_shape) == 2
    raise TransferLabError("no layer group with a spatial output to explain", "Grad-CAM needs a CNN or a ViT")


def _token_reshape(model: nn.Module):
    prefix = int(getattr(model, "num_prefix_tokens", 1))

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        grid = tokens[:, prefix:, :]
        side = int(math.isqrt(grid.shape[1]))
        if side * side != grid.shape[1]:
            raise TransferLabError(f"cannot arrange {grid.shape[1]} tokens in a square grid", "use a square input")
        return grid.reshape(grid.shape[0], side, side, grid.shape[2]).permute(0, 3, 1, 2)
    return reshape


def grad_cam(model: nn.Module, groups: list[LayerGroup], preprocessing, image: np.ndarray,
             class_index: int | None = None) -> tuple[np.ndarray, int]:
    """(heat map in [0, 1] at the model's input size, explained class). Default class: the predicted one.

    Args:
        model: the classifier (left in eval mode).
        groups: its layer groups.
        preprocessing: its evaluation preprocessing.
        image: a uint8 HxWx3 picture.
        class_index: the class to explain.

    Returns:
        (heat map, class index).
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer, tokens = target_layer(model, groups)
    x = eval_pipeline(preprocessing)(image=image)["image"][None]
    model.eval()
    if class_index is None:
        with torch.inference_mode():
            class_index = int(model(x).argmax(1))
    with GradCAM(model=model, target_layers=[layer], reshape_transform=_token_reshape(model) if tokens else None) as cam:
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(class_index)])[0]
    return heat.astype(np.float32), class_index


def overlay(picture: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The heat map over the picture (both at the model's input size), uint8 RGB."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(picture.astype(np.float32) / 255, heat, use_rgb=True)
