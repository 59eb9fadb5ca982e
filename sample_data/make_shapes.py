"""Make the bundled demo data set `sample_data/shapes/`: four classes of drawn shapes.

Run from the project root: `python sample_data/make_shapes.py` (same output every time).

Why shapes: the set must be ours (no downloaded or third-party pictures), small
enough to commit, and a fair demo of transfer learning. Colour, size, position,
rotation, fill and background are drawn at random *independently of the class*,
so colour statistics alone sit near chance, while the shape outlines are what
ImageNet features pick up within a minute of CPU training.
"""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("circle", "square", "star", "triangle")
PER_CLASS = 60
SIZE = 128
SUPERSAMPLE = 2  # draw large, shrink: smooth edges without depending on Pillow's antialiasing
SEED = 20261126
QUALITY = 88


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A two-colour gradient in a random direction with grain: no class can be read off it."""
    a = np.array(_random_colour(rng), dtype=np.float32)
    b = np.array(_random_colour(rng), dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = np.clip((xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle) + 0.5, 0, 1)[..., None]
    pixels = a * (1 - t) + b * t + rng.normal(0, 10, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def _polygon(kind: str, cx: float, cy: float, radius: float, rotation: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    if kind == "square":
        angles = [rotation + k * math.pi / 2 + math.pi / 4 for k in range(4)]
        radii = [radius] * 4
    elif kind == "triangle":
        angles = [rotation + k * 2 * math.pi / 3 + rng.uniform(-0.15, 0.15) for k in range(3)]
        radii = [radius * rng.uniform(0.9, 1.1) for _ in range(3)]
    elif kind == "star":
        inner = rng.uniform(0.38, 0.5)
        angles = [rotation + k * math.pi / 5 for k in range(10)]
        radii = [radius if k % 2 == 0 else radius * inner for k in range(10)]
    else:
        raise ValueError(kind)
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii)]


def draw_example(kind: str, rng: np.random.Generator) -> Image.Image:
    big = SIZE * SUPERSAMPLE
    img = _background(rng, big)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):  # clutter: straight strokes, in any colour
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, big, size=4))
        draw.line((x0, y0, x1, y1), fill=_random_colour(rng), width=int(rng.integers(2, 7)))
    radius = rng.uniform(0.2, 0.4) * big
    cx, cy = (float(v) for v in rng.uniform(radius, big - radius, size=2))
    colour = _random_colour(rng)
    filled = rng.random() < 0.6
    width = int(rng.integers(5, 12))
    if kind == "circle":
        squash = rng.uniform(0.85, 1.15)
        box = (cx - radius, cy - radius * squash, cx + radius, cy + radius * squash)
        draw.ellipse(box, fill=colour if filled else None, outline=colour, width=width)
    else:
        points = _polygon(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi), rng)
        if filled:
            draw.polygon(points, fill=colour)
        else:
            draw.line(points + points[:1], fill=colour, width=width, joint="curve")
    img = img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
    return img


def _dashed(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour, width: int,
            rng: np.random.Generator) -> None:
    """A closed outline in chalk: short dashes with gaps, each a little off the line."""
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        length = math.hypot(x1 - x0, y1 - y0)
        steps = max(2, int(length / 14))
        for k in range(steps):
            if rng.random() < 0.3:
                continue  # a gap
            t0, t1 = k / steps, (k + 0.7) / steps
            wobble = rng.normal(0, 1.5, size=2)
            draw.line((x0 + (x1 - x0) * t0 + wobble[0], y0 + (y1 - y0) * t0 + wobble[1],
                       x0 + (x1 - x0) * t1 + wobble[0], y0 + (y1 - y0) * t1 + wobble[1]), fill=colour, width=width)


def draw_chalk(kind: str, rng: np.random.Generator) -> Image.Image:
    """The same four shapes drawn in chalk on a blackboard: light dashed outlines on a dark, smudged ground,
    among chalk scribbles. Nothing of the photo style's colours, fills or gradients is left."""
    big = SIZE * SUPERSAMPLE
    ground = rng.uniform(25, 60, size=3) * np.array([0.8, 1.0, 0.9])
    pixels = ground + rng.normal(0, 8, size=(big, big, 1)) + rng.normal(0, 6, size=(big, big, 3))
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB").filter(ImageFilter.GaussianBlur(2))
    draw = ImageDraw.Draw(img)
    chalk = tuple(int(v) for v in rng.uniform(190, 250, size=3))
    for _ in range(int(rng.integers(2, 5))):  # scribbles: arcs and curls, as left on a board
        x, y = (float(v) for v in rng.uniform(0, big, size=2))
        r = float(rng.uniform(0.03, 0.08) * big)
        start = float(rng.uniform(0, 360))
        draw.arc((x - r, y - r, x + r, y + r), start, start + float(rng.uniform(60, 200)), fill=chalk, width=3)
    radius = rng.uniform(0.2, 0.4) * big
    cx, cy = (float(v) for v in rng.uniform(radius, big - radius, size=2))
    width = int(rng.integers(4, 8))
    if kind == "circle":
        squash = rng.uniform(0.85, 1.15)
        points = [(cx + radius * math.cos(a), cy + radius * squash * math.sin(a))
                  for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
    else:
        points = _polygon(kind, cx, cy, radius, rng.uniform(0, 2 * math.pi), rng)
    _dashed(draw, points, chalk, width, rng)
    return img.resize((SIZE, SIZE), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(0.6))


STYLES = {"photo": draw_example, "chalk": draw_chalk}


def make(out: Path, per_class: int = PER_CLASS, seed: int = SEED, style: str = "photo") -> list[Path]:
    """Write the data set to `out` (replacing it) and return the files in order.

    `style` "chalk" draws the same classes in chalk on a blackboard: a second domain, for domain adaptation
    (a model trained on the photo style loses much of its accuracy there)."""
    draw = STYLES[style]
    if out.exists():
        shutil.rmtree(out)
    written = []
    for class_index, kind in enumerate(CLASSES):
        folder = out / kind
        folder.mkdir(parents=True)
        rng = np.random.default_rng([seed, class_index])  # one stream per class: adding a class changes no other
        for i in range(per_class):
            path = folder / f"{kind}_{i:03d}.jpg"
            draw(kind, rng).save(path, format="JPEG", quality=QUALITY)
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "shapes")
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--style", choices=sorted(STYLES), default="photo",
                        help="chalk: the same shapes in chalk on a blackboard (a second domain)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    files = make(args.out, args.per_class, args.seed, args.style)
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} images ({total / 1e6:.2f} MB) to {args.out}")


if __name__ == "__main__":
    main()
