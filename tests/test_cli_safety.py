"""``python -m aelib`` fails safely: one line, the right exit code, nothing lost or mixed.

Small runs (a 784-16-2 network, one epoch of the embedded subset) keep this file fast; the CLI runs
in this process where that shows the same thing, and in a subprocess for signals, kills and the
absence of tracebacks.
"""

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import aelib
from aelib import checkpoint as checkpoint_mod
from aelib import cli
from aelib.checkpoint import load_checkpoint, save_checkpoint
from conftest import fails, write_idx_folder

SMALL = ["--data-source", "embedded", "--quiet", "--hidden-dim", "16", "--latent-dim", "2"]
ROOT = Path(__file__).resolve().parents[1]


def train(out, *args, epochs=1):
    return cli.main(["train", *SMALL, "--epochs", str(epochs), "--out", str(out), *args])


def popen(*args, **kwargs):
    env = {
        **os.environ,
        "AELIB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def wait_for_line(proc, text, timeout=120):
    deadline = time.monotonic() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return seen
        assert time.monotonic() < deadline, "".join(seen)
    raise AssertionError(f"{text!r} never printed: {''.join(seen)}{proc.stderr.read()}")


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if the CLI gets as far as loading data."""
    monkeypatch.setattr(cli, "load_dataset", lambda *a, **k: pytest.fail("loaded data first"))


# ---- 3. the output folder is checked before anything else


@pytest.mark.parametrize(
    "make_out,message",
    [
        (lambda tmp: "", "--out is empty"),
        (lambda tmp: "/dev/null", "/dev/null exists and is not a regular folder"),
        (
            lambda tmp: (tmp / "f.txt").write_text("x") and str(tmp / "f.txt"),
            "f.txt exists and is a file",
        ),
        (
            lambda tmp: (tmp / "f.txt").write_text("x") and str(tmp / "f.txt" / "sub"),
            "f.txt is a file, not a folder",
        ),
    ],
    ids=["empty", "dev-null", "file", "under-a-file"],
)
def test_unusable_out_is_one_line_before_training(tmp_path, capsys, no_data, make_out, message):
    line = fails(capsys, ["train", *SMALL, "--out", make_out(tmp_path)])
    assert message in line


def test_read_only_out_is_refused(tmp_path, capsys, no_data, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(cli.tempfile, "mkstemp", read_only)
    line = fails(capsys, ["train", *SMALL, "--out", str(tmp_path)])
    assert f"--out {tmp_path} is not writable (Read-only file system)" in line


def test_unwritable_out_is_refused(tmp_path, capsys, no_data):
    if os.geteuid() == 0:  # root writes through permission bits: /sys refuses even root
        target = Path("/sys/kernel")
        if not target.is_dir() or os.access(target, os.W_OK) and _can_create_in(target):
            pytest.skip("no folder here is unwritable for root")
    else:
        target = tmp_path / "locked"
        target.mkdir(mode=0o500)
    line = fails(capsys, ["train", *SMALL, "--out", str(target)])
    assert f"--out {target} is not writable (Permission denied)" in line


def _can_create_in(folder):
    try:
        (folder / ".aelib-test").touch()
    except OSError:
        return False
    (folder / ".aelib-test").unlink()
    return True


def test_dev_null_through_a_subprocess_has_no_traceback():
    proc = popen("-m", "aelib", "train", "--out", "/dev/null")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert err.strip() == (
        "python -m aelib train: error: --out /dev/null exists and is not a regular "
        "folder (a device or special file); name a folder"
    )


def test_a_second_run_into_the_same_out_refuses_naming_the_first(tmp_path, capsys, no_data):
    tmp_path.mkdir(exist_ok=True)
    with cli._lock(tmp_path):  # what a running `aelib train --out tmp_path` holds
        line = fails(capsys, ["train", *SMALL, "--out", str(tmp_path)])
    assert f"is in use by another aelib run (pid {os.getpid()} on " in line
    with cli._lock(tmp_path):  # released when the first run ends
        pass


def test_outputs_of_an_earlier_run_are_refused_or_replaced(tmp_path, capsys):
    train(tmp_path)
    capsys.readouterr()
    line = fails(capsys, ["train", *SMALL, "--epochs", "1", "--out", str(tmp_path)])
    assert "already holds the outputs of an earlier run" in line and "--overwrite" in line
    assert f"--resume {tmp_path / 'checkpoint.pt'}" in line
    (tmp_path / "reconstruction_7.png").write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("mine")
    train(tmp_path, "--overwrite")
    assert not (tmp_path / "reconstruction_7.png").exists()  # removed, not mixed in
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not ours: left alone


# ---- 4. interruptions


@pytest.mark.parametrize(
    "sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_a_signal_ends_with_one_line_and_the_resume_command(tmp_path, capsys, sig, code):
    out = tmp_path / "run"
    proc = popen("-m", "aelib", "train", *SMALL, "--epochs", "1000", "--out", str(out))
    wait_for_line(proc, "====> Epoch: 2 ")  # printed after epoch 1 was saved
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    name = signal.Signals(sig).name
    done = len(load_checkpoint(out / "checkpoint.pt")["history"]["train_loss"])
    assert lines[0].startswith(f"python -m aelib train: interrupted by {name}: the checkpoint ")
    command = f"python -m aelib train --resume {out / 'checkpoint.pt'} --epochs 1000"
    assert lines[0].endswith(f"holds epoch {done} of 1000; continue with: {command}")
    assert not checkpoint_mod.temporary_files(out)
    if sig == signal.SIGINT:  # the printed command works (with a total within reach)
        argv = shlex.split(command)[3:-1] + [str(done + 1)]
        assert cli.main(argv) == 0
        assert (
            f"Resuming from {out / 'checkpoint.pt'} after epoch {done}" in capsys.readouterr().out
        )


def test_a_signal_during_a_checkpoint_save_names_the_epoch_the_file_holds(
    tmp_path, capsys, monkeypatch
):
    """SIGTERM just after the rename: the line names the epoch now on disk, not the one before."""
    out, real_replace = tmp_path / "run", os.replace

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        if Path(dst).name == "checkpoint.pt":
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before save() returns

    monkeypatch.setattr(checkpoint_mod.os, "replace", replace_then_signal)
    line = fails(capsys, ["train", *SMALL, "--epochs", "3", "--out", str(out)], code=143)
    monkeypatch.undo()
    done = len(load_checkpoint(out / "checkpoint.pt")["history"]["train_loss"])
    assert done == 1 and f"holds epoch {done} of 3" in line, line
    assert not checkpoint_mod.temporary_files(out)


KILL_DURING_WRITE = """
import os, sys, time
from aelib import checkpoint, cli
calls = []
real_fsync = os.fsync
def slow_fsync(fd):
    calls.append(fd)
    if len(calls) == 3:  # the file of the second checkpoint: written, not yet renamed
        print("WRITING", flush=True)
        time.sleep(120)
    real_fsync(fd)
checkpoint.os.fsync = slow_fsync
cli.main(sys.argv[1:])
"""


def test_kill_during_a_checkpoint_write_keeps_the_old_one_and_is_tidied(tmp_path, capsys):
    out = tmp_path / "run"
    proc = popen("-c", KILL_DURING_WRITE, "train", *SMALL, "--epochs", "5", "--out", str(out))
    wait_for_line(proc, "WRITING")
    proc.kill()
    proc.communicate(timeout=60)
    leftovers = checkpoint_mod.temporary_files(out)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".checkpoint.pt.")
    assert len(load_checkpoint(out / "checkpoint.pt")["history"]["train_loss"]) == 1
    cli.main(["train", "--resume", str(out / "checkpoint.pt"), "--epochs", "2"])
    err = capsys.readouterr().err
    assert (
        f"Removed 1 temporary file(s) left in {out}/ by an interrupted write: {leftovers[0].name}"
        in err
    )
    assert not checkpoint_mod.temporary_files(out)
    assert len(load_checkpoint(out / "checkpoint.pt")["history"]["train_loss"]) == 2


def test_a_full_disk_says_the_previous_checkpoint_is_intact(tmp_path, capsys, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 3:  # the second checkpoint
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(checkpoint_mod.os, "fsync", fsync)
    line = fails(capsys, ["train", *SMALL, "--epochs", "3", "--out", str(tmp_path)], code=1)
    assert "No space left on device" in line and "previous checkpoint" in line
    assert (
        "holds epoch 1 of 3; continue with: python -m aelib train --resume "
        f"{tmp_path / 'checkpoint.pt'}" in line
    )
    assert len(load_checkpoint(tmp_path / "checkpoint.pt")["history"]["train_loss"]) == 1
    assert not checkpoint_mod.temporary_files(tmp_path)


# ---- 8. sizes


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--hidden-dim", 10**12, "--hidden-dim 1000000000000 needs about"),
        ("--latent-dim", 10**29, "--latent-dim 100000000000000000000000000000 needs about"),
        ("--seed", 10**29, "argument --seed: must be at most 4294967295 (2**32 - 1)"),
    ],
)
def test_sizes_beyond_the_limits_are_refused_before_allocating(
    tmp_path, capsys, no_data, flag, value, message
):
    line = fails(capsys, ["train", *SMALL, flag, str(value), "--out", str(tmp_path)])
    assert message in line
    if flag != "--seed":
        assert f"the limit here is {flag} " in line
        limit = int(line.split(f"the limit here is {flag} ")[1].split()[0].replace(",", ""))
        assert 1 <= limit < value


# ---- 1 and 9. resume: the same data, the same settings, more epochs


def test_resume_keeps_data_and_settings_and_adds_up_wall_time(tmp_path, capsys):
    train(tmp_path, "--amp", "--lr", "0.002")
    first = json.loads((tmp_path / "metrics.json").read_text())
    cli.main(
        ["train", "--resume", str(tmp_path / "checkpoint.pt"), "--epochs", "2"]
    )  # no other flag
    out = capsys.readouterr().out
    assert "source 'embedded'" in out and "after epoch 1" in out
    second = json.loads((tmp_path / "metrics.json").read_text())
    assert second["amp"] is True and second["config"]["lr"] == 0.002
    assert second["config"]["hidden_dim"] == 16 and len(second["train_loss"]) == 2
    assert second["train_loss"][0] == first["train_loss"][0]
    assert len(second["session_seconds"]) == 2
    assert second["session_seconds"][0] == pytest.approx(first["wall_seconds"], abs=0.5)
    assert second["wall_seconds"] == pytest.approx(sum(second["session_seconds"]))
    assert second["wall_seconds"] > first["wall_seconds"]
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["train_config"]["data"]["source"] == "embedded"
    assert (
        state["train_config"]["data"]["sha256"]
        == aelib.load_dataset("mnist", source="embedded", verbose=False).fingerprint()
    )


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--epochs", "1"], "--epochs 1 is not more than the 1 epochs the checkpoint has done"),
        (["--epochs", "2", "--amp"], "--amp was not used by the checkpoint's run"),
        (
            ["--epochs", "2", "--batch-size", "64"],
            "--batch-size 64 differs from the checkpoint's 128",
        ),
    ],
)
def test_resume_refuses_what_it_cannot_honour(tmp_path, capsys, extra, message):
    train(tmp_path)
    capsys.readouterr()
    line = fails(capsys, ["train", "--resume", str(tmp_path / "checkpoint.pt"), *extra])
    assert message in line


def test_resume_on_other_data_stops_saying_what_differs(tmp_path, capsys):
    train(tmp_path / "run")
    write_idx_folder(tmp_path / "data" / "MNIST" / "raw")
    capsys.readouterr()
    line = fails(
        capsys,
        [
            "train",
            "--resume",
            str(tmp_path / "run" / "checkpoint.pt"),
            "--epochs",
            "2",
            "--data-dir",
            str(tmp_path / "data"),
        ],
    )
    assert "trained on other data than this run loads" in line
    assert "source 'embedded' -> 'dir'" in line and "n_train 4000 -> 12" in line


def test_explicit_missing_folder_is_exit_2_never_the_subset(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AELIB_OFFLINE", "1")
    line = fails(
        capsys,
        ["train", "--data-dir", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "o")],
    )
    assert (
        "missing train-images-idx3-ubyte[.gz]" in line
        and f"{tmp_path}/nonexistent/MNIST/raw/" in line
    )


def test_the_fallback_to_the_subset_is_announced(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AELIB_OFFLINE", "1")
    monkeypatch.delenv("AELIB_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cli.main(
        [
            "train",
            "--quiet",
            "--hidden-dim",
            "16",
            "--latent-dim",
            "2",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5,000-digit subset" in err[0]
    assert "near 91" in err[0] and "68.45" in err[0] and "MNIST/raw" in err[0]
    state = load_checkpoint(tmp_path / "o" / "checkpoint.pt")
    assert state["train_config"]["data"]["source"] == "embedded"  # what was used, not "auto"


class FakeScaler:
    def __init__(self, scale):
        self.scale = scale

    def state_dict(self):
        return {"scale": self.scale}

    def load_state_dict(self, state):
        self.scale = state["scale"]


def test_the_loss_scaler_is_saved_and_given_back_to_fit(tmp_path, monkeypatch):
    real_fit, given = aelib.fit, []

    def fit(*args, scaler=None, **kwargs):  # the interface of the newer aelib.train.fit
        given.append(scaler.scale)
        scaler.scale *= 2  # what loss scaling does to it during training
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cli, "fit", fit)
    monkeypatch.setattr(cli, "make_scaler", lambda amp, device: FakeScaler(1024.0))
    train(tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["scaler_state"] == {"scale": 2048.0}
    cli.main(["train", "--resume", str(tmp_path / "checkpoint.pt"), "--epochs", "2"])
    assert given == [1024.0, 2048.0]


# ---- 2. evaluate any test set


def test_evaluate_prints_the_test_loss_and_writes_nothing(tmp_path, capsys):
    train(tmp_path)
    last = capsys.readouterr().out.strip().splitlines()
    test_line = next(line for line in last if line.startswith("====> Test set loss:"))
    before = sorted(tmp_path.iterdir())
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "checkpoint.pt")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == test_line and "1,000 test images from source 'embedded'" in out[0]
    assert sorted(tmp_path.iterdir()) == before


def test_evaluate_on_a_folder_holding_only_the_test_files(tmp_path, capsys):
    train(tmp_path / "run")
    arrays = write_idx_folder(tmp_path / "data")
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / "data" / f"{stem}.gz").unlink()
    capsys.readouterr()
    cli.main(
        [
            "evaluate",
            "--checkpoint",
            str(tmp_path / "run" / "checkpoint.pt"),
            "--data-dir",
            str(tmp_path / "data"),
        ]
    )
    model = checkpoint_mod.restore_model(load_checkpoint(tmp_path / "run" / "checkpoint.pt"))
    expected = aelib.evaluate(
        model, torch.from_numpy(arrays["t10k-images-idx3-ubyte"].astype("uint8")).unsqueeze(1)
    )
    assert (
        capsys.readouterr().out.strip().splitlines()[-1] == f"====> Test set loss: {expected:.4f}"
    )


def test_evaluate_a_vae_checkpoint(tmp_path, capsys, mnist):
    torch.manual_seed(0)
    vae = aelib.VariationalAutoencoder(hidden_dim=16, latent_dim=2)
    save_checkpoint(tmp_path / "vae.pt", vae, None, aelib.History(), {"seed": 3})
    cli.main(["evaluate", "--checkpoint", str(tmp_path / "vae.pt"), "--data-source", "embedded"])
    torch.manual_seed(3)
    expected = aelib.evaluate(vae, mnist.x_test, aelib.negative_elbo)
    assert (
        capsys.readouterr().out.strip().splitlines()[-1] == f"====> Test set loss: {expected:.4f}"
    )


def test_evaluate_a_missing_or_damaged_checkpoint(tmp_path, capsys):
    line = fails(capsys, ["evaluate", "--checkpoint", str(tmp_path / "missing.pt")])
    assert "missing.pt: no such file" in line
    line = fails(capsys, ["train", "--resume", str(tmp_path), "--out", str(tmp_path / "o")])
    assert f"--resume {tmp_path} is a folder; pass the checkpoint.pt inside it" in line
    path = save_checkpoint(
        tmp_path / "ck.pt", aelib.Autoencoder(hidden_dim=8, latent_dim=2), None, aelib.History()
    )
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    path.write_bytes(bytes(raw))
    assert "damaged" in fails(capsys, ["evaluate", "--checkpoint", str(path)])


# ---- 6 and 11. failed runs, bugs and the environment


def _raiser(error):
    def fit(*args, **kwargs):
        raise error

    return fit


def test_non_finite_and_diverged_losses_are_one_line_exit_1(tmp_path, capsys, monkeypatch):
    from aelib import train as train_mod

    diverged = getattr(train_mod, "LossDivergedError", train_mod.NonFiniteLossError)
    for i, error in enumerate(
        [
            train_mod.NonFiniteLossError("the training loss became nan at epoch 1"),
            diverged("the loss reached 4e12 at epoch 1; try a smaller --lr"),
        ]
    ):
        monkeypatch.setattr(cli, "fit", _raiser(error))
        line = fails(capsys, ["train", *SMALL, "--out", str(tmp_path / str(i))], code=1)
        assert line == f"python -m aelib train: training failed: {error}"


def test_an_internal_bug_is_not_reported_as_bad_input(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "fit", _raiser(ValueError("an aelib bug")))
    with pytest.raises(ValueError, match="an aelib bug"):  # a traceback and exit 1, not exit 2
        cli.main(["train", *SMALL, "--out", str(tmp_path)])


def test_an_unusable_aelib_device_names_the_variable(tmp_path, capsys, monkeypatch, no_data):
    monkeypatch.setenv("AELIB_DEVICE", "tpu")
    line = fails(capsys, ["train", *SMALL, "--out", str(tmp_path)])
    assert "AELIB_DEVICE=tpu" in line and "unset AELIB_DEVICE" in line and "--device" not in line
