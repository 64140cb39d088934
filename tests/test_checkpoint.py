import errno
import hashlib
import os
import re
import stat

import pytest
import torch

import aelib
from aelib import checkpoint as checkpoint_mod
from aelib.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    constructor_args,
    load_checkpoint,
    load_model_state,
    restore_model,
    save_checkpoint,
    temporary_files,
)
from conftest import tiny_model


def test_round_trip_restores_weights_optimizer_and_history(small, tmp_path):
    model = tiny_model()
    opt = aelib.make_optimizer(model)
    history = aelib.fit(model, *small, num_epochs=1, optimizer=opt, verbose=0)
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", model, opt, history, {"seed": 42})
    state = load_checkpoint(path)
    restored = restore_model(state)
    for (k, a), (_, b) in zip(
        model.state_dict().items(), restored.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    assert state["history"] == history.to_dict() and state["train_config"] == {"seed": 42}
    assert state["optimizer_state"]["state"], "Adam moments must be saved for --resume"
    assert not [p for p in path.parent.iterdir() if p.name != "ck.pt"], (
        "temporary file left behind"
    )


def test_tied_model_round_trip(tmp_path):
    model = tiny_model(tied=True)
    save_checkpoint(tmp_path / "ck.pt", model, None, aelib.History())
    restored = restore_model(load_checkpoint(tmp_path / "ck.pt"))
    x = torch.rand(2, 784)
    torch.testing.assert_close(restored(x), model(x))


def test_different_architecture_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History())
    with pytest.raises(
        CheckpointError, match=r"different architecture.*latent_dim.*\(8, 64\) vs model \(20, 64\)"
    ):
        load_model_state(tiny_model(latent_dim=20), load_checkpoint(tmp_path / "ck.pt"))


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    junk = tmp_path / "notes.pt"
    junk.write_text("hello")
    with pytest.raises(CheckpointError, match="not an aelib checkpoint"):
        load_checkpoint(junk)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an aelib checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History())
    before = path.read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):  # the write reached the temporary file; flushing it to disk fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_mod.os, "fsync", full_disk)
    with pytest.raises(
        CheckpointWriteError, match="No space left on device.*previous checkpoint.*intact"
    ):
        save_checkpoint(path, tiny_model(seed=1), None, aelib.History())
    monkeypatch.setattr(checkpoint_mod.os, "fsync", real_fsync)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: tiny_model(),
        lambda: tiny_model(tied=True, activation="tanh"),
        lambda: aelib.VariationalAutoencoder(hidden_dim=32, latent_dim=3, normalize_input=False),
        lambda: aelib.ConvAutoencoder(latent_dim=5, channels=(4, 8)),
        lambda: aelib.LinearAutoencoder(latent_dim=3, bias=False, center=torch.rand(784)),
    ],
    ids=["plain", "tied", "vae", "conv", "linear"],
)
def test_restore_model_rebuilds_every_class_save_checkpoint_accepts(tmp_path, make):
    torch.manual_seed(0)
    model = make()
    save_checkpoint(tmp_path / "ck.pt", model, None, aelib.History())
    restored = restore_model(load_checkpoint(tmp_path / "ck.pt"))
    assert type(restored) is type(model)
    assert constructor_args(restored) == constructor_args(model)
    assert restored.state_dict().keys() == model.state_dict().keys()
    x = torch.rand(3, 784)
    if isinstance(model, aelib.VariationalAutoencoder):
        torch.testing.assert_close(restored.reconstruct(x), model.reconstruct(x))
    else:
        torch.testing.assert_close(restored(x), model(x))


def test_save_refuses_a_model_it_cannot_rebuild(tmp_path):
    with pytest.raises(
        TypeError, match="Autoencoder, VariationalAutoencoder, ConvAutoencoder.*got Linear$"
    ):
        save_checkpoint(tmp_path / "ck.pt", torch.nn.Linear(2, 2), None, aelib.History())


def test_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History())
        other = tmp_path / "other.txt"
        other.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(other.stat().st_mode) == 0o640


def test_file_and_folder_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        checkpoint_mod.os,
        "fsync",
        lambda fd: events.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode))) or real_fsync(fd),
    )
    monkeypatch.setattr(
        checkpoint_mod.os,
        "replace",
        lambda a, b: events.append(("rename", None)) or real_replace(a, b),
    )
    save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History())
    assert events == [("fsync", False), ("rename", None), ("fsync", True)]


def test_flipped_bytes_are_reported_as_damage(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History())
    raw = path.read_bytes()
    payload_start = raw.index(
        b"PK\x03\x04", 4
    )  # the inner checkpoint, stored inside the outer one
    for offset in (payload_start + 2000, len(raw) // 2):
        damaged = bytearray(raw)
        damaged[offset] ^= 0x55
        path.write_bytes(bytes(damaged))
        with pytest.raises(CheckpointError, match="damaged"):
            load_checkpoint(path)


def test_scaler_state_and_extra_facts_round_trip(tmp_path):
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    save_checkpoint(
        tmp_path / "ck.pt",
        tiny_model(),
        None,
        aelib.History(),
        scaler=scaler,
        extra={"session_seconds": [1.5, 2.0]},
    )
    state = load_checkpoint(tmp_path / "ck.pt")
    restored = torch.amp.GradScaler("cpu")
    restored.load_state_dict(state["scaler_state"])
    assert restored.get_scale() == 1024.0 and restored.get_growth_interval() == 7
    assert state["extra"] == {"session_seconds": [1.5, 2.0]}


def test_version_1_checkpoints_still_load(tmp_path):
    model = tiny_model()
    torch.save(
        {
            "format": "aelib-checkpoint",
            "version": 1,
            "model_class": "Autoencoder",
            "model_config": dict(model.config),
            "model_state": model.state_dict(),
            "optimizer_state": None,
            "history": aelib.History().to_dict(),
            "train_config": {},
        },
        tmp_path / "old.pt",
    )
    restored = restore_model(load_checkpoint(tmp_path / "old.pt"))
    x = torch.rand(2, 784)
    torch.testing.assert_close(restored(x), model(x))


def test_temporary_files_are_found_and_only_aelibs_own(tmp_path):
    (tmp_path / ".checkpoint.pt.abc_1234.tmp").write_bytes(b"partial")
    (tmp_path / "keep.tmp").write_bytes(b"not ours: not hidden")
    (tmp_path / ".notes.tmp").write_bytes(b"a user's hidden file")
    (tmp_path / ".checkpoint.pt.mine.tmp").write_bytes(b"not mkstemp's 8 characters")
    (tmp_path / ".other.pt.abcd1234.tmp").write_bytes(b"another checkpoint's")
    assert [p.name for p in temporary_files(tmp_path)] == [".checkpoint.pt.abc_1234.tmp"]
    assert [p.name for p in temporary_files(tmp_path, "other.pt")] == [".other.pt.abcd1234.tmp"]
    assert temporary_files(tmp_path / "missing") == []


def test_a_full_disk_during_the_write_is_a_write_error(tmp_path, monkeypatch):
    """torch's zip writer wraps the OSError in a RuntimeError; aelib writes plain bytes."""
    path = save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History())
    before = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(
        checkpoint_mod.os,
        "fdopen",
        lambda fd, mode: real_fdopen(os.open("/dev/full", os.O_WRONLY), mode),
    )
    with pytest.raises(CheckpointWriteError, match="No space left on device"):
        save_checkpoint(path, tiny_model(seed=1), None, aelib.History())
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_an_unreadable_checkpoint_is_a_checkpoint_error(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History())

    def refuse(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(checkpoint_mod.Path, "read_bytes", refuse)
    with pytest.raises(CheckpointError, match="cannot be read \\(Permission denied\\)"):
        load_checkpoint(path)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="File name too long"):
        load_checkpoint(tmp_path / ("x" * 5000))


def _crafted(tmp_path, **changes):
    """A checkpoint with a valid hash whose payload differs from what aelib writes."""
    path = save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History([1.0]))
    state = load_checkpoint(path)
    state.update(changes)
    payload = checkpoint_mod._serialize(state)
    wrapper = {
        "format": checkpoint_mod.FORMAT,
        "version": checkpoint_mod.VERSION,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    torch.save(wrapper, path)
    return path


@pytest.mark.parametrize(
    "changes,found",
    [
        ({"history": [1, 2]}, "history is list"),
        ({"history": {"train_loss": ["a"]}}, "history['train_loss'] is not a list of numbers"),
        ({"train_config": None}, "train_config is NoneType"),
        ({"model_state": {"w": 3}}, "model_state holds something other than named tensors"),
        ({"model_class": 7}, "model_class is int"),
    ],
)
def test_a_crafted_payload_with_a_valid_hash_is_refused(tmp_path, changes, found):
    with pytest.raises(CheckpointError, match=re.escape(found)):
        load_checkpoint(_crafted(tmp_path, **changes))


def test_a_crafted_size_is_refused_before_any_memory_is_taken(tmp_path):
    path = _crafted(tmp_path, model_config={"hidden_dim": 10**12, "latent_dim": 8})
    with pytest.raises(CheckpointError, match="different architecture"):
        restore_model(load_checkpoint(path))
    path = _crafted(tmp_path, model_config={"hidden_dim": "wide"})
    with pytest.raises(CheckpointError, match="does not fit this aelib"):
        restore_model(load_checkpoint(path))
