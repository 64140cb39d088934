import pytest
import torch
from torch import nn

import aelib
from conftest import tiny_model


def seed_reference_model() -> nn.Module:
    """The seed script's Autoencoder class, verbatim apart from the constants."""

    class SeedAutoencoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 20))
            self.decoder = nn.Sequential(
                nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784), nn.Sigmoid()
            )

        def forward(self, x):
            return self.decoder(self.encoder(x.view(-1, 784)))

    return SeedAutoencoder()


def test_default_model_is_the_seeds_network():
    model = aelib.Autoencoder()
    assert aelib.count_parameters(model) == 644_804
    assert aelib.count_parameters(model) == sum(
        p.numel() for p in seed_reference_model().parameters()
    )


def test_same_weights_give_the_seeds_outputs():
    torch.manual_seed(0)
    seed = seed_reference_model()
    torch.manual_seed(0)
    ours = aelib.Autoencoder()
    x = torch.rand(5, 1, 28, 28)
    x_normalized = (x - 0.5) / 0.5  # the seed's transforms.Normalize((0.5,), (0.5,))
    torch.testing.assert_close(torch.sigmoid(ours(x)), seed(x_normalized))
    torch.testing.assert_close(ours.reconstruct(x), seed(x_normalized).view(5, 1, 28, 28))


def test_accepts_flat_and_image_batches():
    model = tiny_model()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(x), model(x.view(3, 784)))
    assert model.encode(x).shape == (3, 8)
    assert model.reconstruct(x.view(3, 784)).shape == (3, 784)


@pytest.mark.parametrize("shape", [(3, 28, 28), (3, 3, 28, 28), (3, 100), (784,)])
def test_wrong_shapes_are_clear_errors(shape):
    with pytest.raises(ValueError, match=r"^x .*\(B, 784\)"):
        tiny_model()(torch.rand(*shape))


def test_decode_checks_code_size():
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        tiny_model().decode(torch.zeros(2, 5))


def test_tied_weights_share_the_encoder_matrix():
    model = tiny_model(tied=True)
    untied = tiny_model(tied=False)
    enc_first = model.encoder[1]
    # W' = W^T: the tied model has only the decoder biases of its own
    assert aelib.count_parameters(untied) - aelib.count_parameters(model) == 784 * 64 + 64 * 8
    h = torch.rand(2, 64)
    torch.testing.assert_close(model.decoder[-1](h), h @ enc_first.weight + model.decoder[-1].bias)
    model(torch.rand(2, 784)).sum().backward()
    assert enc_first.weight.grad is not None


def test_deeper_network_mirrors_its_widths():
    model = aelib.Autoencoder(hidden_dim=[256, 64], latent_dim=4)
    widths = [m.out_features for m in model.encoder if isinstance(m, nn.Linear)]
    assert widths == [256, 64, 4]
    assert [m.out_features for m in model.decoder if isinstance(m, nn.Linear)] == [64, 256, 784]


@pytest.mark.parametrize("kwargs", [{"latent_dim": 0}, {"hidden_dim": -3}, {"activation": "gelu"}])
def test_bad_architecture_arguments(kwargs):
    with pytest.raises(ValueError):
        aelib.Autoencoder(**kwargs)


@pytest.mark.parametrize(
    "cuda,mps,expected",
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_pick_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    import aelib.utils

    monkeypatch.delenv("AELIB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(aelib.utils, "_mps_available", lambda: mps)
    assert aelib.pick_device("auto") == torch.device(expected)


def test_pick_device(monkeypatch):
    assert aelib.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        aelib.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            aelib.pick_device("cuda")


def test_pick_device_honours_aelib_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("AELIB_DEVICE", raising=False)
    assert aelib.pick_device("auto") == torch.device("cuda")
    monkeypatch.setenv("AELIB_DEVICE", "cpu")  # the test suite's setting wins over a GPU
    assert aelib.pick_device("auto") == torch.device("cpu")
    assert aelib.pick_device("cuda") == torch.device(
        "cuda"
    )  # an explicit device is not overridden
    monkeypatch.setenv("AELIB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="AELIB_DEVICE"):
        aelib.pick_device("auto")


def test_seed_everything_makes_init_repeatable():
    aelib.seed_everything(3)
    a = aelib.Autoencoder().encoder[1].weight.clone()
    aelib.seed_everything(3)
    assert torch.equal(a, aelib.Autoencoder().encoder[1].weight)
    with pytest.raises(ValueError):
        aelib.seed_everything(-1)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: aelib.VariationalAutoencoder(latent_dim=0), "latent_dim"),
        (lambda: aelib.VariationalAutoencoder(hidden_dim=-4), "hidden_dim"),
        (lambda: aelib.ConvAutoencoder(latent_dim=0), "latent_dim"),
        (lambda: aelib.ConvAutoencoder(channels=(16, 0)), r"channels\[1\]"),
        (lambda: aelib.Autoencoder(hidden_dim=[64, 0]), r"hidden_dim\[1\]"),
    ],
)
def test_every_model_checks_its_sizes(build, match):
    with pytest.raises(ValueError, match=match + " must be a positive integer"):
        build()
