"""A progress bar on a terminal, silence elsewhere (CI, pipes, notebooks without a TTY).

Uses ``tqdm`` (the ``progress`` extra) when installed; without it, training is silent.
``bar``/``enabled`` and the ``epoch_bar`` context manager serve any training loop; under
several processes only the root shows one (pass ``show=reducer.is_root and ...``).
"""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def epoch_bar(steps: int, desc: str, show: bool, done: int = 0):
    """One epoch's bar of ``steps`` batches, ``done`` of them already (a resumed epoch); closed
    on exit however the epoch ends. A silent stand-in when ``show`` is false."""
    b = bar(steps, desc) if show else _Null()
    b.update(done)
    try:
        yield b
    finally:
        b.close()
