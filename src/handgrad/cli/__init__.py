"""The ``handgrad`` command: demo, train, evaluate, gradcheck, diagnose, and for convolutional
models detect, scenes, train-detector and visualize."""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import detect, study, train
from . import explain, interop
from .common import data_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handgrad", description="Neural networks with hand-derived gradients.")
    p.add_argument("--version", action="version", version=f"handgrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    train.add_commands(sub, data_args)
    study.add_commands(sub, data_args)
    detect.add_commands(sub, data_args)
    explain.add_commands(sub, data_args)
    interop.add_commands(sub, data_args)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"handgrad: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
