"""Augmentation on the device, on whole batches of uint8 pictures from the decoded-image cache.

Why our own, on `grid_sample`: torchvision.transforms.v2 draws one set of random parameters
per call, so a batched tensor gets the same crop and the same flip for every picture in it;
per-picture randomness would mean a Python loop of small kernels. kornia draws per picture
but is one more dependency (absent on the GPU machines here) for the same few operations.
Every geometric step of a spec (flips, quarter turns, affine zoom/shift/rotation, random
resized crop) is a 3x3 matrix per picture; their product and the final centre crop become
one `affine_grid` + one `grid_sample` for the whole batch. Colour steps are a few batched
tensor operations with per-picture factors. A seeded generator repeats a batch exactly.

The albumentations spec stays the one description of augmentation: `device_spec` reads it
and says which steps cannot run here (noise, cut-out, HSV shifts...), and the run then keeps the
CPU pipeline with a note.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tlcore.inputs.augment_spec import AugmentSpec

__all__ = ["DeviceAugment", "DeviceEval", "device_spec", "DEVICE_STEPS"]

_BORDERS = {0: "zeros", 1: "border", 2: "reflection", 4: "reflection"}  # OpenCV border codes -> grid_sample


def _pair(value, symmetric: bool = True) -> tuple[float, float]:
    """albumentations' number-or-range: a number v is (-v, v) for limits, (v, v) for Affine's fixed values."""
    if isinstance(value, (int, float)):
        return (-float(value), float(value)) if symmetric else (float(value), float(value))
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"not a number or a range: {value!r}")
    low, high = value
    return float(low), float(high)


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=device)


def _applied(n: int, p: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) < p


def _eye(n: int, device) -> torch.Tensor:
    return torch.eye(3, device=device).expand(n, 3, 3).clone()


# --- geometric steps: each returns per-picture sampling matrices (output coords -> input coords) -------------------


@dataclass(frozen=True)
class Flip:
    p: float
    axis: int  # 0: horizontal (mirror x), 1: vertical

    def matrices(self, n, g, device, state) -> torch.Tensor:
        m = _eye(n, device)
        m[:, self.axis, self.axis] = torch.where(_applied(n, self.p, g, device), -1.0, 1.0)
        return m


@dataclass(frozen=True)
class QuarterTurns:
    p: float

    def matrices(self, n, g, device, state) -> torch.Tensor:
        turns = torch.randint(0, 4, (n,), generator=g, device=device) * _applied(n, self.p, g, device)
        angle = turns.float() * (math.pi / 2)
        return _rotation(angle)


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    m = _eye(len(angle), angle.device)
    cos, sin = torch.cos(angle).round(decimals=6), torch.sin(angle).round(decimals=6)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


@dataclass(frozen=True)
class Affine:
    p: float
    scale: tuple[float, float]
    translate: tuple[float, float]  # fraction of the side
    rotate: tuple[float, float]  # degrees
    padding: str = "reflection"  # what fills the corners a turn uncovers (grid_sample's name for the border mode)

    def matrices(self, n, g, device, state) -> torch.Tensor:
        on = _applied(n, self.p, g, device)
        scale = torch.where(on, _uniform(n, *self.scale, g, device), 1.0)
        shift = torch.where(on[:, None], _uniform(2 * n, *self.translate, g, device).view(n, 2), 0.0)
        angle = torch.where(on, _uniform(n, *self.rotate, g, device), 0.0) * (math.pi / 180)
        # the picture is moved by T(p) = R s p + 2 t; sampling needs its inverse: R^-1 (q - 2 t) / s
        m = _rotation(-angle)
        m[:, :2, :2] /= scale[:, None, None]
        m[:, :2, 2] = -(m[:, :2, :2] @ (2 * shift)[:, :, None])[:, :, 0]
        return m


@dataclass(frozen=True)
class ResizedCrop:
    """A random rectangle of `scale` of the area and `ratio` of aspect, resized to `size` (torchvision's rule)."""

    p: float
    scale: tuple[float, float]
    ratio: tuple[float, float]
    size: int
    attempts: int = 10

    def sample(self, n: int, g: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per picture: width and height (fractions of the side), centre x and y (normalised), as torchvision draws."""
        k = self.attempts
        area = _uniform(n * k, *self.scale, g, device).view(n, k)
        log_ratio = _uniform(n * k, math.log(self.ratio[0]), math.log(self.ratio[1]), g, device).view(n, k)
        ratio = torch.exp(log_ratio)
        w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
        fits = (w <= 1) & (h <= 1)
        first = torch.where(fits.any(1), fits.float().argmax(1), -1)
        pick = first.clamp(min=0)[:, None]
        w, h = w.gather(1, pick)[:, 0], h.gather(1, pick)[:, 0]
        # no attempt fitted: the whole picture at the nearest allowed aspect (torchvision's fallback); a square
        # source means ratio 1 fits
        fallback = first < 0
        w, h = torch.where(fallback, 1.0, w), torch.where(fallback, 1.0, h)
        on = _applied(n, self.p, g, device)
        w, h = torch.where(on, w, 1.0), torch.where(on, h, 1.0)
        cx = (1 - w) * (2 * torch.rand(n, generator=g, device=device) - 1)
        cy = (1 - h) * (2 * torch.rand(n, generator=g, device=device) - 1)
        return w, h, cx, cy

    def matrices(self, n, g, device, state) -> torch.Tensor:
        w, h, cx, cy = self.sample(n, g, device)
        state["size"] = self.size
        m = _eye(n, device)
        m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2] = w, h, cx, cy
        return m


# --- colour steps: float pictures in [0, 1], NCHW ----------------------------------------------------------------

_GREY = (0.299, 0.587, 0.114)


def _grey(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_GREY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def _per(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


@dataclass(frozen=True)
class ColorJitter:
    p: float
    brightness: tuple[float, float]
    contrast: tuple[float, float]
    saturation: tuple[float, float]
    hue: tuple[float, float]  # fraction of the colour circle

    def apply(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, device = len(x), x.device
        on = _per(_applied(n, self.p, g, device))
        b = _per(_uniform(n, *self.brightness, g, device))
        c = _per(_uniform(n, *self.contrast, g, device))
        s = _per(_uniform(n, *self.saturation, g, device))
        h = _uniform(n, *self.hue, g, device)
        y = (x * b).clamp(0, 1)
        mean = _grey(y).mean((2, 3), keepdim=True)
        y = ((y - mean) * c + mean).clamp(0, 1)
        grey = _grey(y)
        y = ((y - grey) * s + grey).clamp(0, 1)
        y = _hue_shift(y, h).clamp(0, 1)
        return torch.where(on, y, x)


def _hue_shift(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `turns` of the circle in YIQ space: a per-picture 3x3 matrix, no HSV round trip."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    angle = turns * 2 * math.pi
    rot = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = angle.cos(), -angle.sin(), angle.sin(), angle.cos()
    matrix = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    return torch.einsum("nij,njhw->nihw", matrix, x)


@dataclass(frozen=True)
class BrightnessContrast:
    p: float
    brightness: tuple[float, float]  # added, as a fraction of full scale
    contrast: tuple[float, float]  # multiplied, around 1

    def apply(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, device = len(x), x.device
        on = _per(_applied(n, self.p, g, device))
        alpha = _per(1 + _uniform(n, *self.contrast, g, device))
        beta = _per(_uniform(n, *self.brightness, g, device))
        return torch.where(on, (x * alpha + beta).clamp(0, 1), x)


@dataclass(frozen=True)
class ToGray:
    p: float

    def apply(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        on = _per(_applied(len(x), self.p, g, x.device))
        return torch.where(on, _grey(x).expand_as(x), x)


@dataclass(frozen=True)
class GaussianBlur:
    """A Gaussian blur per picture: an odd kernel size from `sizes`, a sigma from `sigma` (albumentations' draw)."""

    p: float
    sizes: tuple[int, int]
    sigma: tuple[float, float]

    def apply(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, channels, device = len(x), x.shape[1], x.device
        odd = torch.arange(self.sizes[0], self.sizes[1] + 1, 2, device=device)
        size = odd[torch.randint(0, len(odd), (n,), generator=g, device=device)]
        sigma = _uniform(n, *self.sigma, g, device)
        on = _per(_applied(n, self.p, g, device))
        radius = self.sizes[1] // 2
        offsets = torch.arange(-radius, radius + 1, device=device, dtype=x.dtype)
        weights = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None] ** 2))
        weights = torch.where(offsets[None].abs() <= (size[:, None] // 2), weights, 0.0)
        weights = (weights / weights.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # one kernel per channel
        flat = F.pad(x.reshape(1, n * channels, *x.shape[2:]), (radius,) * 4, mode="reflect")
        flat = F.conv2d(flat, weights.view(-1, 1, 1, 2 * radius + 1), groups=n * channels)
        flat = F.conv2d(flat, weights.view(-1, 1, 2 * radius + 1, 1), groups=n * channels)
        return torch.where(on, flat.view_as(x), x)


def _blur(entry: dict):
    sizes = entry.get("blur_limit", (3, 7))
    low, high = (3, int(sizes)) if isinstance(sizes, (int, float)) else (int(sizes[0]), int(sizes[1]))
    low, high = max(3, low | 1), max(3, high | 1)  # albumentations' odd sizes from 3
    if low > high:
        return None
    return GaussianBlur(float(entry.get("p", 0.5)), (low, high), _pair(entry.get("sigma_limit", (0.5, 3.0)),
                                                                          symmetric=False))


def _flip(entry: dict, axis: int):
    return Flip(float(entry.get("p", 0.5)), axis)


def _affine(entry: dict):
    unsupported = {k for k in entry if k not in {"__class_fullname__", "p", "scale", "translate_percent", "rotate",
                                                 "shear", "border_mode", "interpolation"}}
    if unsupported or _pair(entry.get("shear", 0) or 0) != (0.0, 0.0):
        return None
    return Affine(float(entry.get("p", 0.5)), _pair(entry.get("scale", 1.0), symmetric=False),
                  _pair(entry.get("translate_percent", 0.0) or 0.0, symmetric=False),
                  _pair(entry.get("rotate", 0.0) or 0.0, symmetric=False),
                  _BORDERS.get(int(entry.get("border_mode", 0)), "zeros"))


def _jitter(entry: dict):
    def factor(name: str, default: float) -> tuple[float, float]:
        value = entry.get(name, default)
        return (max(0.0, 1 - value), 1 + value) if isinstance(value, (int, float)) else _pair(value)

    return ColorJitter(float(entry.get("p", 0.5)), factor("brightness", 0.2), factor("contrast", 0.2),
                       factor("saturation", 0.2), _pair(entry.get("hue", 0.2)))


def _resized_crop(entry: dict):
    size = entry.get("size") or (entry.get("height"), entry.get("width"))
    if size[0] != size[1]:
        return None
    return ResizedCrop(float(entry.get("p", 1.0)), _pair(entry.get("scale", (0.08, 1.0))),
                       _pair(entry.get("ratio", (0.75, 4 / 3))), int(size[0]))


# albumentations name -> the device step, or None where its parameters have no device form
DEVICE_STEPS: dict[str, Callable[[dict], object]] = {
    "HorizontalFlip": lambda e: _flip(e, 0),
    "VerticalFlip": lambda e: _flip(e, 1),
    "RandomRotate90": lambda e: QuarterTurns(float(e.get("p", 0.5))),
    "Affine": _affine,
    "RandomResizedCrop": _resized_crop,
    "ColorJitter": _jitter,
    "RandomBrightnessContrast": lambda e: BrightnessContrast(
        float(e.get("p", 0.5)), _pair(e.get("brightness_limit", 0.2)), _pair(e.get("contrast_limit", 0.2))),
    "ToGray": lambda e: ToGray(float(e.get("p", 0.5))),
    "GaussianBlur": _blur,
}


def device_spec(spec: AugmentSpec) -> tuple[list | None, str]:
    """The spec's steps as device steps, or (None, why not) when one of them has no device form."""
    steps = []
    for entry in spec.transforms:
        name = str(entry.get("__class_fullname__", "")).rsplit(".", 1)[-1]
        make = DEVICE_STEPS.get(name)
        try:
            step = make(entry) if make else None
        except (ValueError, TypeError):  # a form of its parameters the device steps do not read
            step = None
        if step is None:
            return None, (f"{name} has no GPU form here (the GPU runs {', '.join(DEVICE_STEPS)}), so this run "
                          "augments on the CPU")
        steps.append(step)
    return steps, ""


class DeviceEval:
    """uint8 NHWC squares -> normalised float NCHW of the input size: the evaluation centre crop, sliced exactly."""

    def __init__(self, preprocessing, device: torch.device) -> None:
        self.crop = preprocessing.input_size[1:]
        self.mean = torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1) * 255

    def reseed(self, seed: int) -> None:
        """Nothing: evaluation is not random (here so both kinds are called alike).

        Args:
            seed: ignored.
        """
        pass

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        side = pixels.shape[1]
        (h, w), top, left = self.crop, (side - self.crop[0]) // 2, (side - self.crop[1]) // 2
        x = pixels[:, top:top + h, left:left + w].permute(0, 3, 1, 2).float()
        return ((x - self.mean) / self.std).contiguous()


class DeviceAugment:
    """The spec's steps on a batch: one resampling for all geometry, then colour and blur, then the model's normalisation."""

    def __init__(self, steps: list, preprocessing, device: torch.device, seed: int = 0) -> None:
        self.steps = steps
        self.crop = preprocessing.input_size[1:]
        self.mean = torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1)
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.reseed(seed)
        affine = [s for s in steps if isinstance(s, Affine)]
        self.padding = affine[0].padding if affine else "zeros"  # one resampling: the first Affine's border

    def reseed(self, seed: int) -> None:
        """Sets the random draws of the next batches, so an epoch augments the same after a resume.

        Args:
            seed: the new seed.
        """
        self.generator.manual_seed(int(seed))

    def sampling(self, n: int) -> torch.Tensor:
        """Per picture, the 2x3 matrix from output coordinates to source coordinates (normalised, [-1, 1])."""
        state = {"size": None}
        m = _eye(n, self.device)
        for step in self.steps:
            if hasattr(step, "matrices"):
                m = m @ step.matrices(n, self.generator, self.device, state)
        return m, state["size"]

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        n, side = len(pixels), pixels.shape[1]
        m, size = self.sampling(n)
        crop = torch.tensor([self.crop[1] / (size or side), self.crop[0] / (size or side)], device=self.device)
        final = m.clone()
        final[:, :2, :2] = m[:, :2, :2] * crop[None, None, :]  # the centre crop, the last step of every pipeline
        x = pixels.permute(0, 3, 1, 2).float() / 255
        grid = F.affine_grid(final[:, :2], [n, 3, *self.crop], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding, align_corners=False)
        for step in self.steps:
            if hasattr(step, "apply"):
                x = step.apply(x, self.generator)
        return (x - self.mean) / self.std
