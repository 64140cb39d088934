import io

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import auc as area_under
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

import aelib
from aelib import metrics as M
from conftest import tiny_model

# --- psnr -------------------------------------------------------------------------------------


def test_psnr_by_hand():
    x = torch.zeros(2, 784)
    x_hat = torch.stack([torch.full((784,), 0.1), torch.full((784,), 0.01)])
    # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB; MSE 1e-4 -> 40 dB
    torch.testing.assert_close(M.psnr(x_hat, x), torch.tensor([20.0, 40.0]))
    # on the 0-255 scale the same images give the same decibels
    torch.testing.assert_close(
        M.psnr(255 * x_hat, 255 * x, max_val=255.0), torch.tensor([20.0, 40.0])
    )


def test_psnr_matches_a_numpy_reference_per_image():
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(5, 1, 28, 28, generator=g), torch.rand(5, 1, 28, 28, generator=g)
    a, b = x.numpy().astype(np.float64), x_hat.numpy().astype(np.float64)
    reference = [10 * np.log10(1.0 / np.mean((a[i] - b[i]) ** 2)) for i in range(5)]
    torch.testing.assert_close(
        M.psnr(x_hat, x).double(),
        torch.tensor(reference, dtype=torch.float64),
        rtol=1e-5,
        atol=1e-5,
    )
    torch.testing.assert_close(M.psnr(x_hat.reshape(5, 784), x.reshape(5, 784)), M.psnr(x_hat, x))
    assert torch.isinf(M.psnr(x, x.clone())).all()


def test_psnr_rejects_mismatched_or_integer_images():
    with pytest.raises(ValueError, match="same shape"):
        M.psnr(torch.zeros(2, 784), torch.zeros(3, 784))
    with pytest.raises(ValueError, match="to_float"):
        M.psnr(torch.zeros(2, 784, dtype=torch.uint8), torch.zeros(2, 784, dtype=torch.uint8))
    with pytest.raises(ValueError, match="max_val"):
        M.psnr(torch.zeros(2, 784), torch.ones(2, 784), max_val=0)


# --- reconstruction errors --------------------------------------------------------------------


def test_reconstruction_errors_are_the_per_image_losses(mnist):
    model = tiny_model()
    x = mnist.x_test[:7]
    errors = M.reconstruction_errors(model, x, batch_size=3)
    assert errors.shape == (7,)
    with torch.no_grad():
        per_image_bce = torch.stack(
            [
                aelib.bce_loss(model(aelib.to_float(x[i : i + 1])), aelib.to_float(x[i : i + 1]))
                for i in range(7)
            ]
        )
        x_hat = torch.sigmoid(model(aelib.to_float(x)))
    torch.testing.assert_close(errors, per_image_bce)
    torch.testing.assert_close(
        M.reconstruction_errors(model, x, "mse"), (x_hat - aelib.to_float(x)).pow(2).sum(1)
    )
    # the mean of the per-image errors is what aelib.evaluate reports
    assert errors.mean().item() == pytest.approx(aelib.evaluate(model, x), rel=1e-5)


def test_reconstruction_errors_of_a_linear_output_model_and_mode_restored():
    torch.manual_seed(0)
    model = aelib.Autoencoder(input_dim=30, hidden_dim=8, latent_dim=2, normalize_input=False)
    model.train()
    x = torch.randn(10, 30)
    errors = M.reconstruction_errors(model, x, "mse", output="values")
    with torch.no_grad():
        torch.testing.assert_close(errors, (model(x) - x).pow(2).sum(1))
    assert model.training


def test_reconstruction_errors_go_through_the_models_to_pixels():
    # a model whose decoder output becomes pixels by its own map (here a clamp), not a sigmoid:
    # the squared error is taken of to_pixels(decode(encode(x))), unless output= overrides it
    model = aelib.LinearAutoencoder(input_dim=784, latent_dim=3)
    model.to_pixels = lambda out: out.clamp(0, 1)
    x = torch.rand(5, 784)
    with torch.no_grad():
        out = model.decode(model.encode(x))
    assert (out < 0).any() or (out > 1).any()  # the clamp matters
    torch.testing.assert_close(
        M.reconstruction_errors(model, x, "mse"), (out.clamp(0, 1) - x).pow(2).sum(1)
    )
    torch.testing.assert_close(
        M.reconstruction_errors(model, x, "mse", output="values"), (out - x).pow(2).sum(1)
    )


def test_reconstruction_errors_of_a_vae_use_the_mean_code():
    torch.manual_seed(0)
    vae = aelib.VariationalAutoencoder(hidden_dim=16, latent_dim=3)
    x = torch.rand(4, 784)
    first, second = M.reconstruction_errors(vae, x), M.reconstruction_errors(vae, x)
    torch.testing.assert_close(first, second)  # no sampling
    with torch.no_grad():  # the BCE of the decoded mean code mu(x)
        expected = F.binary_cross_entropy_with_logits(
            vae.decode(vae.encode(x)), x, reduction="none"
        ).sum(1)
    torch.testing.assert_close(first, expected)


def test_reconstruction_errors_reject_bad_arguments():
    model = tiny_model()
    with pytest.raises(ValueError, match="'bce' or 'mse'"):
        M.reconstruction_errors(model, torch.rand(2, 784), loss="l1")
    with pytest.raises(ValueError, match="output='logits'"):
        M.reconstruction_errors(model, torch.rand(2, 784), loss="bce", output="values")
    with pytest.raises(ValueError, match="non-empty"):
        M.reconstruction_errors(model, torch.rand(784))


# --- ROC, thresholds, precision and recall ------------------------------------------------------


def test_roc_auc_is_the_probability_an_anomaly_outscores_a_normal_input():
    g = torch.Generator().manual_seed(0)
    normal, anomalous = torch.randn(40, generator=g), torch.randn(25, generator=g) + 1.0
    fpr, tpr, auc = M.roc(normal, anomalous)
    pairs = (
        (anomalous[:, None] > normal[None, :]).double().mean().item()
    )  # no ties in continuous data
    assert auc == pytest.approx(pairs)
    assert auc == pytest.approx(
        roc_auc_score(np.r_[np.zeros(40), np.ones(25)], np.r_[normal, anomalous])
    )
    assert area_under(fpr, tpr) == pytest.approx(auc)
    assert fpr[0] == 0 and tpr[-1] == 1


def test_roc_of_separated_scores():
    assert M.roc([0.1, 0.2], [0.3, 0.9])[2] == 1.0
    assert M.roc(np.array([0.3, 0.9]), np.array([0.1, 0.2]))[2] == 0.0


def test_roc_rejects_bad_scores():
    with pytest.raises(ValueError, match="non-empty 1-D"):
        M.roc([], [1.0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        M.roc(np.zeros((2, 2)), [1.0])
    with pytest.raises(ValueError, match="NaN"):
        M.roc([0.0, float("nan")], [1.0])


def test_threshold_at_percentile_is_numpys_percentile():
    scores = torch.arange(101.0)
    assert M.threshold_at_percentile(scores, 95) == pytest.approx(95.0)
    values = np.random.default_rng(0).normal(size=57)
    assert M.threshold_at_percentile(values, 80) == pytest.approx(np.percentile(values, 80))
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        M.threshold_at_percentile(values, 101)


def test_precision_recall_counted_by_hand():
    normal = [0.1, 0.5, 0.9, 0.45]
    anomalous = [0.4, 0.8, 1.2, 2.0]
    # "score > 0.45" flags normals 0.5 and 0.9 (0.45 itself is not above) and anomalies 0.8,
    # 1.2 and 2.0: 3 true of 5 flagged, 3 of the 4 anomalies found
    assert M.precision_recall_at(0.45, normal, anomalous) == (3 / 5, 3 / 4)
    assert M.precision_recall_at(1.0, torch.tensor(normal), torch.tensor(anomalous)) == (1.0, 0.5)
    assert M.precision_recall_at(10.0, normal, anomalous) == (0.0, 0.0)  # nothing flagged
    assert M.precision_recall_at(-1.0, normal, anomalous) == (0.5, 1.0)  # everything flagged
    with pytest.raises(ValueError, match="NaN"):
        M.precision_recall_at(0.5, [float("nan")], anomalous)


# --- compression ------------------------------------------------------------------------------


def test_bits_per_image():
    assert M.bits_per_image(8, 8) == 64
    assert M.bits_per_image(2, 4) == 8
    with pytest.raises(ValueError, match="bits"):
        M.bits_per_image(8, 0)
    with pytest.raises(ValueError, match="latent_dim"):
        M.bits_per_image(2.5, 8)


def test_quantize_rounds_to_the_nearest_of_2_to_the_bits_levels():
    low, high = torch.tensor([0.0, -1.0]), torch.tensor([3.0, 1.0])
    z = torch.tensor([[0.0, -1.0], [1.4, 0.1], [1.6, 0.4], [5.0, -7.0]])
    # 2 bits: levels 0, 1, 2, 3 in the first column and -1, -1/3, 1/3, 1 in the second
    expected = torch.tensor([[0.0, -1.0], [1.0, 1 / 3], [2.0, 1 / 3], [3.0, -1.0]])
    torch.testing.assert_close(M.quantize(z, 2, low, high), expected)


def test_quantize_error_is_at_most_half_a_step_and_levels_are_few():
    g = torch.Generator().manual_seed(0)
    z = torch.rand(2000, 3, generator=g) * 4 - 2
    low, high = torch.full((3,), -2.0), torch.full((3,), 2.0)
    for bits in (1, 3, 8):
        zq = M.quantize(z, bits, low, high)
        step = 4.0 / (2**bits - 1)
        assert (zq - z).abs().max() <= step / 2 + 1e-6
        assert all(len(torch.unique(zq[:, j])) <= 2**bits for j in range(3))
        torch.testing.assert_close(M.quantize(zq, bits, low, high), zq)
    assert len(torch.unique(M.quantize(z, 8, low, high)[:, 0])) > 200


def test_quantize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="bits"):
        M.quantize(torch.zeros(2, 3), 0, torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"\(B, m\)"):
        M.quantize(torch.zeros(2, 3), 4, torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="high"):
        M.quantize(torch.zeros(2, 3), 4, torch.ones(3), torch.ones(3))


def test_png_sizes_are_lossless_png_files(mnist):
    x = mnist.x_test[:3]
    sizes = M.png_sizes(x)
    assert sizes.shape == (3,)
    for image, size in zip(x, sizes):
        buffer = io.BytesIO()
        Image.fromarray(image[0].numpy()).save(buffer, format="PNG", optimize=True)
        assert buffer.tell() == size
        buffer.seek(0)
        assert np.array_equal(np.asarray(Image.open(buffer)), image[0].numpy())
    blank, noise = (
        torch.zeros(1, 28, 28, dtype=torch.uint8),
        torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8),
    )
    assert M.png_sizes(blank)[0] < M.png_sizes(noise)[0]
    with pytest.raises(ValueError, match="uint8"):
        M.png_sizes(aelib.to_float(x))
