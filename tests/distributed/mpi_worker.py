"""Run under ``mpiexec -n K python mpi_worker.py MODE MODEL DTYPE``: the distributed pieces on
tiny data, compared with the single-process computation each rank also does itself. Rank 0
prints one JSON line ``RESULT {...}``. Modes (several joined by "+" run in one
launch): ``grad`` (one step's allreduced gradient), ``bucket`` (the same, in ``--bucket=BYTES``
pieces), ``train`` (a few optimizer steps with dropout and uneven batches), ``norows`` (the
same without row-sharded dropout draws: must differ), ``bcast`` (optimizer and generator
states from rank 0), ``eval`` (``hg.evaluate`` with the reducer: batches sharded over ranks,
sums and the per-class confusion matrix added), ``fail`` (rank 1's forward raises at the
second step), ``abort`` (rank 1 raises outside a step), ``signal`` (stop on a forwarded signal)."""
from __future__ import annotations

import json
import sys

import numpy as np

import handgrad as hg
from handgrad import distributed as dist
from handgrad import layers as L
from handgrad import losses, optim


def build(kind: str, dtype: str):
    if kind == "mlp":
        return hg.Sequential([L.Dense(6, 8, rng=1, dtype=dtype), L.Tanh(), L.Dropout(0.3, rng=9),
                              L.Dense(8, 3, rng=2, dtype=dtype)])
    if kind == "cnn":
        return hg.Sequential([L.Conv2D(1, 2, 3, padding=1, rng=1, dtype=dtype), L.Tanh(), L.MaxPool2D(2),
                              L.Flatten(), L.Dropout(0.25, rng=9), L.Dense(2 * 3 * 3, 3, rng=2, dtype=dtype)])
    if kind == "lstm":  # per-step labels with -1 padding: the (sample, step) weighting
        return hg.Sequential([L.LSTM(4, 5, rng=1, dtype=dtype), L.Dropout(0.2, rng=9),
                              L.Dense(5, 3, rng=2, dtype=dtype)])
    raise ValueError(kind)


def data(kind: str, n: int, dtype: str):
    rng = np.random.default_rng(42)
    if kind == "mlp":
        x = rng.standard_normal((n, 6))
        y = rng.integers(0, 3, n)
    elif kind == "cnn":
        x = rng.standard_normal((n, 1, 6, 6))
        y = rng.integers(0, 3, n)
    else:
        x = rng.standard_normal((n, 5, 4))
        y = rng.integers(0, 3, (n, 5))
        y[rng.random((n, 5)) < 0.3] = -1
        y[0] = -1  # a sample of padding only: its shard may count zero items
    return x.astype(dtype), y


def grads_of(model) -> np.ndarray:
    return np.concatenate([layer.grads[k].ravel() for layer in model.layers if layer.trainable
                           for k in layer.params]).astype(np.float64)


def weights_of(model) -> np.ndarray:
    return np.concatenate([p.ravel() for _, p in model.parameters()]).astype(np.float64)


def rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(1e-30, float(np.max(np.abs(b)))))


def same_on_all_ranks(comm, v: np.ndarray) -> bool:
    ref = v.copy()
    comm.bcast(ref, 0)
    return bool(np.array_equal(ref, v))


def seed_layers(model, seed: int):
    for i, layer in enumerate(model.layers):
        if layer.stochastic:
            layer.set_rng(np.random.default_rng([seed, i]))


def main() -> None:
    mode, kinds, dtype = sys.argv[1:4]
    options = sys.argv[4:]  # --bucket=BYTES for mode "bucket"
    bucket = [int(o.split("=")[1]) for o in options if o.startswith("--bucket=")]
    comm = dist.MPICommunicator()
    if mode == "abort":
        with dist.abort_on_error(comm):
            if comm.rank == 1:
                raise OSError("disk full while writing on rank 1")
            comm.barrier()
        return
    if mode == "signal":
        return signal_run(comm, options[0])
    results = {}
    for one_mode in mode.split("+"):  # several modes in one launch: keys "mode:kind"
        for kind in kinds.split(","):
            comm.stats.reset()
            reducer = dist.MPIReducer(comm, bucket[0] if bucket and one_mode == "bucket" else 0)
            results[f"{one_mode}:{kind}"] = run(one_mode.replace("bucket", "grad"), kind, dtype, comm, reducer,
                                                options)
    if comm.rank == 0:
        print("RESULT " + json.dumps(results), flush=True)


def run(mode, kind, dtype, comm, reducer, options) -> dict:
    loss = losses.SoftmaxCrossEntropy()
    n = 11
    x, y = data(kind, n, dtype)
    ref, model = build(kind, dtype), build(kind, dtype)
    if comm.rank != 0:  # start from different weights: the broadcast from rank 0 must fix it
        for _, p in model.parameters():
            p += 1.0
    dist.broadcast_parameters(comm, model)
    seed_layers(ref, 7)
    seed_layers(model, 7)
    views = [] if mode == "norows" else dist.install_row_sharding([model])
    step = dist.ShardedStep(model, loss, reducer, generators=views)
    if mode == "grad":
        idx = np.arange(n)
        out = ref.forward(x[idx], training=True)
        ref_value = loss.forward(out, y[idx])
        ref.backward(loss.backward(), input_grad=False)
        value, _, spans = step(x[idx], y[idx])
        g = grads_of(model)
        result = {"rel": rel(g, grads_of(ref)), "value": abs(value - ref_value), "same": same_on_all_ranks(comm, g),
                  "spans": spans, "allreduce_calls": comm.stats.calls}
    elif mode in ("train", "fail", "norows"):
        opt_ref, opt = optim.Adam(ref, lr=0.01), optim.Adam(model, lr=0.01)
        order = np.random.default_rng(3)
        for epoch in range(2):
            perm = order.permutation(n)
            # batch 4 over 11 samples: 4, 4, 3 rows; then a 2-row batch for 3 ranks' empty shard
            for lo, hi in ((0, 4), (4, 8), (8, 11), (0, 2)):
                idx = np.sort(perm[lo:hi])
                out = ref.forward(x[idx], training=True)
                loss.forward(out, y[idx])
                ref.backward(loss.backward(), input_grad=False)
                opt_ref.step()
                if mode == "fail" and comm.rank == 1 and epoch == 0 and lo == 4:
                    raise_in = model.layers[0]
                    raise_in.forward = lambda *a, **k: (_ for _ in ()).throw(ValueError("bad batch on rank 1"))
                step(x[idx], y[idx])
                opt.step()
        w = weights_of(model)
        result = {"rel": rel(w, weights_of(ref)), "same": same_on_all_ranks(comm, w)}
    elif mode == "bcast":  # optimizer state and generator states from rank 0
        opt = optim.Adam(model, lr=0.01 * (comm.rank + 1))
        for _ in range(comm.rank == 0 and 2):  # local steps, no collective
            loss.forward(model.forward(x, training=True), y)
            model.backward(loss.backward(), input_grad=False)
            opt.step()
        dist.broadcast_optimizer(comm, opt)
        dist.broadcast_parameters(comm, model)
        gen = np.random.default_rng(comm.rank)
        dist.broadcast_generators(comm, [gen])
        st = opt.state_dict()
        slots = np.concatenate([st["state"][k][s].ravel() for k in sorted(st["state"]) for s in sorted(st["state"][k])])
        result = {"same": same_on_all_ranks(comm, slots), "lr": opt.lr, "steps": opt.steps,
                  "n_slots": int(slots.size), "gen_same": same_on_all_ranks(comm, gen.random(3))}
        result["lr_same"] = same_on_all_ranks(comm, np.array([opt.lr, opt.steps], dtype=np.float64))
    elif mode == "eval":  # validation sums over ranks: whole batches of 3 per rank
        labels = y if y.dtype.kind in "iu" else None
        metrics = ("accuracy", "top2_accuracy", "per_class_accuracy") if labels is not None else ()
        got = hg.evaluate(model, loss, x, y, batch_size=3, metrics=metrics, reducer=reducer)
        want = hg.evaluate(ref, loss, x, y, batch_size=3, metrics=metrics)
        result = {"loss": abs(got["loss"] - want["loss"]), "accuracy": abs(got["accuracy"] - want["accuracy"]),
                  "top2": abs(got["top2_accuracy"] - want["top2_accuracy"]),
                  "per_class": bool(np.allclose(got["per_class_accuracy"], want["per_class_accuracy"],
                                                rtol=0, atol=1e-15, equal_nan=True))}
    else:
        raise ValueError(mode)
    return result


def signal_run(comm, out_dir: str) -> None:
    """Train until SIGINT/SIGTERM (forwarded by mpiexec to every rank, noticed at different
    steps); the ranks agree on the flag after every step, stop at the same step, and rank 0
    alone writes its "checkpoint" (a file naming the step)."""
    import os
    import signal

    raised = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, f: raised.append(s))
    reducer = dist.MPIReducer(comm)
    loss = losses.SoftmaxCrossEntropy()
    model = build("mlp", "float64")
    step = dist.ShardedStep(model, loss, reducer, generators=dist.install_row_sharding([model]))
    x, y = data("mlp", 11, "float64")
    for n_step in range(1, 200000):
        step(x, y)
        if n_step == 1 and comm.rank == 0:
            print("READY", flush=True)
        if reducer.any(bool(raised)):
            break
    stops = numpy_all_steps(comm, n_step)
    if reducer.is_root:
        with open(os.path.join(out_dir, f"ckpt-{n_step}.txt"), "w") as f:
            f.write(str(n_step))
        print("RESULT " + json.dumps({"steps": stops, "signal": raised[:1]}), flush=True)


def numpy_all_steps(comm, n_step: int) -> list[int]:
    v = np.zeros(comm.size)
    v[comm.rank] = n_step
    comm.allreduce_sum(v)
    return [int(s) for s in v]


if __name__ == "__main__":
    main()
