"""Under ``mpiexec -n K`` (K > 1) the commands that are not one job over the ranks refuse to run
(rank 0 says why, every rank exits 2) instead of running K times and writing the same files."""
import pytest

from handgrad import cli


@pytest.mark.parametrize("argv", [["compare", "adding"], ["explain", "Dense"], ["diagnose"],
                                  ["gradcheck", "mlp"]])
@pytest.mark.parametrize("rank", [0, 1])
def test_single_process_commands_refuse_under_a_launcher(monkeypatch, capsys, tmp_path, argv, rank):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", str(rank))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    if rank == 0:
        assert f"`handgrad {argv[0]}` runs as one process" in err and "2 ranks" in err
    else:
        assert err == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_job_of_one_runs_the_command(monkeypatch, capsys):
    monkeypatch.setenv("PMI_SIZE", "1")
    monkeypatch.setenv("PMI_RANK", "0")
    assert cli.main(["explain", "Dense"]) == 0
    assert "Dense" in capsys.readouterr().out
