"""The one image normaliser (aelib.images): every entry point scales uint8 the same way."""

import pytest
import torch

import aelib
from aelib import images
from aelib.analysis import pca
from aelib.vae import binarize

U8 = torch.randint(
    0, 256, (5, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
)


def test_uint8_becomes_x_over_255_bit_for_bit():
    reference = U8.float() / 255.0
    assert torch.equal(images.pixels(U8), reference)
    assert torch.equal(aelib.to_float(U8), reference.reshape(5, 784))
    assert torch.equal(images.image_batch(U8, 784), reference.reshape(5, 784))
    assert torch.equal(
        images.image_batch(U8, 784, dtype=torch.float64), U8.double().reshape(5, 784) / 255
    )
    floats = torch.rand(3, 784, dtype=torch.float64)
    assert images.pixels(floats) is floats and images.rows(floats).dtype == torch.float64
    assert aelib.to_float(floats).dtype == torch.float32  # to_float's promise: float32


def test_every_entry_point_reads_uint8_as_its_float_pixels():
    x = U8.float() / 255
    torch.manual_seed(0)
    model = aelib.Autoencoder(hidden_dim=16, latent_dim=2)
    assert torch.equal(model(U8), model(x))
    assert aelib.evaluate(model, U8) == aelib.evaluate(model, x)
    assert torch.equal(pca(U8.reshape(5, 784), 2).components, pca(x.reshape(5, 784), 2).components)
    assert torch.equal(binarize(U8, threshold=0.5), binarize(x, threshold=0.5))


def test_one_image_and_finite_checks_name_their_argument():
    assert images.one_image(torch.zeros(1, 1, 28, 28), "x_a").shape == (1, 784)
    with pytest.raises(ValueError, match=r"^x_b must be one 28x28 image"):
        images.one_image(torch.zeros(2, 784), "x_b")
    with pytest.raises(ValueError, match="^z holds NaN or infinite values"):
        images.check_finite(torch.tensor([1.0, float("inf")]), "z")
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor, got list"):
        images.image_batch([[0.0] * 784])
