"""The run state: everything a checkpoint saves, and nothing else.

``RunState`` owns the position in the run (epoch, batch, global step, skipped steps), the
running sums of the epoch in progress (a ``MetricAccumulator``), the random streams (the
shuffle generator's state at the start of the epoch in progress, the augmentation generator,
every stochastic layer's generator) and the ``History`` so far. ``state_dict()`` is the
JSON-ready record a checkpoint stores; ``load_state_dict()`` puts it back, so the remaining
steps replay with the same data order and the same random draws — an interrupted and resumed
run ends bit-identical to an uninterrupted one.

Extension point (an RBM trainer, any other loop): build a ``RunState`` from ``RandomStreams``,
the models whose layers draw random numbers (``[]`` for none), any running-sums object with
``reset``/``state_dict``/``load_state_dict`` (a ``MetricAccumulator`` serves: ``add(error, [None],
[(0, m)])`` sums a reconstruction error) and, in ``generators``, further named generators of the
run (e.g. an RBM's Gibbs sampler); advance it with ``begin_epoch`` / ``advance`` /
``end_epoch``, and hand it to ``checkpoint.Checkpointer`` to write and resume.
"""
from __future__ import annotations

import contextlib

import numpy

from .checkpoint import rng_state, set_rng_state


class RandomStreams:
    """The run's independent generators, all derived from ``seed`` (``SeedSequence.spawn``):
    ``split`` (the validation split), ``shuffle`` (each epoch's order), ``augment`` (data
    expansion) and one per layer of the models (``seed_layers``)."""

    def __init__(self, seed: int) -> None:
        split, shuffle, layers, augment = numpy.random.SeedSequence(seed).spawn(4)
        self.split = numpy.random.default_rng(split)
        self.shuffle = numpy.random.default_rng(shuffle)
        self.augment = numpy.random.default_rng(augment)
        self._layers = layers

    def seed_layers(self, models) -> list:
        """Give every stochastic layer of ``models`` its own generator; returns those layers."""
        layers = [layer for m in models for layer in m.layers]
        for layer, ss in zip(layers, self._layers.spawn(len(layers))):
            if layer.stochastic:
                layer.set_rng(numpy.random.default_rng(ss))
        return [layer for layer in layers if layer.stochastic]


class RunState:
    """Position, running sums, random streams and history of one training run.

    ``identity``: the arguments a resumed run must share (``FitConfig.identity``: the keys
    ``epochs``, ``batch_size``, ``seed``, ``n``, which ``checkpoint.load_checkpoint`` checks).
    ``begin_epoch`` needs of ``data`` only ``order(rng)`` (``inputs.TrainingData``)."""

    def __init__(self, identity: dict, streams: RandomStreams, models, metrics, history,
                 generators: dict | None = None) -> None:
        self.identity = identity
        self.generators = dict(generators or {})
        self.epoch = self.batch = self.step = self.skipped = 0
        self.streams = streams
        self.stochastic = streams.seed_layers(models)
        self.metrics = metrics
        self.history = history
        self.epoch_start = streams.shuffle.bit_generator.state
        self._skipped_at_epoch_start = 0
        self._resumed_history = None

    # -- the run's progress ------------------------------------------------------------------
    @contextlib.contextmanager
    def training(self, callbacks):
        """``on_train_begin`` (callbacks reset themselves), then a resumed run's history; on
        the way out, however training ends, ``on_train_end``."""
        callbacks.on_train_begin({})
        if self._resumed_history is not None:
            self.history.history, self.history.epoch = self._resumed_history
        try:
            yield self
        finally:
            callbacks.on_train_end({})

    def begin_epoch(self, model, data) -> numpy.ndarray:
        """This epoch's sample order. A fresh epoch (not one resumed mid-way) starts with zero
        running sums and zero recurrent states (truncated BPTT restarts with the data)."""
        self.epoch_start = self.streams.shuffle.bit_generator.state
        if self.batch == 0:
            self.metrics.reset()
            if hasattr(model, "reset_states"):  # a model without recurrent state (an RBM) has none
                model.reset_states()
        self._skipped_at_epoch_start = self.skipped
        return data.order(self.streams.shuffle)

    def advance(self, b: int) -> None:
        """Batch ``b`` of the epoch has been computed."""
        self.batch, self.step = b + 1, self.step + 1

    def end_epoch(self) -> None:
        self.epoch, self.batch = self.epoch + 1, 0
        self.epoch_start = self.streams.shuffle.bit_generator.state

    def epoch_logs(self, policy: str) -> dict:
        """``skipped_steps`` of this epoch when bad batches are skipped (``on_nonfinite="skip"``)."""
        return {"skipped_steps": self.skipped - self._skipped_at_epoch_start} if policy == "skip" else {}

    # -- what a checkpoint holds -------------------------------------------------------------
    def state_dict(self) -> dict:
        pos = {"epoch": self.epoch, "batch": self.batch, "step": self.step, "skipped": self.skipped,
               "sums": self.metrics.state_dict()}
        return {"fit": self.identity, "pos": pos, "history": self.history.history,
                "history_epochs": self.history.epoch,
                "rng": {"epoch_start": self.epoch_start, "augment": rng_state(self.streams.augment),
                        "layers": [rng_state(layer.rng) for layer in self.stochastic],
                        **({"extra": {k: rng_state(g) for k, g in self.generators.items()}} if self.generators else {})}}

    def check_state_dict(self, state: dict, where: str) -> None:
        """Raise ``ValueError`` unless ``state`` (from ``checkpoint.load_checkpoint``) can be
        loaded into this run; changes nothing."""
        if state["fit"] != self.identity:
            i = self.identity
            raise ValueError(f"{where}: the checkpoint was written by a run with {state['fit']}, not epochs="
                             f"{i['epochs']}, batch_size={i['batch_size']}, seed={i['seed']}, n={i['n']}")
        if len(state["rng"]["layers"]) != len(self.stochastic):
            raise ValueError(f"{where}: the checkpoint has {len(state['rng']['layers'])} stochastic layers' "
                             f"generator states, the model {len(self.stochastic)}")
        extra = state["rng"].get("extra", {})
        if not isinstance(extra, dict) or set(extra) != set(self.generators):
            raise ValueError(f"{where}: the checkpoint has generators {sorted(extra) if isinstance(extra, dict) else extra}"
                             f", the run {sorted(self.generators)}")
        probe = numpy.random.default_rng()
        for st in [state["rng"]["epoch_start"], state["rng"]["augment"], *state["rng"]["layers"], *extra.values()]:
            set_rng_state(probe, st, where)

    def load_state_dict(self, state: dict, where: str = "resume") -> None:
        self.check_state_dict(state, where)
        pos = state["pos"]
        self.epoch, self.batch, self.step, self.skipped = pos["epoch"], pos["batch"], pos["step"], pos["skipped"]
        self.metrics.load_state_dict(pos["sums"])
        self.epoch_start = state["rng"]["epoch_start"]
        set_rng_state(self.streams.shuffle, self.epoch_start, where)
        set_rng_state(self.streams.augment, state["rng"]["augment"], where)
        for layer, st in zip(self.stochastic, state["rng"]["layers"]):
            set_rng_state(layer.rng, st, where)
        for k, st in state["rng"].get("extra", {}).items():
            set_rng_state(self.generators[k], st, where)
        self._resumed_history = ({k: list(v) for k, v in state["history"].items()}, list(state["history_epochs"]))
