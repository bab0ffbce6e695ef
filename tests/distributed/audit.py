"""Who wrote and printed what, per rank of an MPI job (for the workers under ``mpiexec``).

``install()``, with ``$AUDIT_DIR`` set: this process's stdout and stderr (file descriptors 1
and 2) go to ``$AUDIT_DIR/rank-R.out``, and an audit hook records every file opened for
writing, renamed, removed or made; at exit the list goes to ``$AUDIT_DIR/rank-R.json``. R is
the launcher's rank (``PMI_RANK``)."""
from __future__ import annotations

import atexit
import json
import os
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install() -> None:
    folder = os.environ.get("AUDIT_DIR")
    if not folder:
        return
    rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    out = os.open(os.path.join(folder, f"rank-{rank}.out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out, 1)
    os.dup2(out, 2)
    written: list[str] = []
    state = {"on": True}

    def compiled_cache(path: str) -> bool:
        # Python's bytecode and numba's compiled kernels (handgrad[fast]) cache themselves in
        # __pycache__ folders the first time a module or kernel is used: not the run's output
        return "__pycache__" in path.split(os.sep)

    def hook(event, args):
        if not state["on"]:
            return
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
            if (writing and isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path) != os.devnull
                    and not compiled_cache(os.fsdecode(path))):
                written.append(os.fsdecode(path))
        elif event in ("os.rename", "os.replace", "os.remove", "os.mkdir", "os.rmdir"):
            if not compiled_cache(os.fsdecode(args[0])):
                written.append(f"{event} {os.fsdecode(args[0])}")

    sys.addaudithook(hook)

    def report():
        state["on"] = False
        with open(os.path.join(folder, f"rank-{rank}.json"), "w") as f:
            json.dump(written, f)

    atexit.register(report)
