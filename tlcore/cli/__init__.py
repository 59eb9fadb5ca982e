"""`python -m tlcore`: the engine from a terminal, with one-line errors instead of tracebacks.

One module per group of commands; `parser` names them all, `entry` runs one.
"""

from tlcore.cli.entry import main
from tlcore.cli.parser import build_parser

__all__ = ["main", "build_parser"]
