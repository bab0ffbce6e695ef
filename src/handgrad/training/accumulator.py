"""The one metric accumulator of training and evaluation: running sums over batches.

Over one pass of data (an epoch of ``fit``, or an ``evaluate`` call) it sums the loss weighted
by batch size, the samples, the labelled items (labels ≥ 0; −1 marks padding) and, per
accuracy-type metric, the correct items; the means are taken once, at the end:

    loss = Σ_b C_b·m_b / Σ_b m_b,    accuracy = Σ_b correct_b / Σ_b items_b,

m_b the samples of batch b and C_b its mean loss (``003`` §2, the cost as a mean over
observations). ``fit``'s ``loss`` and ``accuracy`` are these sums over the epoch's batches, as
the model changed during it; ``evaluate``'s are over a fixed model.

Extension point (MPI): each process adds only what it computed — the outputs and the spans of
the batch that were its own — and ``result()`` and ``state_dict()`` sum the totals over ranks
with ``reducer.sums`` (collectives: every rank calls them together). ``load_state_dict`` puts
a checkpoint's global totals on the root and zeros elsewhere, so the sum over ranks is kept.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy

from .. import backend
from .. import metrics as M
from .reducer import LOCAL


class MetricAccumulator:
    """Running sums for ``names`` (accuracy, topK_accuracy, per_class_accuracy).

    ``classes``: whether the targets are classes (else only the loss is reported).
    ``per_class_accuracy`` keeps the outputs (N, C) to build the confusion matrix at the end."""

    def __init__(self, names: Sequence[str], classes: bool, reducer=LOCAL) -> None:
        self.names = list(names)
        self.classes = classes
        self.reducer = reducer
        self._counted = [(k, M.topk_of(k)) for k in self.names if k != "per_class_accuracy"]
        self.reset()

    def reset(self) -> None:
        self.loss, self.seen, self.items = 0.0, 0, 0
        self.correct = {k: 0 for k, _ in self._counted}
        self._outputs, self._labels = [], []

    def add(self, value: float, outputs, spans, labels=None) -> None:
        """One batch: its mean loss ``value``; ``outputs[i]`` the model's output for rows
        ``spans[i] = (a, b)`` of the batch; ``labels`` the batch's integer classes (or None)."""
        m = sum(b - a for a, b in spans)
        self.loss += value * m
        self.seen += m
        if labels is None or not self.classes:
            return
        self.items += sum(M.count(labels[a:b]) for a, b in spans)
        for out, (a, b) in zip(outputs, spans):
            lb = labels[a:b]
            for k, topk in self._counted:
                self.correct[k] += M.correct(out, lb) if topk is None else M.top_k_correct(out, lb, topk)
            if "per_class_accuracy" in self.names:
                self._outputs.append(backend.to_numpy(out))
                self._labels.append(backend.to_numpy(lb))

    @property
    def running_loss(self) -> float:
        """This process's mean loss so far (no reduction: for a progress bar)."""
        return self.loss / max(1, self.seen)

    def state_dict(self) -> dict:
        """The global running sums (JSON-ready): ``{"loss", "seen", "items", "correct": {...}}``."""
        flat = self.reducer.sums({"loss": self.loss, "seen": self.seen, "items": self.items,
                                  **{f"correct.{k}": v for k, v in self.correct.items()}})
        return {"loss": flat["loss"], "seen": flat["seen"], "items": flat["items"],
                "correct": {k: flat[f"correct.{k}"] for k in self.correct}}

    def load_state_dict(self, state: dict) -> None:
        self.reset()
        if not self.reducer.is_root:  # the root carries the global totals
            return
        self.loss, self.seen, self.items = state["loss"], state["seen"], state["items"]
        self.correct.update(state["correct"])

    def _per_class(self) -> list[float]:
        """Accuracy per true class from the confusion matrix, summed over processes when there
        are several (the class count agreed first: a process may have seen no batch)."""
        if getattr(self.reducer, "size", 1) == 1:
            return M.per_class_accuracy(numpy.concatenate(self._outputs), numpy.concatenate(self._labels))
        width = self._outputs[0].shape[-1] if self._outputs else 0
        agreed = self.reducer.sums({"width": width, "with": 1 if self._outputs else 0})
        k = agreed["width"] // max(1, agreed["with"])
        cm = (M.confusion_matrix(numpy.concatenate(self._outputs), numpy.concatenate(self._labels), k)
              if self._outputs else numpy.zeros((k, k), dtype=numpy.int64))
        flat = self.reducer.sums({f"{i:08d}": int(v) for i, v in enumerate(cm.ravel())})
        cm = numpy.array([flat[f"{i:08d}"] for i in range(k * k)], dtype=numpy.int64).reshape(k, k)
        totals = cm.sum(axis=1)
        return [float(cm[i, i] / totals[i]) if totals[i] else float("nan") for i in range(k)]

    def result(self, prefix: str = "") -> dict:
        """``{prefix + "loss": mean loss, prefix + metric: value, ...}`` over everything added."""
        total = self.state_dict()
        out = {f"{prefix}loss": total["loss"] / max(1, total["seen"])}
        if not self.classes:
            return out
        for k in self.names:
            if k == "per_class_accuracy":
                out[prefix + k] = self._per_class()
            else:
                out[prefix + k] = total["correct"][k] / max(1, total["items"])
        return out
