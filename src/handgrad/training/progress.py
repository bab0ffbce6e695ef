"""A progress bar on a terminal, silence elsewhere (CI, pipes, notebooks without a TTY).

Uses ``tqdm`` (the ``progress`` extra) when installed; without it, training is silent.
"""
from __future__ import annotations

import os
import sys


def enabled(stream=None) -> bool:
    """True when ``stream`` (stderr by default) is a terminal and we are not in CI."""
    stream = stream or sys.stderr
    if os.environ.get("CI") or os.environ.get("HANDGRAD_NO_PROGRESS"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Null:
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str) -> None: ...
    def close(self) -> None: ...


def bar(total: int, desc: str):
    """A tqdm bar when output is a terminal and tqdm is installed; a silent stand-in otherwise."""
    if not enabled():
        return _Null()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Null()
    return tqdm(total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)
