"""The ``handgrad`` command: demo, train, evaluate, gradcheck, compare, diagnose, explain,
import-torch, export, and for convolutional models detect, scenes, train-detector and visualize."""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import detect, explain, interop, study, train
from .common import data_args

#: the commands that run as one job over the ranks of ``mpiexec -n K`` (``common.run_distributed``)
MPI_COMMANDS = frozenset({"train", "demo"})


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
    refused = _refuse_under_mpi(args.command)
    if refused is not None:
        return refused
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"handgrad: error: {exc}", file=sys.stderr)
        return 2


def _refuse_under_mpi(command: str) -> int | None:
    """Under ``mpiexec -n K`` (K > 1) a command that is not one job over the ranks would run K
    times side by side, each writing the same files: rank 0 says so and every rank exits 2."""
    from ..distributed import launcher_world

    world = launcher_world()
    if world is None or world.size == 1 or command in MPI_COMMANDS:
        return None
    if world.rank == 0:
        both = " and ".join(f"`handgrad {c}`" for c in sorted(MPI_COMMANDS))
        print(f"handgrad: error: `handgrad {command}` runs as one process; under mpiexec only {both} "
              f"train one model over the {world.size} ranks", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
