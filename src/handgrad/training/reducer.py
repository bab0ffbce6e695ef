"""Where the processes of a run meet: the reducer.

A training step and a metric accumulator never talk to other processes themselves; they hand
what must be combined to a *reducer*. ``LocalReducer``, the default, is the single process:
every reduction is the identity and this process is the one that writes and prints.

Extension point (MPI data parallelism, ``DESIGN.md`` "Scale-out"): a reducer for K processes
implements the same five members, each a collective that every rank calls at the same point:

``is_root``
    True on the one process that writes checkpoints and files, prints and shows a progress
    bar (rank 0). ``fit`` and the checkpoint writer consult only this attribute.
``gradients(model, count)``
    Called by the step after backward, before the non-finite guard and the update: replace
    every trainable ``layer.grads[k]`` by the global mini-batch gradient
    ∇C = Σ_r (n_r / n) ∇C_r (the mean of ``003`` §2 statements (5)–(6) regrouped by rank),
    ``count`` = n_r the loss items this rank saw (``loss.last_count``).
``loss(value, count)``
    The global batch loss Σ_r n_r C_r / Σ_r n_r from this rank's mean ``value`` over ``count``
    items, so that every rank's guard sees the same number and takes the same decision.
``sums(totals)``
    Element-wise sum over ranks of a flat dict of numbers (a metric accumulator's running sums:
    loss·samples, samples, labelled items, correct per metric).
``any(flag)``
    True on every rank when ``flag`` is true on some rank (a signal that reached one process
    stops them all at the same step).

The step object (``step.py``) splits nothing by rank: an MPI step takes the global batch, keeps
this rank's shard, runs forward, loss and backward on it and calls ``reducer.gradients``.
"""
from __future__ import annotations


class LocalReducer:
    """One process: nothing to combine, and it is the one that writes and prints."""

    rank = 0
    size = 1
    is_root = True

    def gradients(self, model, count: int) -> None:
        """The gradients in ``model``'s layers are already the mini-batch gradient."""

    def loss(self, value: float, count: int) -> float:
        return value

    def sums(self, totals: dict) -> dict:
        return totals

    def any(self, flag: bool) -> bool:
        return bool(flag)


LOCAL = LocalReducer()


def check_reducer(reducer, where: str = "fit"):
    """``reducer`` itself if it has the members of ``LocalReducer``; None gives the local one."""
    if reducer is None:
        return LOCAL
    missing = [m for m in ("is_root", "gradients", "loss", "sums", "any") if not hasattr(reducer, m)]
    if missing:
        raise TypeError(f"{where}: expected reducer to have {', '.join(missing)} (see handgrad.training.reducer), "
                        f"got {type(reducer).__name__}")
    return reducer
