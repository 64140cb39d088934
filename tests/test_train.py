import pytest
import torch

import aelib
from aelib.checkpoint import load_checkpoint, load_model_state
from conftest import tiny_model


def test_overfits_one_batch(mnist):
    x = mnist.x_train[:32]
    model = tiny_model(hidden_dim=256, latent_dim=32)
    before = aelib.evaluate(model, x)
    history = aelib.fit(model, x, x, num_epochs=300, batch_size=32, lr=3e-3, progress=False, verbose=False)
    # the floor for these targets is their own entropy, sum_i H(x_i), per image
    p = aelib.to_float(x).clamp(1e-7, 1 - 1e-7)
    floor = -(p * p.log() + (1 - p) * (1 - p).log()).sum(1).mean().item()
    assert history.test_loss[-1] < floor + 0.15 * (before - floor)
    assert history.test_loss[-1] < 0.3 * before


def test_losses_decrease_and_are_recorded(small):
    x_train, x_test = small
    history = aelib.fit(tiny_model(), x_train, x_test, num_epochs=3, progress=False, verbose=False)
    assert len(history) == 3 and len(history.test_loss) == 3 and len(history.epoch_seconds) == 3
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.test_loss[-1] < history.test_loss[0]


def test_reported_train_loss_is_the_mean_over_the_epochs_batches(small):
    """The seed's 'Average training loss': batch loss sums over the epoch, divided by N."""
    x_train, _ = small
    model = tiny_model()
    seen = []
    original = aelib.bce_loss

    def recording_loss(logits, x):
        loss = original(logits, x)
        seen.append((loss.item(), len(x)))
        return loss
    history = aelib.fit(model, x_train[:300], num_epochs=1, batch_size=128, loss_fn=recording_loss,
                        progress=False, verbose=False)
    assert [n for _, n in seen] == [128, 128, 44]
    assert history.train_loss[0] == pytest.approx(sum(l * n for l, n in seen) / 300, rel=1e-6)


def test_same_seed_same_numbers_on_cpu(small):
    x_train, x_test = small
    runs = [aelib.fit(tiny_model(seed=5), x_train, x_test, num_epochs=2, seed=7, progress=False,
                      verbose=False) for _ in range(2)]
    assert runs[0].train_loss == runs[1].train_loss
    assert runs[0].test_loss == runs[1].test_loss
    other = aelib.fit(tiny_model(seed=5), x_train, x_test, num_epochs=2, seed=8, progress=False, verbose=False)
    assert other.train_loss != runs[0].train_loss


def test_resume_gives_exactly_the_uninterrupted_losses(small, tmp_path):
    x_train, x_test = small
    full = aelib.fit(tiny_model(), x_train, x_test, num_epochs=4, progress=False, verbose=False)

    model = tiny_model()
    optimizer = aelib.make_optimizer(model)
    first = aelib.fit(model, x_train, x_test, num_epochs=2, optimizer=optimizer, progress=False, verbose=False)
    from aelib.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "ck.pt", model, optimizer, first)

    state = load_checkpoint(tmp_path / "ck.pt")
    resumed_model = tiny_model(seed=123)  # different init: the checkpoint must overwrite it
    load_model_state(resumed_model, state)
    resumed_opt = aelib.make_optimizer(resumed_model)
    resumed_opt.load_state_dict(state["optimizer_state"])
    history = aelib.History.from_dict(state["history"])
    aelib.fit(resumed_model, x_train, x_test, num_epochs=4, optimizer=resumed_opt, history=history,
              progress=False, verbose=False)
    assert history.train_loss == full.train_loss
    assert history.test_loss == full.test_loss


def test_nan_loss_stops_with_epoch_and_batch(small):
    x_train, _ = small
    calls = {"n": 0}

    def poisoned(logits, x):
        calls["n"] += 1
        loss = aelib.bce_loss(logits, x)
        return loss * float("nan") if calls["n"] == 4 + 3 else loss  # epoch 2 (4 batches of 128), batch 2
    with pytest.raises(aelib.NonFiniteLossError, match="epoch 2, batch 2"):
        aelib.fit(tiny_model(), x_train, num_epochs=3, loss_fn=poisoned, progress=False, verbose=False)


def test_too_large_learning_rate_reports_nan_not_garbage(small):
    x_train, _ = small
    with pytest.raises(aelib.NonFiniteLossError, match="epoch 1, batch 1 .*lower the learning rate"):
        aelib.fit(tiny_model(), x_train, num_epochs=2, lr=1e10, progress=False, verbose=False)


@pytest.mark.parametrize("kwargs,match", [({"num_epochs": -1}, "num_epochs"), ({"batch_size": 0}, "batch_size"),
                                          ({"lr": 0.0}, "lr must be positive"), ({"check_every": 0}, "check_every")])
def test_bad_hyperparameters(small, kwargs, match):
    with pytest.raises(ValueError, match=match):
        aelib.fit(tiny_model(), small[0], **kwargs, progress=False, verbose=False)


def test_bad_pixel_values_are_rejected(small):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aelib.fit(tiny_model(), aelib.to_float(small[0]) * 2 - 1, num_epochs=1, progress=False, verbose=False)
    with pytest.raises(ValueError, match=r"x_test must be .*\(4, 3, 28, 28\)"):
        aelib.fit(tiny_model(), small[0], torch.rand(4, 3, 28, 28), num_epochs=1, progress=False, verbose=False)
    with pytest.raises(ValueError, match=r"x_train has 100 values per image but the model takes 784"):
        aelib.fit(tiny_model(), torch.rand(8, 100), num_epochs=1, progress=False, verbose=False)


def test_prints_the_seeds_log_lines(small, capsys):
    aelib.fit(tiny_model(), *small, num_epochs=2, progress=False)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("====> Epoch: 1 Average training loss: ")
    assert out[1].startswith("====> Test set loss: ")
    assert out[2].startswith("====> Epoch: 2 ")


def test_evaluate_equals_a_single_full_batch(small):
    model = tiny_model()
    x = small[1]
    full = aelib.bce_loss(model(aelib.to_float(x)), aelib.to_float(x)).item()
    assert aelib.evaluate(model, x, batch_size=100) == pytest.approx(full, rel=1e-5)


def test_random_streams_never_coincide():
    """Each epoch's order, corruption noise and global stream get seeds no other (seed, epoch) reuses."""
    from aelib.train import _stream_seed
    order = {s * 1_000_003 + e for s in range(4) for e in range(1, 51)}
    streams = [_stream_seed(s, e, k) for s in range(4) for e in range(1, 51) for k in range(1, 5)]
    assert len(set(streams)) == len(streams)
    assert not order & set(streams)



def test_a_float64_model_is_refused_with_the_fix(small):
    x_train, _ = small
    with pytest.raises(ValueError, match=r"float32 models .*torch.float64.*model.float\(\)"):
        aelib.fit(tiny_model().double(), x_train, num_epochs=1, progress=False, verbose=False)


def test_a_vae_without_its_loss_gets_told_which_loss(small):
    x_train, _ = small
    with pytest.raises(ValueError, match="loss_fn=aelib.negative_elbo"):
        aelib.fit(aelib.VariationalAutoencoder(hidden_dim=32, latent_dim=4), x_train, num_epochs=1,
                  progress=False, verbose=False)
