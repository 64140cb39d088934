import warnings

import pytest
import torch

import aelib
from aelib.checkpoint import load_checkpoint, load_model_state
from conftest import tiny_model


def test_overfits_one_batch(mnist):
    x = mnist.x_train[:32]
    model = tiny_model(hidden_dim=256, latent_dim=32)
    before = aelib.evaluate(model, x)
    history = aelib.fit(model, x, x, num_epochs=300, batch_size=32, lr=3e-3, verbose=0)
    # the floor for these targets is their own entropy, sum_i H(x_i), per image
    p = aelib.to_float(x).clamp(1e-7, 1 - 1e-7)
    floor = -(p * p.log() + (1 - p) * (1 - p).log()).sum(1).mean().item()
    assert history.test_loss[-1] < floor + 0.15 * (before - floor)
    assert history.test_loss[-1] < 0.3 * before


def test_losses_decrease_and_are_recorded(small):
    x_train, x_test = small
    history = aelib.fit(tiny_model(), x_train, x_test, num_epochs=3, verbose=0)
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

    history = aelib.fit(
        model,
        x_train[:300],
        num_epochs=1,
        batch_size=128,
        loss_fn=recording_loss,
        verbose=0,
    )
    assert [n for _, n in seen] == [128, 128, 44]
    assert history.train_loss[0] == pytest.approx(
        sum(value * n for value, n in seen) / 300, rel=1e-6
    )


def test_same_seed_same_numbers_on_cpu(small):
    x_train, x_test = small
    runs = [
        aelib.fit(
            tiny_model(seed=5),
            x_train,
            x_test,
            num_epochs=2,
            seed=7,
            verbose=0,
        )
        for _ in range(2)
    ]
    assert runs[0].train_loss == runs[1].train_loss
    assert runs[0].test_loss == runs[1].test_loss
    other = aelib.fit(tiny_model(seed=5), x_train, x_test, num_epochs=2, seed=8, verbose=0)
    assert other.train_loss != runs[0].train_loss


def test_resume_gives_exactly_the_uninterrupted_losses(small, tmp_path):
    x_train, x_test = small
    full = aelib.fit(tiny_model(), x_train, x_test, num_epochs=4, verbose=0)

    model = tiny_model()
    optimizer = aelib.make_optimizer(model)
    first = aelib.fit(model, x_train, x_test, num_epochs=2, optimizer=optimizer, verbose=0)
    from aelib.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "ck.pt", model, optimizer, first)

    state = load_checkpoint(tmp_path / "ck.pt")
    resumed_model = tiny_model(seed=123)  # different init: the checkpoint must overwrite it
    load_model_state(resumed_model, state)
    resumed_opt = aelib.make_optimizer(resumed_model)
    resumed_opt.load_state_dict(state["optimizer_state"])
    history = aelib.History.from_dict(state["history"])
    aelib.fit(
        resumed_model,
        x_train,
        x_test,
        num_epochs=4,
        optimizer=resumed_opt,
        history=history,
        verbose=0,
    )
    assert history.train_loss == full.train_loss
    assert history.test_loss == full.test_loss


def test_nan_loss_stops_with_epoch_and_batch(small):
    x_train, _ = small
    calls = {"n": 0}

    def poisoned(logits, x):
        calls["n"] += 1
        loss = aelib.bce_loss(logits, x)
        return (
            loss * float("nan") if calls["n"] == 4 + 3 else loss
        )  # epoch 2 (4 batches of 128), batch 2

    with pytest.raises(aelib.NonFiniteLossError, match="epoch 2, batch 2"):
        aelib.fit(tiny_model(), x_train, num_epochs=3, loss_fn=poisoned, verbose=0)


def test_too_large_learning_rate_reports_nan_not_garbage(small):
    x_train, _ = small
    with pytest.raises(
        aelib.NonFiniteLossError, match="epoch 1, batch 1 .*lower the learning rate"
    ):
        aelib.fit(tiny_model(), x_train, num_epochs=2, lr=1e10, verbose=0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"num_epochs": -1}, "num_epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr must be a positive finite number"),
        ({"lr": "1e-3"}, "lr must be a positive finite number, got '1e-3'"),
        ({"options": aelib.FitOptions(check_every=0)}, "check_every"),
        ({"verbose": 3}, "verbose must be 0"),
        ({"verbose": "yes"}, "verbose must be 0"),
        ({"seed": 2**64}, "seed must be"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_hyperparameters(small, kwargs, match):
    with pytest.raises(ValueError, match=match):
        aelib.fit(tiny_model(), small[0], **{"verbose": 0, **kwargs})


def test_bad_pixel_values_are_rejected(small):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aelib.fit(
            tiny_model(),
            aelib.to_float(small[0]) * 2 - 1,
            num_epochs=1,
            verbose=0,
        )
    with pytest.raises(ValueError, match=r"x_test must be .*\(4, 3, 28, 28\)"):
        aelib.fit(
            tiny_model(),
            small[0],
            torch.rand(4, 3, 28, 28),
            num_epochs=1,
            verbose=0,
        )
    with pytest.raises(
        ValueError, match=r"x_train has 100 values per image but the model takes 784"
    ):
        aelib.fit(tiny_model(), torch.rand(8, 100), num_epochs=1, verbose=0)


def test_prints_the_seeds_log_lines(small, capsys):
    aelib.fit(tiny_model(), *small, num_epochs=2, verbose=1)
    captured = capsys.readouterr()
    assert "epoch 1/2" not in captured.err  # verbose=1: no progress bar
    out = captured.out.splitlines()
    assert out[0].startswith("====> Epoch: 1 Average training loss: ")
    assert out[1].startswith("====> Test set loss: ")
    assert out[2].startswith("====> Epoch: 2 ")


def test_evaluate_equals_a_single_full_batch(small):
    model = tiny_model()
    x = small[1]
    full = aelib.bce_loss(model(aelib.to_float(x)), aelib.to_float(x)).item()
    assert aelib.evaluate(model, x, batch_size=100) == pytest.approx(full, rel=1e-5)


def test_each_epoch_draws_fresh_noise_from_streams_of_its_own(small):
    """Corruption noise, the global stream (a VAE's eps) and the order differ between epochs,
    between streams and between seeds, and the noise comes from a CPU generator."""
    x_train, _ = small
    noise, globals_, devices = {}, {}, set()

    def recording_corruption(x, generator):
        devices.add(generator.device.type)
        draws = noise.setdefault(seed, [])
        draws.append(torch.rand(4, generator=generator))
        globals_.setdefault(seed, []).append(torch.rand(4))  # the global generator's stream
        return x

    for seed in (1, 2):
        aelib.fit(
            tiny_model(),
            x_train,
            num_epochs=2,
            batch_size=len(x_train),
            seed=seed,
            corruption=recording_corruption,
            verbose=0,
        )
    assert devices == {"cpu"}
    draws = [d for seed in (1, 2) for d in noise[seed] + globals_[seed]]
    assert len(draws) == 8
    for i in range(8):
        for j in range(i):
            assert not torch.equal(draws[i], draws[j]), (i, j)


def test_train_epoch_is_the_seeds_loop_and_what_fit_runs(small):
    """The seed's train(), written out with the same order and noise, gives fit's first epoch."""
    x_train, _ = small
    x = aelib.to_float(x_train)
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(42 * 1_000_003 + 1))
    train_loss = 0.0
    for start in range(0, len(x), 100):
        data = x[perm[start : start + 100]]
        optimizer.zero_grad()
        loss = aelib.bce_loss(model(data), data)
        loss.backward()
        train_loss += loss.item() * len(data)
        optimizer.step()
    by_hand = train_loss / len(x)

    from aelib.train import train_epoch

    again = tiny_model()
    order = torch.Generator().manual_seed(42 * 1_000_003 + 1)
    direct = train_epoch(
        again, x, torch.optim.Adam(again.parameters(), lr=1e-3), batch_size=100, order=order
    )
    fitted = aelib.fit(
        tiny_model(),
        x_train,
        num_epochs=1,
        batch_size=100,
        seed=42,
        optimizer=None,
        verbose=0,
        lr=1e-3,
    ).train_loss[0]
    assert direct == pytest.approx(by_hand, rel=1e-6)
    for p, q in zip(model.parameters(), again.parameters()):
        torch.testing.assert_close(p, q)
    assert fitted == pytest.approx(by_hand, rel=1e-4)  # fused Adam: same steps, other rounding


def test_fit_restores_the_callers_random_state(small):
    model = tiny_model()  # seeds torch itself
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    aelib.fit(
        model,
        small[0][:64],
        num_epochs=2,
        corruption=aelib.regularizers.GaussianNoise(0.1),
        verbose=0,
    )
    assert torch.equal(torch.rand(3), expected)


def test_fit_restores_every_cuda_gpu_and_mps_state(small, monkeypatch):
    """Without a GPU here: fake two initialized CUDA devices and MPS, and watch the restore."""
    import aelib.utils

    restored = {}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda i: torch.tensor([10 + i]))
    monkeypatch.setattr(
        torch.cuda, "set_rng_state", lambda s, i: restored.update({f"cuda:{i}": s})
    )
    monkeypatch.setattr(aelib.utils, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda device="mps": torch.tensor([99]))
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda s, device="mps": restored.update(mps=s))
    aelib.fit(tiny_model(), small[0][:64], num_epochs=1, verbose=0)
    assert {k: v.item() for k, v in restored.items()} == {"cuda:0": 10, "cuda:1": 11, "mps": 99}


def test_cuda_without_an_index_is_the_local_rank_gpu_under_torchrun(monkeypatch):
    from aelib.distributed import local_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert local_device(torch.device("cuda")) == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert local_device(torch.device("cuda")) == torch.device("cuda", 3)
    assert local_device(torch.device("cuda", 1)) == torch.device("cuda", 1)  # explicit index kept
    assert local_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("global_size", [1, 2, 7, 128])
def test_shards_partition_each_batch_and_weights_average_to_its_mean(world, global_size):
    """The shards are the batch in order; the weighted mean losses average to the batch mean."""
    from aelib.distributed import Shard

    xb = torch.arange(global_size, dtype=torch.float32).reshape(-1, 1)
    shards = [Shard(rank, world) for rank in range(world)]
    parts = [s.take(xb) for s in shards]
    held = [p for s, p in zip(shards, parts) if s.size(global_size) > 0]
    assert torch.equal(torch.cat(held), xb)
    assert [s.size(global_size) for s in shards] == [len(p) for p in held] + [0] * (
        world - len(held)
    )
    # DDP averages the per-process gradients: sum_r weight_r * mean_r / world = the global mean
    averaged = sum(s.weight(global_size) * p.mean() for s, p in zip(shards, parts)) / world
    assert averaged.item() == pytest.approx(xb.mean().item())


def test_a_float64_model_is_refused_with_the_fix(small):
    x_train, _ = small
    with pytest.raises(ValueError, match=r"float32 models .*torch.float64.*model.float\(\)"):
        aelib.fit(tiny_model().double(), x_train, num_epochs=1, verbose=0)


def test_a_vae_without_its_loss_gets_told_which_loss(small):
    x_train, _ = small
    with pytest.raises(ValueError, match="loss_fn=aelib.negative_elbo"):
        aelib.fit(
            aelib.VariationalAutoencoder(hidden_dim=32, latent_dim=4),
            x_train,
            num_epochs=1,
            verbose=0,
        )


def test_a_loss_that_explodes_for_two_epochs_stops_with_the_epoch_and_the_loss(small):
    """Adam at lr = 10 (the issue's case): epochs of 1e11 per image, finite, never NaN."""
    history = aelib.History()
    with pytest.raises(
        aelib.LossDivergedError,
        match=r"epoch 2 after .* at epoch 1, more than 10 times the first batch's "
        r"5\d\d\.\d; lower the learning rate \(it is 10: try 1\)",
    ):
        aelib.fit(
            tiny_model(),
            small[0],
            num_epochs=5,
            lr=10.0,
            history=history,
            verbose=0,
        )
    assert len(history) == 2 and min(history.train_loss) > 10 * history.first_batch_loss
    assert issubclass(aelib.LossDivergedError, FloatingPointError)


def scaled_loss(factors):
    """bce_loss times factors[epoch - 1]: a loss whose size per epoch the test chooses."""
    calls = {"n": 0}

    def loss_fn(logits, x):
        calls["n"] += 1
        return aelib.bce_loss(logits, x) * factors[(calls["n"] - 1) // 4]  # 4 batches per epoch

    return loss_fn


def test_one_wild_epoch_that_recovers_is_not_divergence(small):
    """Chapter 5's single epoch at lr = 10, and a spike that comes back, train to the end."""
    history = aelib.fit(
        tiny_model(),
        small[0],
        num_epochs=4,
        loss_fn=scaled_loss([1, 100, 1, 100]),
        verbose=0,
    )
    assert len(history) == 4
    one = aelib.fit(tiny_model(), small[0], num_epochs=1, lr=10.0, verbose=0)
    assert one.train_loss[0] > 1e6 * one.first_batch_loss


def test_divergence_rule_fires_on_the_second_exploded_epoch_and_can_be_turned_off(small):
    with pytest.raises(aelib.LossDivergedError, match="at epoch 3 after"):
        aelib.fit(
            tiny_model(),
            small[0],
            num_epochs=4,
            loss_fn=scaled_loss([1, 30, 30, 30]),
            verbose=0,
        )
    history = aelib.fit(
        tiny_model(),
        small[0],
        num_epochs=4,
        loss_fn=scaled_loss([1, 30, 30, 30]),
        verbose=0,
        options=aelib.FitOptions(divergence_factor=None),
    )
    assert len(history) == 4
    with pytest.raises(ValueError, match="divergence_factor"):
        aelib.fit(
            tiny_model(),
            small[0],
            verbose=0,
            options=aelib.FitOptions(divergence_factor=0.5),
        )


def test_a_resumed_run_checks_against_the_first_runs_yardstick(small):
    first = aelib.fit(
        tiny_model(),
        small[0],
        num_epochs=2,
        loss_fn=scaled_loss([1, 30]),
        verbose=0,
    )
    restored = aelib.History.from_dict(first.to_dict())
    assert restored.first_batch_loss == first.first_batch_loss
    with pytest.raises(aelib.LossDivergedError, match="at epoch 3"):
        aelib.fit(
            tiny_model(),
            small[0],
            num_epochs=3,
            history=restored,
            loss_fn=scaled_loss([30]),
            verbose=0,
        )


def test_make_scaler_only_for_float16():
    assert aelib.make_scaler(False, "cpu") is None
    assert aelib.make_scaler(True, "cpu") is None  # bfloat16 needs no loss scaling
    assert aelib.make_scaler(False, "cuda") is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA here: torch warns and disables the scaler
        scaler = aelib.make_scaler(True, torch.device("cuda"))
    assert isinstance(scaler, torch.amp.GradScaler) and scaler._device == "cuda"


def test_a_continued_fit_keeps_its_scaler(small):
    """A scale that doubles every step overflows and skips steps; which ones depends on its state.

    Uninterrupted, and resumed with the same scaler (or its state_dict), give the same losses; a
    fresh scaler at the resumption skips steps again and gives others.
    """
    x = small[0]

    def new_scaler():
        return torch.amp.GradScaler("cpu", init_scale=2.0**118, growth_interval=1)

    def run(epochs_per_call, resume):
        model = tiny_model()
        optimizer, history, scaler = aelib.make_optimizer(model), aelib.History(), new_scaler()
        for total in epochs_per_call:
            if resume == "state_dict":
                state, scaler = scaler.state_dict(), new_scaler()
                scaler.load_state_dict(state)
            elif resume == "fresh":
                scaler = new_scaler()
            aelib.fit(
                model,
                x,
                num_epochs=total,
                optimizer=optimizer,
                history=history,
                options=aelib.FitOptions(scaler=scaler),
                verbose=0,
            )
        return history.train_loss, scaler.get_scale()

    full, scale = run([3], "same")
    assert run([1, 3], "same") == (full, scale)
    assert run([1, 3], "state_dict") == (full, scale)
    assert run([1, 3], "fresh")[0] != full


@pytest.mark.parametrize(
    "x,match",
    [
        (torch.full((4, 784), float("nan")), "finite"),
        (torch.full((4, 784), 200.0), r"\[0, 1\]"),
        (torch.zeros(0, 784), "non-empty"),
        (torch.zeros(4, 100), "model takes 784"),
        ([[0.0] * 784], "torch.Tensor"),
    ],
)
def test_evaluate_checks_its_input_as_fit_does(x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        aelib.evaluate(tiny_model(), x)
    with pytest.raises((ValueError, TypeError), match=match):
        aelib.fit(tiny_model(), x, num_epochs=1, verbose=0)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_evaluate_needs_a_positive_batch_size(small, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        aelib.evaluate(tiny_model(), small[1], batch_size=batch_size)


def test_evaluate_takes_uint8_images_as_fit_does(small):
    model = tiny_model()
    x = small[1]
    assert aelib.evaluate(model, x) == aelib.evaluate(model, aelib.to_float(x))


def test_fit_reads_at_a_glance():
    """Twelve keywords after model and data; the rarely changed settings live in FitOptions."""
    import dataclasses
    import inspect

    keywords = [
        name
        for name, p in inspect.signature(aelib.fit).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert keywords == [
        "num_epochs",
        "batch_size",
        "lr",
        "seed",
        "loss_fn",
        "regularizer",
        "corruption",
        "optimizer",
        "history",
        "verbose",
        "on_epoch_end",
        "options",
    ]
    options = {f.name for f in dataclasses.fields(aelib.FitOptions)}
    assert options == {
        "check_every",
        "divergence_factor",
        "fail_diverged_end",
        "amp",
        "compile_mode",
        "scaler",
    }


def test_fit_trains_where_the_model_is(small):
    """No device argument: the data follow the model (here the CPU), and the model stays."""
    model = tiny_model()
    aelib.fit(model, small[0][:32], num_epochs=1, verbose=0)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    with pytest.raises(TypeError, match="device"):
        aelib.fit(model, small[0][:32], num_epochs=1, verbose=0, device="cpu")


def test_verbose_two_shows_a_progress_bar_and_the_lines(small, capsys):
    aelib.fit(tiny_model(), *small, num_epochs=1, verbose=2)
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.err
    assert captured.out.startswith("====> Epoch: 1 Average training loss: ")
    aelib.fit(tiny_model(), *small, num_epochs=1, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and "epoch 1/1" not in captured.err


@pytest.mark.parametrize("offset", ["", "3"])
def test_epoch_order_is_the_order_fit_shuffles_with(monkeypatch, offset):
    """A loop written out by hand (chapter 1) draws fit's order from epoch_order."""
    from aelib.train import epoch_order, epoch_streams

    monkeypatch.setenv("AELIB_SEED_OFFSET", offset)
    shifted = 42 + int(offset or 0)
    for epoch in (1, 2):
        mine = torch.randperm(100, generator=epoch_order(42, epoch))
        fits = torch.randperm(100, generator=epoch_streams(shifted, epoch)[0])
        assert torch.equal(mine, fits)
    assert not torch.equal(
        torch.randperm(100, generator=epoch_order(42, 1)),
        torch.randperm(100, generator=epoch_order(42, 2)),
    )
