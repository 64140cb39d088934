import json
import os
import subprocess
import sys

import pytest
import torch

from aelib.cli import main
from conftest import fails


def run_cli(*args):
    env = {**os.environ, "AELIB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "aelib", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_train_one_epoch_end_to_end(tmp_path):
    out = tmp_path / "results"
    proc = run_cli(
        "train", "--epochs", "1", "--data-source", "embedded", "--out", str(out), "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    assert "source 'embedded'" in proc.stdout
    assert "====> Epoch: 1 Average training loss: " in proc.stdout
    assert "====> Test set loss: " in proc.stdout
    for name in (
        "reconstruction_1.png",
        "reconstructions.png",
        "loss_curve.png",
        "metrics.json",
        "checkpoint.pt",
    ):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["source"] == "embedded" and metrics["data"]["n_train"] == 4000
    assert metrics["config"] == {
        "epochs": 1,
        "batch_size": 128,
        "lr": 1e-3,
        "hidden_dim": 400,
        "latent_dim": 20,
        "seed": 42,
    }
    assert metrics["parameters"] == 644_804 and metrics["device"] == "cpu"
    assert (
        len(metrics["train_loss"]) == 1 and metrics["final_test_loss"] == metrics["test_loss"][0]
    )
    assert metrics["wall_seconds"] > 0 and metrics["versions"]["torch"] == torch.__version__
    assert f"{metrics['test_loss'][0]:.4f}" in proc.stdout


def test_resume_two_plus_two_equals_four(tmp_path, capsys):
    common = [
        "train",
        "--data-source",
        "embedded",
        "--quiet",
        "--hidden-dim",
        "64",
        "--latent-dim",
        "8",
    ]
    main([*common, "--epochs", "4", "--out", str(tmp_path / "full")])
    main([*common, "--epochs", "2", "--out", str(tmp_path / "part")])
    # the README's recipe: the checkpoint remembers the data source and every setting
    main(
        [
            "train",
            "--quiet",
            "--resume",
            str(tmp_path / "part" / "checkpoint.pt"),
            "--epochs",
            "4",
        ]
    )
    assert "Resuming from" in capsys.readouterr().out
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert (
        resumed["train_loss"] == full["train_loss"] and resumed["test_loss"] == full["test_loss"]
    )
    assert resumed["data"] == full["data"] and resumed["config"] == full["config"]
    assert sorted(p.name for p in (tmp_path / "part").glob("reconstruction_*.png")) == sorted(
        p.name for p in (tmp_path / "full").glob("reconstruction_*.png")
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--epochs", "-1"], "must not be negative"),
        (["--dataset", "cifar10"], "invalid choice: 'cifar10'"),
        (["--lr", "abc"], "expected a number"),
        (["--batch-size", "0"], "must be at least 1"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_bad_flags_exit_2_with_one_message(args, message, capsys, tmp_path):
    assert message in fails(capsys, ["train", "--out", str(tmp_path), *args])


def test_cuda_asked_for_but_absent(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = fails(capsys, ["train", "--device", "cuda", "--out", str(tmp_path)])
    assert "CUDA is not available" in line


def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    line = fails(capsys, ["train", "--resume", str(junk), "--out", str(tmp_path)])
    assert "not an aelib checkpoint" in line


def test_resume_with_a_conflicting_architecture_flag(tmp_path, capsys):
    main(
        [
            "train",
            "--data-source",
            "embedded",
            "--quiet",
            "--epochs",
            "0",
            "--hidden-dim",
            "32",
            "--latent-dim",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    capsys.readouterr()  # what the first run printed
    resume = ["--resume", str(tmp_path / "checkpoint.pt"), "--out", str(tmp_path)]
    line = fails(capsys, ["train", "--data-source", "embedded", "--latent-dim", "20", *resume])
    assert "--latent-dim 20 differs from the checkpoint's 4" in line


def test_missing_data_offline_exits_with_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AELIB_OFFLINE", "1")
    argv = ["train", "--data-source", "dir", "--data-dir", str(tmp_path / "nothing")]
    line = fails(capsys, [*argv, "--out", str(tmp_path)])
    assert "could not be loaded" in line and "AELIB_DATA_DIR" in line


def test_torchrun_two_processes_match_one_process(tmp_path):
    """Two gloo processes, each with its share of every global batch, against one process.

    4,000 = 31 * 129 + 1: with 129 images per batch the shards hold 65 and 64 images, so each
    process's mean loss must be weighted by its share (130/129 and 128/129) for DDP's average to
    be the global batch's gradient; and the last batch of one image leaves the second process's
    shard empty. Two epochs, so the processes also agree on each epoch's new order.
    """
    batch_size, epochs = 129, 2
    common = [
        "--data-source",
        "embedded",
        "--quiet",
        "--epochs",
        str(epochs),
        "--hidden-dim",
        "64",
        "--latent-dim",
        "8",
        "--batch-size",
        str(batch_size),
    ]
    assert main(["train", *common, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "AELIB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "aelib",
            "train",
            *common,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    # same global batches and averaged gradients: equal up to float summation order
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
    assert two["test_loss"] == pytest.approx(one["test_loss"], rel=1e-4)
    # only rank 0 printed and wrote: one data line, one set of epoch lines, one "Wrote" line
    assert proc.stdout.count("Loaded mnist") == 1
    assert proc.stdout.count(f"====> Epoch: {epochs} ") == 1
    assert proc.stdout.count("Wrote ") == 1


def test_mixed_precision_on_cpu_trains_and_reports_float32(tmp_path):
    common = ["train", "--data-source", "embedded", "--quiet", "--epochs", "2"]
    common += ["--hidden-dim", "64", "--latent-dim", "8"]  # small: bfloat16 is slow on a CPU
    main([*common, "--amp", "--out", str(tmp_path / "amp")])
    main([*common, "--out", str(tmp_path / "fp32")])
    amp = json.loads((tmp_path / "amp" / "metrics.json").read_text())
    fp32 = json.loads((tmp_path / "fp32" / "metrics.json").read_text())
    assert amp["amp"] is True and fp32["amp"] is False
    assert amp["test_loss"][1] < amp["test_loss"][0] < 300
    # bfloat16 forward passes really ran (other numbers), yet the losses stay close to float32's
    assert amp["train_loss"] != fp32["train_loss"]
    assert amp["test_loss"][1] == pytest.approx(fp32["test_loss"][1], rel=0.02)
