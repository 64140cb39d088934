import pytest
import torch
from torch import nn

import aelib
from aelib import inference, metrics
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


# ---- issue 19: one contract for every model


def _models():
    """Every model of aelib, small, with its output kind: name -> (model, 'logits'|'values')."""
    from aelib import masking, sparse, vq
    from aelib.analysis import pca

    torch.manual_seed(0)
    data = torch.rand(64, 784)
    return {
        "Autoencoder": (aelib.Autoencoder(hidden_dim=32, latent_dim=4), "logits"),
        "tied": (aelib.Autoencoder(hidden_dim=[32, 16], latent_dim=4, tied=True), "logits"),
        "ConvAutoencoder": (aelib.ConvAutoencoder(latent_dim=4, channels=(4, 8)), "logits"),
        "LinearAutoencoder": (aelib.LinearAutoencoder(784, 4, center=data.mean(0)), "values"),
        "VariationalAutoencoder": (
            aelib.VariationalAutoencoder(hidden_dim=32, latent_dim=4),
            "logits",
        ),
        "VQAutoencoder": (vq.VQAutoencoder(4, num_codes=8, code_dim=2, hidden_dim=32), "logits"),
        "MaskedAutoencoder": (
            masking.MaskedAutoencoder(aelib.Autoencoder(hidden_dim=32, latent_dim=4)),
            "logits",
        ),
        "TopKSparseAutoencoder": (
            sparse.TopKSparseAutoencoder(input_dim=784, num_latents=64, k=8),
            "values",
        ),
        "PCA": (pca(data, 4), "values"),
    }


MODELS = list(_models())
IMAGE_MODELS = [n for n in MODELS if n not in ("TopKSparseAutoencoder", "PCA")]


@pytest.mark.parametrize("name", MODELS)
def test_every_model_keeps_one_contract(name):
    """encode, decode (logits or values, as ``output`` says), to_pixels, reconstruct (pixels)."""
    from aelib.inference import codes_to_images
    from aelib.models import to_pixels

    model, kind = _models()[name]
    x = torch.rand(6, 784, generator=torch.Generator().manual_seed(1))
    assert model.output == kind
    with torch.no_grad():
        z = model.encode(x)
        out = model.decode(z)
        pixels = model.to_pixels(out)
    assert out.shape == (6, 784) and len(z) == 6
    torch.testing.assert_close(pixels, torch.sigmoid(out) if kind == "logits" else out)
    reconstruction = model.reconstruct(x)
    assert reconstruction.shape == x.shape
    torch.testing.assert_close(reconstruction, pixels, rtol=0, atol=0)
    if name in IMAGE_MODELS:
        images = x.reshape(6, 1, 28, 28)
        torch.testing.assert_close(model.reconstruct(images), pixels.reshape(images.shape))
    if kind == "logits":
        assert 0 <= pixels.min() and pixels.max() <= 1
    # the helpers go through the model's own to_pixels: no sigmoid of their own
    torch.testing.assert_close(to_pixels(model, out), pixels)
    if name in IMAGE_MODELS:
        torch.testing.assert_close(codes_to_images(model, z), pixels.reshape(6, 28, 28))


def test_a_linear_autoencoders_decodings_are_not_squashed():
    """Its decodings leave [0, 1] (a linear layer's values); codes_to_images keeps them."""
    from aelib.inference import codes_to_images

    torch.manual_seed(0)
    model = aelib.LinearAutoencoder(784, 4)
    z = torch.randn(5, 4) * 20
    decoded = codes_to_images(model, z)
    assert decoded.min() < 0 or decoded.max() > 1
    torch.testing.assert_close(decoded, model.decode(z).detach().reshape(5, 28, 28))


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_image_model_takes_uint8_and_names_a_bad_input(name):
    model, _ = _models()[name]
    u8 = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(u8), model.encode(u8.float() / 255))
    for bad, error, match in [
        (torch.rand(3, 100), ValueError, r"^x has 100 values per image but the model takes 784"),
        (torch.rand(3, 784).double(), ValueError, r"^x is torch.float64 but the model"),
        (torch.rand(3, 784).numpy(), TypeError, r"^x must be a torch.Tensor, got ndarray: "),
        (torch.zeros(0, 784), ValueError, r"^x must be a non-empty batch"),
        (torch.zeros(3, 784, dtype=torch.int64), ValueError, r"^x must hold uint8 pixels"),
    ]:
        with pytest.raises(error, match=match):
            model.encode(bad)


def test_a_float64_model_takes_float64_inputs():
    model = aelib.Autoencoder(input_dim=6, hidden_dim=5, latent_dim=3).double()
    assert model(torch.rand(4, 6, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: aelib.Autoencoder(hidden_dim=16.0), "hidden_dim must be a positive integer"),
        (lambda: aelib.Autoencoder(hidden_dim="400"), "hidden_dim must be a positive integer"),
        (lambda: aelib.Autoencoder(latent_dim=True), "latent_dim must be a positive integer"),
        (lambda: aelib.pick_device(None), "device must be one of auto, cpu, cuda, mps"),
        (lambda: aelib.pick_device("cpu:0"), "unknown device 'cpu:0'"),
        (lambda: aelib.generator(2**64), "seed must be at most 2\\*\\*64 - 1"),
        (lambda: aelib.seed_everything(2**70), "seed must be at most"),
        (lambda: aelib.generator(1.5), "seed must be a non-negative integer"),
        (lambda: aelib.bce_loss(torch.zeros(0, 784), torch.zeros(0, 784)), "x is an empty batch"),
        (lambda: aelib.mse_loss(torch.zeros(0, 4), torch.zeros(0, 4)), "x is an empty batch"),
        (lambda: aelib.gaussian_kl(torch.zeros(0, 2), torch.zeros(0, 2)), "empty batch"),
        (lambda: aelib.make_optimizer(tiny_model(), lr="1e-3"), "lr must be a positive finite"),
        (lambda: aelib.make_optimizer(tiny_model(), lr=float("nan")), "lr must be a positive"),
        (lambda: aelib.VariationalAutoencoder(latent_dim=2).sample(0), "n must be a positive"),
    ],
)
def test_api_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


NAN = torch.full((2, 784), float("nan"))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: inference.images_to_codes(m, NAN), "^x holds NaN"),
        (lambda m: inference.denoise(m, NAN, 0.3), "^x holds NaN"),
        (lambda m: inference.interpolate(m, NAN[0], NAN[1], 0.5), "^x_a holds"),
        (lambda m: inference.interpolate_pairs(m, NAN, NAN, [0.5]), "^x_a holds"),
        (lambda m: inference.codes_to_images(m, NAN[:, :8]), "^z holds"),
        (lambda m: metrics.reconstruction_errors(m, NAN), "^x holds NaN"),
        (lambda m: inference.interpolate(m, torch.zeros(784), torch.ones(784), NAN[0, 0]), "pos"),
        (lambda m: inference.denoise(m, torch.rand(2, 784), float("nan")), "std must be"),
    ],
    ids=["images_to_codes", "denoise", "interpolate", "pairs", "to_images", "errors", "t", "std"],
)
def test_nan_inputs_to_the_inference_helpers_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call(tiny_model())


EMPTY = torch.zeros(0, 784)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: inference.images_to_codes(m, EMPTY), "^x must be a non-empty batch"),
        (lambda m: inference.denoise(m, EMPTY, 0.3), "^x must be a non-empty batch"),
        (lambda m: inference.interpolate_pairs(m, EMPTY, EMPTY, [0.5]), "^x_a must be a non-"),
    ],
    ids=["images_to_codes", "denoise", "pairs"],
)
def test_empty_batches_to_the_inference_helpers_are_named(call, match):
    """They raised torch's 'cannot reshape tensor of 0 elements' before."""
    with pytest.raises(ValueError, match=match):
        call(tiny_model())
