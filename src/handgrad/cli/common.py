"""Pieces shared by the subcommands: the per-epoch report and argument types."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings

import numpy

from ..tasks import DataOptions
from ..training.callbacks import Callback


class EpochPrinter(Callback):
    """One line per epoch on stdout (the CLI's report; the library itself never prints)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1:>3}/{self.epochs}"]
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if k in logs:
                parts.append(f"{k} {logs[k]:.4f}")
        parts.append(f"lr {logs.get('lr', float('nan')):.4g}")
        parts.append(f"{time.perf_counter() - self._t:.1f}s")
        print("  ".join(parts), flush=True)


def widths(text: str) -> tuple[int, ...]:
    """``"256,128"`` → (256, 128)."""
    try:
        out = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 256,128, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths like 256,128, got {text!r}")
    return out


def data_args(sp) -> None:
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--data", metavar="DIR", help="folder with the Fashion-MNIST IDX files "
                   "(default: $HANDGRAD_DATA, then /usr/share/datasets/fashion-mnist)")
    g.add_argument("--subset", action="store_true", help="use the small subset shipped with handgrad")


def data_options(args, **override) -> DataOptions:
    """The task options (``handgrad.tasks.DataOptions``) from a parsed command line; options a
    subcommand lacks keep their defaults."""
    fields = {k: getattr(args, k) for k in DataOptions.__dataclass_fields__ if getattr(args, k, None) is not None}
    fields.update(override)
    return DataOptions(**fields)


def run_distributed(command, args) -> int:
    """``command(args)`` under ``mpiexec -n K`` (K > 1; otherwise just ``command(args)``).

    ``args.distributed`` gets the communicator (``fit`` uses it). Ranks other than 0 print
    nothing (stdout, stderr and warnings silenced) and the command writes files only on rank
    0. An error on one rank prints that rank's traceback on its own stderr and ends every rank
    (``handgrad.distributed.abort_on_error``, exit 1); errors all ranks raise together (a
    failed step, a rejected checkpoint) are printed once, by rank 0."""
    from .. import distributed as dist

    try:
        comm, _ = dist.resolve("auto", where=f"handgrad {getattr(args, 'command', 'train')}")
    except ImportError as exc:  # under mpiexec without mpi4py: every rank gets here, rank 0 says it
        world = dist.launcher_world()
        if world is None or world.rank == 0:
            print(f"handgrad: error: {exc}", file=sys.stderr)
        return 2
    if comm is None:
        return command(args)
    args.distributed = comm
    with contextlib.ExitStack() as stack:
        if not comm.is_root:
            quiet = stack.enter_context(open(os.devnull, "w"))
            stack.enter_context(contextlib.redirect_stdout(quiet))
            stack.enter_context(contextlib.redirect_stderr(quiet))
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
        try:
            with dist.abort_on_error(comm):
                return command(args)
        except dist.RankFailure as exc:
            print(f"handgrad: error: {exc}", file=sys.stderr)
            return 1
        except (FileNotFoundError, ValueError, TypeError) as exc:  # raised by every rank (agreed)
            print(f"handgrad: error: {exc}", file=sys.stderr)
            return 2


def jsonable(value):
    """``value`` with NumPy scalars made Python numbers and anything else JSON cannot hold as its
    ``repr``, for ``run.json`` and ``history.json``."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (numpy.floating, numpy.integer)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def fault_exit(exc, out: str) -> int:
    """The exit status of a training run that raised ``TrainingInterrupted`` (130, with the
    command that continues it) or ``TrainingDiverged`` (3), after printing the message."""
    from ..training import TrainingInterrupted

    if isinstance(exc, TrainingInterrupted):
        print(f"\n{exc}\nto continue: handgrad train --resume {out}")
        return 130
    print(f"\n{exc}")
    return 3
