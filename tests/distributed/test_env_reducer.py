"""Launcher detection, the missing-mpi4py error, settings, the reducer's collectives and the
failure paths, with the local (fake) communicator — no MPI needed."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import handgrad as hg
from handgrad import distributed as dist
from handgrad import layers as L
from handgrad import losses


def test_launcher_world_reads_hydra_open_mpi_and_nothing():
    assert dist.launcher_world({}) is None
    w = dist.launcher_world({"PMI_RANK": "2", "PMI_SIZE": "3"})
    assert (w.rank, w.size, w.variable) == (2, 3, "PMI_SIZE")
    w = dist.launcher_world({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "4"})
    assert (w.rank, w.size) == (0, 4) and w.launcher == "Open MPI"


@pytest.mark.parametrize("env", [{"PMI_SIZE": "two"}, {"PMI_SIZE": "2", "PMI_RANK": "2"}, {"PMI_SIZE": "0"}])
def test_launcher_world_rejects_a_malformed_environment(env):
    with pytest.raises(RuntimeError, match="handgrad.distributed"):
        dist.launcher_world(env)


def test_resolve_single_process_needs_no_mpi(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert dist.resolve(None, environ={})[0] is None
    assert dist.resolve("auto", environ={"PMI_SIZE": "1", "PMI_RANK": "0"})[0] is None
    assert dist.resolve(False, environ={"PMI_SIZE": "2", "PMI_RANK": "0"})[0] is None


def test_under_mpiexec_without_mpi4py_the_error_names_it_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"mpi4py.*pip install 'handgrad\[dist\]'") as info:
        dist.resolve(None, environ={"PMI_SIZE": "2", "PMI_RANK": "1"})
    assert "PMI_SIZE=2" in str(info.value)


def test_resolve_explicit_communicators_and_bad_settings():
    comm = dist.LocalCommunicator(1, 3)
    got, settings = dist.resolve(dist.Distributed(comm=comm, bucket_bytes=1 << 20))
    assert got is comm and settings.bucket_bytes == 1 << 20
    assert dist.resolve(comm)[0] is comm
    with pytest.raises(TypeError, match="fit: expected distributed"):
        dist.resolve(object())
    with pytest.raises(ValueError, match="bucket_bytes"):
        dist.Distributed(bucket_bytes=-1)
    with pytest.raises(ValueError, match="augment"):
        dist.Distributed(augment="some")
    with pytest.raises(ValueError, match="LocalCommunicator"):
        dist.LocalCommunicator(3, 3)


def test_reducer_sums_any_loss_and_root():
    r0, r1 = dist.MPIReducer(dist.LocalCommunicator(0, 2)), dist.MPIReducer(dist.LocalCommunicator(1, 2))
    assert r0.is_root and not r1.is_root
    assert r0.sums({"seen": 3, "loss": 1.5}) == {"seen": 3, "loss": 1.5}
    assert isinstance(r0.sums({"seen": 3})["seen"], int)
    assert r0.any(True) and not r0.any(False)
    assert r0.loss(2.0, 4) == 2.0 and r0.loss(0.0, 0) == 0.0
    with pytest.raises(TypeError, match="MPIReducer"):
        dist.MPIReducer(object())


def test_a_failing_step_raises_rank_failure_with_its_message():
    model = hg.Sequential([L.Dense(3, 2, rng=0, dtype="float64")])
    reducer = dist.MPIReducer(dist.LocalCommunicator(0, 2))
    reducer.where = "epoch 1, batch 2"
    step = dist.ShardedStep(model, losses.SoftmaxCrossEntropy(), reducer)
    x = np.ones((4, 5))  # wrong width: Dense raises on this rank
    with pytest.raises(dist.RankFailure, match=r"rank 0 of 2 failed at epoch 1, batch 2: ValueError: Dense") as info:
        step(x, np.zeros(4, dtype=np.int64))
    assert info.value.rank == 0 and isinstance(info.value.__cause__, ValueError)


def test_sharded_step_on_one_rank_is_the_plain_step():
    make = lambda: hg.Sequential([L.Dense(3, 4, rng=0, dtype="float64"), L.Dropout(0.5, rng=2),
                                  L.Dense(4, 2, rng=1, dtype="float64")])
    ref, model = make(), make()
    loss = losses.SoftmaxCrossEntropy()
    x, y = np.random.default_rng(0).standard_normal((5, 3)), np.array([0, 1, 1, 0, 1])
    want = loss.forward(ref.forward(x, training=True), y)
    ref.backward(loss.backward(), input_grad=False)
    step = dist.ShardedStep(model, loss, dist.MPIReducer(dist.LocalCommunicator()),
                            generators=dist.install_row_sharding([model]))
    value, _, spans = step(x, y)
    assert value == pytest.approx(want, rel=1e-15) and spans == [(0, 5)]
    for a, b in zip(ref.layers, model.layers):
        for k in a.grads:
            np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=1e-15)


def test_sharded_step_refuses_stateful_layers():
    model = hg.Sequential([L.LSTM(2, 3, stateful=True, rng=0), L.Dense(3, 2, rng=1)])
    with pytest.raises(ValueError, match="stateful"):
        dist.ShardedStep(model, losses.SoftmaxCrossEntropy(), dist.MPIReducer(dist.LocalCommunicator()))


def test_abort_on_error_names_the_rank_and_passes_agreed_errors(capfd):
    comm = dist.LocalCommunicator(1, 2)
    with pytest.raises(SystemExit) as info, dist.abort_on_error(comm):
        raise OSError("no space left")
    assert info.value.code == 1
    assert "rank 1 of 2 failed" in capfd.readouterr().err  # the process's own stderr (fd 2)
    with pytest.raises(dist.RankFailure), dist.abort_on_error(comm):
        raise dist.RankFailure("agreed", 0)
    with pytest.raises(ValueError, match="rejected on every rank"), dist.abort_on_error(comm):
        raise dist.agreed(ValueError("rejected on every rank"))
    with pytest.raises(OSError), dist.abort_on_error(dist.LocalCommunicator()):  # one process: it propagates
        raise OSError("x")


def test_broadcasts_on_one_rank_keep_the_data():
    comm = dist.LocalCommunicator()
    model = hg.Sequential([L.Dense(3, 2, rng=0)])
    w = model.get_weights()
    dist.broadcast_parameters(comm, model)
    assert all(np.array_equal(w[k], v) for k, v in model.get_weights().items())
    assert dist.broadcast_json(comm, {"a": [1, 2]}) == {"a": [1, 2]}
    opt = hg.optim.Adam(model, lr=0.1)
    dist.broadcast_optimizer(comm, opt)
    assert opt.lr == 0.1
