import torch
from seed_reference import seed_loss
from torch.nn import functional as F

import aelib


def test_bce_loss_equals_the_seeds_formula(mnist):
    """The seed normalised inputs to [-1, 1], applied a sigmoid and summed BCE on (x + 1) / 2."""
    torch.manual_seed(0)
    x = aelib.to_float(mnist.x_test[:64])
    x_normalized = (x - 0.5) / 0.5
    logits = torch.randn(64, 784) * 3
    seed_total = seed_loss(torch.sigmoid(logits), x_normalized)  # summed over the batch
    torch.testing.assert_close(aelib.bce_loss(logits, x) * 64, seed_total, rtol=1e-5, atol=1e-3)


def test_bce_loss_matches_elementwise_definition():
    torch.manual_seed(1)
    x = torch.rand(4, 784)
    logits = torch.randn(4, 784, dtype=torch.float64)
    p = torch.sigmoid(logits)
    by_hand = -(x * p.log() + (1 - x) * (1 - p).log()).sum() / 4
    torch.testing.assert_close(aelib.bce_loss(logits, x.double()), by_hand)


def test_bce_loss_is_stable_where_the_probability_form_is_not():
    logits = torch.full((1, 784), 200.0)
    x = torch.zeros(1, 784)
    assert torch.isfinite(aelib.bce_loss(logits, x))
    torch.testing.assert_close(aelib.bce_loss(logits, x), torch.tensor(200.0 * 784))
    # the probability form clamps log(0) at -100 per pixel and so under-reports the loss
    assert F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum") < 200.0 * 784


def test_mse_loss_is_sum_over_pixels_mean_over_images():
    x = torch.zeros(2, 1, 28, 28)
    out = torch.ones(2, 784)
    torch.testing.assert_close(aelib.mse_loss(out, x), torch.tensor(784.0))


def test_shape_mismatch_is_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match=r"logits of shape \(2, 784\)"):
        aelib.bce_loss(torch.zeros(2, 10), torch.zeros(2, 784))
