"""Typed, bounded option values and the options several commands share."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "text_columns",
    "path_value",
    "bounded",
    "add_model_arguments",
    "add_ray_arguments",
]


def text_columns(parser: argparse.ArgumentParser) -> None:
    """The --text-column and --label-column options of a command that reads texts.

    Args:
        parser: the command's parser (changed in place).
    """
    parser.add_argument("--text-column", help="texts: the column of the texts (default: found by name, e.g. text)")
    parser.add_argument("--label-column", help="texts: the column of the labels (default: found by name, e.g. label)")


def path_value(text: str) -> Path:
    """A path option's value: empty text (which would mean this folder) is refused in one line."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give a file or folder name")
    return Path(text)


def bounded(kind: type, low: float, high: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of this kind within [low, high] (above `low` with `above`: a size limit may be
    tiny but not 0); NaN, infinities, 5,000 digits and the like are refused in one line naming the option
    ("argument --topk: 0 is out of range: use 1 to 1000")."""
    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a {'whole ' if kind is int else ''}number") from None
        inside = low < value <= high if above else low <= value <= high
        if (isinstance(value, float) and not math.isfinite(value)) or not inside:
            wanted = f"a number above {low:g}, up to {high:g}" if above else f"{low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"{text[:40]} is out of range: use {wanted}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    parse.kind, parse.low, parse.high, parse.above = kind, low, high, above  # read by the tests of every bound
    return parse


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a command about one model: name, weights, classes, finer groups.

    Args:
        parser: the command's parser (changed in place).
    """
    parser.add_argument("name", help="a timm model name, e.g. resnet50 or tf_efficientnet_lite0")
    parser.add_argument("--weights", help="a .safetensors or .pth weights file for this model")
    parser.add_argument("--random-init", action="store_true", help="no pretrained weights (much worse; say so)")
    parser.add_argument("--download", action="store_true", help="allow downloading weights from the Hugging Face hub")
    parser.add_argument("--fine", action="store_true", help="finer layer groups (per block instead of per stage)")
    parser.add_argument("--classes", type=bounded(int, 2, 100_000), default=2, help="number of classes of the new head (default 2)")


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The --ray options of a command whose runs can go to a Ray cluster.

    Args:
        parser: the command's parser (changed in place).
    """
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run on Ray: alone, a Ray instance started here; `auto` or an address (ray://head:10001) "
                             "joins a cluster (pip install -r requirements-scale.txt)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--shared-data", dest="ray_data", action="store_const", const="shared",
                      help="with --ray: every node reads the data and writes run folders at the same paths")
    data.add_argument("--ship-data", dest="ray_data", action="store_const", const="ship",
                      help="with --ray: send the split's pictures through Ray's object store (the default for a "
                           "cluster, up to 2 GB)")
    parser.add_argument("--ray-cpus-per-run", type=bounded(int, 1, 1024), default=1, help="with --ray on CPUs: CPUs each run takes")
