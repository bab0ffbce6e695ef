"""Flattened contiguous buffers: the gradient allreduce and the broadcasts from rank 0.

One collective per step for the whole model, never one per parameter: a step's latency cost
is paid once (a ring Allreduce of B bytes over K ranks costs about 2(K−1)/K · B / bandwidth
+ 2(K−1) · latency), and LeNet-5's ten parameter arrays would otherwise pay it ten times.
``bucket_bytes`` cuts the one buffer into pieces (MPI counts are 32-bit).

The trailing two entries of the gradient buffer carry this rank's item count c_r and its
"I failed" flag, so the same Allreduce SUM that averages the gradients also gives C = Σ c_r
and tells every rank whether some rank failed — the failure agreement costs nothing extra.
"""
from __future__ import annotations

import json

import numpy

from .. import backend


def trainable_arrays(model) -> list[tuple[int, str]]:
    """``(layer index, param name)`` of every trainable parameter, in model order."""
    return [(i, k) for i, layer in enumerate(model.layers) if layer.trainable for k in layer.params]


class GradientBuffer:
    """One flat buffer of the model's trainable gradients, plus ``[count, failed]``.

    ``pack(scale, count, failed)`` copies ``scale · grads`` in; ``unpack()`` copies the
    (reduced) buffer back into ``layer.grads`` (the same arrays when they have the right
    shape and dtype, so nothing is reallocated)."""

    def __init__(self, model, bucket_bytes: int = 0) -> None:
        self.model = model
        self.keys = trainable_arrays(model)
        self.dtype = numpy.dtype(model.dtype)
        sizes = [int(numpy.prod(model.layers[i].params[k].shape)) for i, k in self.keys]
        self.offsets = numpy.concatenate([[0], numpy.cumsum(sizes, dtype=numpy.int64)]).astype(int)
        self.size = int(self.offsets[-1])
        # float64 tail would need a second buffer; counts are exact in float32 below 2**24 items
        self.flat = numpy.zeros(self.size + 2, dtype=self.dtype)
        self.bucket_bytes = int(bucket_bytes)

    def pack(self, scale: float, count: float = 0.0, failed: bool = False) -> numpy.ndarray:
        flat = self.flat
        if failed:
            flat[:self.size] = 0.0
        else:
            for (i, k), a, b in zip(self.keys, self.offsets[:-1], self.offsets[1:]):
                g = backend.to_numpy(self.model.layers[i].grads[k])
                numpy.multiply(g.reshape(-1), scale, out=flat[a:b], casting="unsafe")
        flat[self.size] = count
        flat[self.size + 1] = 1.0 if failed else 0.0
        return flat

    def allreduce(self, comm) -> None:
        """Sum the buffer over ranks in place, in one call or in ``bucket_bytes`` pieces."""
        flat = self.flat
        if not self.bucket_bytes or flat.nbytes <= self.bucket_bytes:
            comm.allreduce_sum(flat)
            return
        step = max(1, self.bucket_bytes // flat.itemsize)
        for a in range(0, flat.size, step):
            piece = flat[a:a + step]  # a contiguous view: reduced in place
            comm.allreduce_sum(piece)

    @property
    def count(self) -> float:
        return float(self.flat[self.size])

    @property
    def failed(self) -> bool:
        return bool(self.flat[self.size + 1] > 0)

    def unpack(self, scale: float = 1.0) -> None:
        for (i, k), a, b in zip(self.keys, self.offsets[:-1], self.offsets[1:]):
            layer = self.model.layers[i]
            p = layer.params[k]
            src = self.flat[a:b].reshape(p.shape)
            g = layer.grads.get(k)
            if isinstance(g, numpy.ndarray) and g.shape == p.shape and g.dtype == p.dtype and g.flags.writeable:
                numpy.multiply(src, scale, out=g)
            else:
                layer.grads[k] = backend.asarray(src * scale, dtype=p.dtype, xp=backend.array_module(p))


def _flat_of(arrays, dtype) -> numpy.ndarray:
    parts = [backend.to_numpy(a).reshape(-1) for a in arrays]
    return numpy.concatenate(parts).astype(dtype, copy=False) if parts else numpy.zeros(0, dtype)


def _scatter(flat, arrays) -> None:
    a = 0
    for arr in arrays:
        n = int(numpy.prod(arr.shape))
        arr[...] = backend.asarray(flat[a:a + n].reshape(arr.shape), dtype=arr.dtype, xp=backend.array_module(arr))
        a += n


def broadcast_parameters(comm, model, root: int = 0) -> None:
    """Every parameter (trainable or not) set to root's, with one Bcast of one flat buffer.
    Shapes must already agree (same architecture); stateful layers are refused by the
    sharded step, so there is no carried state to send."""
    arrays = [p for _, p in model.parameters()]
    flat = _flat_of(arrays, numpy.float64 if model.dtype == numpy.float64 else model.dtype)
    if comm.size > 1:
        comm.bcast(flat, root)
        _scatter(flat, arrays)


def broadcast_json(comm, obj, root: int = 0):
    """Root's JSON-serialisable ``obj`` on every rank (JSON bytes, never pickle)."""
    data = json.dumps(obj).encode() if comm.rank == root else None
    return json.loads(comm.bcast_bytes(data, root).decode()) if comm.size > 1 else obj


def broadcast_optimizer(comm, optimizer, root: int = 0) -> None:
    """The optimizer's state (lr, step count, every slot buffer) set to root's: the layout
    (keys, slot names, shapes) as JSON, the buffers in one flat Bcast."""
    if comm.size == 1:
        return
    state = optimizer.state_dict() if comm.rank == root else None
    layout = None
    if comm.rank == root:
        layout = {"lr": state["lr"], "steps": state["steps"],
                  "slots": [[key, slot, list(arr.shape), str(arr.dtype)]
                            for key, slots in state["state"].items() for slot, arr in slots.items()]}
    layout = broadcast_json(comm, layout, root)
    dtype = numpy.float64
    if comm.rank == root:
        flat = _flat_of([state["state"][key][slot] for key, slot, _, _ in layout["slots"]], dtype)
    else:
        flat = numpy.empty(sum(int(numpy.prod(s)) for _, _, s, _ in layout["slots"]), dtype)
    comm.bcast(flat, root)
    if comm.rank == root:
        return
    new, a = {}, 0
    for key, slot, shape, dt in layout["slots"]:
        n = int(numpy.prod(shape))
        new.setdefault(key, {})[slot] = flat[a:a + n].reshape(shape).astype(dt)
        a += n
    optimizer.load_state_dict({"lr": layout["lr"], "steps": layout["steps"], "state": new})


def broadcast_generators(comm, generators, root: int = 0) -> None:
    """Every generator's bit-generator state set to root's (JSON of the state dicts)."""
    if comm.size == 1 or not generators:
        return
    states = broadcast_json(comm, [g.bit_generator.state for g in generators] if comm.rank == root else None, root)
    for g, st in zip(generators, states):
        g.bit_generator.state = st
