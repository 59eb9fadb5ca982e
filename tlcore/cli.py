"""`python -m tlcore`: the engine from a terminal, with one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tlcore.errors import TransferLabError

__all__ = ["main", "build_parser"]

EXIT_USER_ERROR = 1


def _cmd_data_scan(args: argparse.Namespace) -> int:
    from tlcore.data import scan

    report = scan(args.path)
    print(report.to_json() if args.json else report.summary())
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return EXIT_USER_ERROR if report.errors else 0


def _cmd_data_split(args: argparse.Namespace) -> int:
    from tlcore.data import default_manifest_path, make_split, scan

    report = scan(args.path)
    manifest = make_split(report, seed=args.seed, val=args.val, test=args.test, test_from_val=args.test_from_val)
    out = manifest.save(args.out or default_manifest_path(report, args.seed))
    counts = manifest.counts()
    width = max(len(c) for c in manifest.classes)
    print(f"split {manifest.id} (seed {manifest.seed}) of {manifest.root}")
    print(f"  {'class':<{width}}  {'train':>6} {'val':>6} {'test':>6}")
    for label in manifest.classes:
        print(f"  {label:<{width}}  " + " ".join(f"{counts[s][label]:>6}" for s in ("train", "val", "test")))
    for note in manifest.notes:
        print(f"note: {note}")
    print(f"manifest written to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tlcore", description="Transfer Lab engine: transfer learning for image classifiers.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="inspect and split a data set").add_subparsers(dest="data_command", required=True)
    scan = data.add_parser("scan", help="check every file and print a report")
    scan.add_argument("path", help="a folder with one sub-folder per class (or train/val/test folders), or a .zip")
    scan.add_argument("--json", action="store_true", help="print the full report as JSON")
    scan.set_defaults(handler=_cmd_data_scan)

    split = data.add_parser("split", help="make a stratified, seeded train/val/test split and save its manifest")
    split.add_argument("path", help="a folder or .zip, as for `scan`")
    split.add_argument("--seed", type=int, default=0, help="same seed, same split (default 0)")
    split.add_argument("--val", type=float, default=0.15, help="validation share per class (default 0.15)")
    split.add_argument("--test", type=float, default=0.15, help="test share per class (default 0.15)")
    split.add_argument("--test-from-val", type=float, default=0.5,
                       help="for folders already split without test/: share of val set aside as test (default 0.5)")
    split.add_argument("--out", type=Path, help="where to write the manifest (default: the Transfer Lab data folder)")
    split.set_defaults(handler=_cmd_data_split)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except TransferLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
