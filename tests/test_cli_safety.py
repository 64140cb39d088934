"""``python -m aelib`` fails safely: one line, the right exit code, nothing lost or mixed.

Small runs (a 784-16-2 network, one epoch of the embedded subset) keep this file fast; the CLI runs
in this process where that shows the same thing, and in a subprocess for signals, kills and the
absence of tracebacks.
"""

import errno
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
    (tmp_path / ".notes.tmp").write_text("mine too")  # hidden and .tmp, but not aelib's
    before = sorted(p.name for p in tmp_path.iterdir())
    # --overwrite with data that fail to load: refused, and nothing was deleted
    missing = ["--data-source", "dir", "--data-dir", str(tmp_path / "nowhere")]
    line = fails(capsys, ["train", "--quiet", *missing, "--overwrite", "--out", str(tmp_path)])
    assert "could not be loaded" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    train(tmp_path, "--overwrite")
    assert not (tmp_path / "reconstruction_7.png").exists()  # removed, not mixed in
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not ours: left alone
    assert (tmp_path / ".notes.tmp").read_text() == "mine too"


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
        (["--epochs", "0"], "--epochs 0 is less than the 1 epochs the checkpoint has done"),
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
    for name in ("metrics.json", "loss_curve.png", "reconstructions.png", "reconstruction_1.png"):
        assert (tmp_path / "run" / name).is_file(), f"a refused --resume deleted {name}"


def test_resuming_a_sibling_never_replaces_a_newer_checkpoint(tmp_path, capsys):
    train(tmp_path)
    (tmp_path / "early.pt").write_bytes((tmp_path / "checkpoint.pt").read_bytes())
    cli.main(["train", "--resume", str(tmp_path / "checkpoint.pt"), "--epochs", "2"])
    newer = (tmp_path / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    resume = ["train", "--resume", str(tmp_path / "early.pt"), "--epochs", "3"]
    line = fails(capsys, resume)
    assert f"would continue into {tmp_path / 'checkpoint.pt'}" in line and "(epoch 2)" in line
    assert (tmp_path / "checkpoint.pt").read_bytes() == newer and (
        tmp_path / "metrics.json"
    ).exists()
    assert cli.main([*resume, "--overwrite"]) == 0
    assert len(load_checkpoint(tmp_path / "checkpoint.pt")["history"]["train_loss"]) == 3


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

    def fit(*args, options, **kwargs):
        given.append(options.scaler.scale)
        options.scaler.scale *= 2  # what loss scaling does to it during training
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
    assert out[-1] == test_line
    assert out[0] == "Loaded mnist: 1,000 test images" and "source 'embedded'" in out[1]
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


def test_evaluate_a_vae_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    vae = aelib.VariationalAutoencoder(hidden_dim=16, latent_dim=2)
    save_checkpoint(tmp_path / "vae.pt", vae, None, aelib.History(), {"seed": 3})
    cli.main(["evaluate", "--checkpoint", str(tmp_path / "vae.pt"), "--data-source", "embedded"])
    torch.manual_seed(3)
    # the test split in the file's order: each image's sample is drawn in that order
    stored = aelib.load_dataset("mnist", source="embedded", verbose=False).x_test
    expected = aelib.evaluate(vae, stored, aelib.negative_elbo)
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


# ---- issue 19: data never swapped


def _digits_folder(folder, mnist, n=40, offset=0):
    """A flat folder of real MNIST digits (the embedded ones) in the four IDX files."""
    from conftest import write_idx

    for split in ("train", "t10k"):
        write_idx(
            folder / f"{split}-images-idx3-ubyte", mnist.x_train[offset : offset + n, 0].numpy()
        )
        write_idx(
            folder / f"{split}-labels-idx1-ubyte", mnist.y_train[offset : offset + n].numpy()
        )
    return folder


def test_the_other_data_sets_files_are_refused(tmp_path, capsys, mnist):
    folder = _digits_folder(tmp_path / "digits", mnist)
    argv = ["train", "--quiet", "--dataset", "fashion-mnist", "--data-dir", str(folder)]
    line = fails(capsys, [*argv, "--out", str(tmp_path / "o")])
    assert "look like MNIST, not Fashion-MNIST" in line and "--dataset mnist" in line
    assert [p.name for p in (tmp_path / "o").iterdir()] == [".aelib.lock"]


def test_a_data_dir_that_the_source_ignores_is_refused(tmp_path, capsys, no_data):
    for source in ("embedded", "debian"):
        argv = ["train", "--data-source", source, "--data-dir", str(tmp_path)]
        line = fails(capsys, [*argv, "--out", str(tmp_path / "o")])
        assert f"--data-dir is ignored by --data-source {source}" in line


def test_evaluate_checks_its_own_data_by_sha256(tmp_path, capsys, monkeypatch, mnist):
    folder = _digits_folder(tmp_path / "digits", mnist)
    monkeypatch.chdir(tmp_path)  # a relative --data-dir: the checkpoint records it absolute
    argv = ["train", "--quiet", "--hidden-dim", "16", "--latent-dim", "2", "--epochs", "1"]
    cli.main([*argv, "--data-dir", "digits", "--out", "run"])
    record = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["train_config"]["data"]
    assert record["root"] == str(folder) and record["location"] == str(folder)
    monkeypatch.chdir(tmp_path / "run")  # elsewhere: the record still names the folder
    assert cli.main(["evaluate", "--checkpoint", "checkpoint.pt"]) == 0
    _digits_folder(folder, mnist, offset=100)  # other digits under the same names
    capsys.readouterr()
    line = fails(capsys, ["evaluate", "--checkpoint", "checkpoint.pt"])
    assert f"the data at {folder} are not those the checkpoint was trained on" in line
    assert cli.main(["evaluate", "--checkpoint", "checkpoint.pt", "--data-dir", str(folder)]) == 0


# ---- issue 19: one line, never a traceback


LONG = "x" * 5000


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--out", LONG], "cannot be used (File name too long)"),
        (["train", "--resume", LONG], "cannot be read (File name too long)"),
        (["evaluate", "--checkpoint", LONG], "cannot be read (File name too long)"),
        (["train", "--device", "cpu:abc"], "unknown device 'cpu:abc'"),
        (["train", "--device", "cuda:x"], "unknown device 'cuda:x'"),
    ],
    ids=["out", "resume", "checkpoint", "cpu:abc", "cuda:x"],
)
def test_odd_paths_and_devices_are_one_line(tmp_path, capsys, no_data, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    line = fails(capsys, argv)
    assert message in line and len(line) < 400


def test_a_folder_of_zero_images_is_one_line(tmp_path, capsys):
    from conftest import write_idx

    write_idx_folder(tmp_path / "data", compress=False)
    write_idx(tmp_path / "data" / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    argv = ["train", "--quiet", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o")]
    assert "holds no images" in fails(capsys, argv)


def test_an_unreadable_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    path = save_checkpoint(
        tmp_path / "ck.pt", aelib.Autoencoder(hidden_dim=8, latent_dim=2), None, aelib.History()
    )

    def refuse(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(checkpoint_mod.Path, "read_bytes", refuse)
    line = fails(capsys, ["evaluate", "--checkpoint", str(path)])
    assert "ck.pt cannot be read (Permission denied)" in line


@pytest.mark.parametrize(
    "train_config,message",
    [
        ({"batch_size": "128"}, "setting batch_size='128'"),
        ({"lr": -1.0}, "setting lr=-1.0"),
        ({"seed": 2**40}, "setting seed="),
        ({"data": {"name": "cifar"}}, "setting data.name='cifar'"),
        ({"data": {"name": "mnist", "source": "embedded", "root": 3}}, "setting data.root=3"),
        ({"data": {"name": "mnist", "source": "embedded", "sha256": 5}}, "setting data.sha256=5"),
    ],
)
def test_a_crafted_checkpoint_with_a_valid_hash_is_one_line(
    tmp_path, capsys, train_config, message
):
    """save_checkpoint stores train_config as given: a valid hash, settings aelib never wrote."""
    model = aelib.Autoencoder(hidden_dim=16, latent_dim=2)
    path = save_checkpoint(tmp_path / "ck.pt", model, None, aelib.History([500.0]), train_config)
    line = fails(capsys, ["train", "--resume", str(path), "--epochs", "2"])
    assert message in line and "is not one aelib writes" in line
    assert message in fails(capsys, ["evaluate", "--checkpoint", str(path)])


def test_an_optimizer_state_that_does_not_fit_is_one_line(tmp_path, capsys):
    model = aelib.Autoencoder(hidden_dim=16, latent_dim=2)
    smaller = aelib.Autoencoder(hidden_dim=8, latent_dim=2)
    other = aelib.make_optimizer(smaller)
    smaller(torch.rand(2, 784)).sum().backward()
    other.step()  # Adam's moments now have the smaller network's shapes
    path = save_checkpoint(
        tmp_path / "ck.pt",
        model,
        other,
        aelib.History([500.0], [480.0]),
        {"hidden_dim": 16, "latent_dim": 2},
    )
    argv = ["train", "--quiet", "--data-source", "embedded", "--resume", str(path)]
    line = fails(capsys, [*argv, "--epochs", "2"])
    assert "the checkpoint's optimizer state does not fit its model" in line


def test_a_wild_learning_rate_for_one_epoch_fails(tmp_path, capsys):
    line = fails(
        capsys, ["train", *SMALL, "--lr", "10", "--epochs", "1", "--out", str(tmp_path)], code=1
    )
    assert "diverged" in line and "at epoch 1, the last" in line and "try 1)" in line
    assert not (tmp_path / "checkpoint.pt").exists()


def test_an_interrupt_after_the_last_epoch_prints_a_command_that_works(
    tmp_path, capsys, monkeypatch
):
    def interrupted(*args):
        raise cli.Interrupted(signal.SIGINT)

    monkeypatch.setattr(cli, "_write_figures", interrupted)
    line = fails(capsys, ["train", *SMALL, "--epochs", "1", "--out", str(tmp_path)], code=130)
    command = f"python -m aelib train --resume {tmp_path / 'checkpoint.pt'} --epochs 1"
    assert line.endswith(f"holds all 1 epochs; write the figures and metrics.json with: {command}")
    monkeypatch.undo()
    assert cli.main(shlex.split(command)[3:]) == 0
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "loss_curve.png").is_file()


def test_compile_without_a_compiler_is_one_line(tmp_path, capsys, monkeypatch):
    from torch._dynamo.exc import BackendCompilerFailed

    def fit(*args, **kwargs):  # what torch.compile raises at the first forward pass
        raise BackendCompilerFailed(
            print, RuntimeError("InvalidCxxCompiler: No working C++ compiler found"), None
        )

    monkeypatch.setattr(cli, "fit", fit)
    line = fails(capsys, ["train", *SMALL, "--compile", "default", "--out", str(tmp_path)])
    assert "--compile default could not compile the model" in line and "C++ compiler" in line


def test_running_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    def fit(*args, **kwargs):  # the CPU allocator under a ulimit or a container's limit
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
            "allocate memory: you tried to allocate 4000 bytes."
        )

    monkeypatch.setattr(cli, "fit", fit)
    line = fails(capsys, ["train", *SMALL, "--out", str(tmp_path)], code=1)
    assert "ran out of memory" in line and "--batch-size" in line


def test_memory_limits_of_ulimit_and_cgroups_bound_the_sizes(
    tmp_path, capsys, monkeypatch, no_data
):
    import resource

    real = resource.getrlimit
    monkeypatch.setattr(
        resource,
        "getrlimit",
        lambda which: (2 * 10**9, -1) if which == resource.RLIMIT_AS else real(which),
    )
    monkeypatch.setattr(cli, "_status_bytes", lambda field: 10**9)
    assert cli._available_bytes(torch.device("cpu"))[0] <= 10**9
    assert "ulimit -v" in cli._available_bytes(torch.device("cpu"))[1]
    monkeypatch.setattr(resource, "getrlimit", real)
    (tmp_path / "max").write_text("300000000\n")
    (tmp_path / "current").write_text("100000000\n")
    monkeypatch.setattr(cli, "CGROUP_FILES", ((str(tmp_path / "max"), str(tmp_path / "current")),))
    assert cli._available_bytes(torch.device("cpu")) == (
        200_000_000,
        "the container's memory limit (cgroup)",
    )
    line = fails(capsys, ["train", *SMALL, "--hidden-dim", "100000", "--out", str(tmp_path / "o")])
    assert (
        "(the container's memory limit (cgroup))" in line
        and "the limit here is --hidden-dim" in line
    )


def _small_checkpoint(tmp_path):
    """An untrained 784-8-2 network's checkpoint, on the embedded data."""
    return save_checkpoint(
        tmp_path / "ck.pt",
        aelib.Autoencoder(hidden_dim=8, latent_dim=2),
        None,
        aelib.History(),
        {"data": {"name": "mnist", "source": "embedded"}},
    )


class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def test_a_closed_stdout_is_a_note_not_a_traceback(tmp_path, capsys, monkeypatch):
    path = _small_checkpoint(tmp_path)
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert cli.main(["evaluate", "--checkpoint", str(path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "python -m aelib evaluate: note: the standard output was closed before the end (a pipe "
        "such as | head); the command ran to the end"
    ]


def _wait_for_torch_loading(pid, timeout=60):
    """Until the process maps torch's library (Linux); elsewhere half a second."""
    maps = Path(f"/proc/{pid}/maps")
    if not maps.exists():
        time.sleep(0.5)
        return
    deadline = time.monotonic() + timeout
    while "libtorch" not in maps.read_text():
        assert time.monotonic() < deadline, "torch never started loading"
        time.sleep(0.02)


def test_a_closed_pipe_and_an_early_ctrl_c_through_a_subprocess(tmp_path):
    """The two cases only a real process shows: the interpreter's last flush, and a SIGINT while
    torch is being imported (``import aelib`` imports no torch: the handler comes first)."""
    check = popen("-c", "import sys, aelib; print('torch' in sys.modules)")
    assert check.communicate(timeout=60)[0].strip() == "False"
    path = _small_checkpoint(tmp_path)
    write_idx_folder(tmp_path / "data")  # six test images: no time spent on data
    proc = popen(
        "-m", "aelib", "evaluate", "--checkpoint", str(path), "--data-dir", str(tmp_path / "data")
    )
    proc.stdout.close()  # `| head -0`: the reader is gone before the first line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err, err
    assert (
        err.strip().endswith("the command ran to the end") and len(err.strip().splitlines()) == 1
    )
    early = popen("-m", "aelib", "train", *SMALL, "--out", str(tmp_path / "o"))
    _wait_for_torch_loading(early.pid)  # the handler came first, torch loads for seconds
    early.send_signal(signal.SIGINT)
    _, err = early.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert early.returncode == 130 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == "python -m aelib: interrupted by SIGINT before training started", err


# ---- issue 19 acceptance: what a clean clone still got wrong


_SWALLOW = """
import signal, time
import aelib.__main__ as m
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, m._interrupted_early)
source = open(m.__file__.replace("__main__", "cli")).read()
print("compiling", flush=True)
start = time.monotonic()
while time.monotonic() - start < 5:
    compile(source, "cli", "exec")  # an import without a .pyc parses its module like this
print("went on after the interrupt")
"""


def test_an_early_ctrl_c_during_a_modules_compilation_still_ends_the_run():
    """CPython drops a handler's SystemExit raised while compile() parses: the early handler
    must end the process itself (it did not: the run went on, then exit 0)."""
    proc = popen("-c", _SWALLOW)
    assert proc.stdout.readline() == "compiling\n"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "went on" not in out, (out, err)
    assert err.strip() == "python -m aelib: interrupted by SIGINT before training started", err


def test_a_signal_whose_exception_was_lost_stops_the_run_at_the_next_epoch(
    tmp_path, capsys, monkeypatch
):
    """The training handler's Interrupted can be lost the same way: the run stops where it
    next looks (before saving an epoch), with the resume line."""
    real_fit = cli.fit

    def fit_after_a_lost_signal(*args, **kwargs):
        cli._SignalState.raised = signal.SIGINT  # the handler ran; its exception vanished
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cli, "fit", fit_after_a_lost_signal)
    with pytest.raises(SystemExit) as info:
        train(tmp_path / "o", epochs=2)
    assert info.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err.endswith("interrupted by SIGINT: no epoch was saved; nothing to resume"), err
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_torch_that_cannot_load_is_one_line(monkeypatch, capsys):
    """``ulimit -v`` below what torch's libraries map: an ImportError, not a traceback."""
    import aelib.__main__ as entry

    monkeypatch.setattr(entry.signal, "signal", lambda *a: None)  # keep pytest's handlers
    monkeypatch.setitem(sys.modules, "aelib.cli", None)  # `from .cli import main` fails
    assert entry.main() == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m aelib: torch could not be loaded (") and err.count("\n") == 1
    error = OSError("libtorch_cuda.so: failed to map segment from shared object")
    assert entry._import_failed(error) == 2
    assert "the memory limit of this process (ulimit -v" in capsys.readouterr().err


def test_resuming_when_the_checkpoints_own_data_changed_says_so(tmp_path, capsys):
    """No data flag given: the message says the data there changed, not 'drop --data-dir'."""
    from conftest import write_idx

    data = tmp_path / "data"
    arrays = write_idx_folder(data, n_train=40, n_test=8)
    argv = ["train", "--quiet", "--hidden-dim", "8", "--latent-dim", "2", "--epochs", "1"]
    assert cli.main([*argv, "--data-dir", str(data), "--out", str(tmp_path / "o")]) == 0
    images = arrays["train-images-idx3-ubyte"].copy()
    images[0, 0, 0] = (images[0, 0, 0] + 1) % 256
    write_idx(data / "train-images-idx3-ubyte", images)
    capsys.readouterr()
    resume = ["train", "--resume", str(tmp_path / "o" / "checkpoint.pt"), "--epochs", "2"]
    line = fails(capsys, resume)
    assert f"the data at {data} are not those the checkpoint was trained on: they changed" in line
    assert "--data-dir" not in line
    line = fails(capsys, [*resume, "--data-dir", str(data)])
    assert "drop --dataset/--data-source/--data-dir" in line
    assert (tmp_path / "o" / "metrics.json").is_file()


def test_odd_checkpoint_and_data_paths_say_what_they_are(tmp_path, capsys, no_data):
    line = fails(capsys, ["evaluate", "--checkpoint", os.devnull])
    assert line.endswith(
        f"--checkpoint {os.devnull} is not a regular file; pass a checkpoint.pt written by train"
    ), line


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("not a folder")
    for source in ([], ["--data-source", "dir"]):
        argv = ["train", "--data-dir", str(file), *source, "--out", str(tmp_path / "o")]
        line = fails(capsys, argv)
        assert f"the data folder {file} is a file, not a folder" in line, line
