import pytest
import torch

import aelib
from aelib.checkpoint import CheckpointError, load_checkpoint, load_model_state, restore_model, save_checkpoint
from conftest import tiny_model


def test_round_trip_restores_weights_optimizer_and_history(small, tmp_path):
    model = tiny_model()
    opt = aelib.make_optimizer(model)
    history = aelib.fit(model, *small, num_epochs=1, optimizer=opt, progress=False, verbose=False)
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", model, opt, history, {"seed": 42})
    state = load_checkpoint(path)
    restored = restore_model(state)
    for (k, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(a, b), k
    assert state["history"] == history.to_dict() and state["train_config"] == {"seed": 42}
    assert state["optimizer_state"]["state"], "Adam moments must be saved for --resume"
    assert not [p for p in path.parent.iterdir() if p.name != "ck.pt"], "temporary file left behind"


def test_tied_model_round_trip(tmp_path):
    model = tiny_model(tied=True)
    save_checkpoint(tmp_path / "ck.pt", model, None, aelib.History())
    restored = restore_model(load_checkpoint(tmp_path / "ck.pt"))
    x = torch.rand(2, 784)
    torch.testing.assert_close(restored(x), model(x))


def test_different_architecture_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", tiny_model(), None, aelib.History())
    with pytest.raises(CheckpointError, match=r"different architecture.*latent_dim.*\(8, 64\) vs model \(20, 64\)"):
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

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny_model(seed=1), None, aelib.History())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
