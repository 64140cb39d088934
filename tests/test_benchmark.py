"""The benchmark script runs end to end and its table says what it measured (no timing asserts)."""

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_vs_aelib.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("seed_vs_aelib", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_all_pipelines_and_writes_the_table(bench, tmp_path):
    table = tmp_path / "table.md"
    argv = [
        "--dataset",
        "mnist",
        "--data-source",
        "embedded",
        "--epochs",
        "1",
        "--repeats",
        "2",
        "--markdown",
        str(table),
        "--json",
        str(tmp_path / "figures.json"),
    ]
    result = bench.main(argv)
    # the seed's pipeline and aelib train the same network with the same loss: after one epoch
    # on the same images their test losses agree to a few percent, far below an untrained ~540
    assert math.isclose(result["seed_test_loss"], result["aelib_test_loss"], rel_tol=0.05)
    assert result["aelib_test_loss"] < 300
    assert result["seeds"] == [42, 43] and len(result["aelib_runs_seconds"]) == 2
    text = table.read_text()
    for row in (
        "| seed pipeline |",
        "| aelib.fit |",
        "| compute floor |",
        "| seed's DataLoaders alone |",
    ):
        assert row in text
    assert "`python benchmarks/seed_vs_aelib.py " + " ".join(argv) + "`" in text
    assert (tmp_path / "figures.json").exists()


def test_benchmark_rejects_an_absent_device(bench, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as err:
        bench.main(["--device", "cuda"])
    assert err.value.code == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_idx_files_written_for_torchvision_read_back(bench, tmp_path, mnist):
    import aelib

    train, test = bench.torchvision_datasets(mnist, tmp_path)
    assert len(train) == len(mnist.x_train) and len(test) == len(mnist.x_test)
    x, y = train[7]
    # ToTensor + Normalize((0.5,), (0.5,)) maps the uint8 pixel p to 2 p / 255 - 1
    assert y == int(mnist.y_train[7])
    assert (
        x.flatten() - (aelib.to_float(mnist.x_train[7:8]).flatten() * 2 - 1)
    ).abs().max() < 1e-6
