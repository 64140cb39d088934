import math

import numpy as np
import pytest
import scipy.linalg
import torch

import aelib
from aelib import LinearAutoencoder
from aelib.analysis import PCA, pca, principal_angles


def random_subspaces(seed: int, d: int = 30, p: int = 5, q: int = 3):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(d, p, generator=gen, dtype=torch.float64), torch.randn(
        d, q, generator=gen, dtype=torch.float64
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p,q", [(5, 3), (3, 5), (4, 4), (1, 6)])
def test_principal_angles_match_scipy(seed, p, q):
    a, b = random_subspaces(seed, p=p, q=q)
    expected = np.sort(scipy.linalg.subspace_angles(a.numpy(), b.numpy()))
    np.testing.assert_allclose(principal_angles(a, b).numpy(), expected, atol=1e-12)


def test_principal_angles_of_a_known_rotation():
    # span{e1, e2} against span{e1, cos t e2 + sin t e3}: angles 0 and t
    d, t = 6, 0.3
    a = torch.eye(d, dtype=torch.float64)[:, :2]
    b = torch.zeros(d, 2, dtype=torch.float64)
    b[0, 0] = 2.0  # the scale of a column does not matter
    b[1, 1], b[2, 1] = math.cos(t), math.sin(t)
    torch.testing.assert_close(principal_angles(a, b), torch.tensor([0.0, t], dtype=torch.float64))


def test_principal_angles_see_subspaces_not_bases():
    a, _ = random_subspaces(1, p=4)
    mixing = torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    angles = principal_angles(a, a @ mixing)
    assert angles.max() < 1e-7  # accurate near zero, where arccos of the cosines would not be
    orthogonal = torch.eye(8, dtype=torch.float64)
    torch.testing.assert_close(
        principal_angles(orthogonal[:, :3], orthogonal[:, 3:6]),
        torch.full((3,), math.pi / 2, dtype=torch.float64),
    )


def test_principal_angles_ignore_dependent_columns():
    a, _ = random_subspaces(3, p=2)
    redundant = torch.cat([a, a.sum(1, keepdim=True)], dim=1)  # rank 2, three columns
    assert principal_angles(redundant, a).shape == (2,)


def test_principal_angles_shape_errors():
    with pytest.raises(ValueError, match="same number of rows"):
        principal_angles(torch.randn(5, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match=r"expected a as a matrix \(d, k\)"):
        principal_angles(torch.randn(5), torch.randn(5, 2))


def test_pca_recovers_a_planted_subspace():
    gen = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(40, 3, generator=gen, dtype=torch.float64))
    scales = torch.tensor([5.0, 3.0, 2.0], dtype=torch.float64)
    codes = torch.randn(2000, 3, generator=gen, dtype=torch.float64) * scales
    x = 0.4 + codes @ basis.T + 0.01 * torch.randn(2000, 40, generator=gen, dtype=torch.float64)
    result = pca(x, 3)
    assert principal_angles(result.components.T, basis).max() < 0.01
    torch.testing.assert_close(result.explained_variance, scales**2, rtol=0.1, atol=0)
    torch.testing.assert_close(result.mean, x.mean(0))
    # the sample mean is 0.4 up to its standard error, sqrt(var_j / n), in every coordinate
    standard_error = ((basis**2 @ scales**2 + 1e-4) / len(x)).sqrt()
    assert ((result.mean - 0.4).abs() < 4 * standard_error).all()
    assert not ((result.mean - 0.5).abs() < 4 * standard_error).all()


def test_pca_matches_numpy_covariance(mnist):
    x = aelib.to_float(mnist.x_train[:500]).double()
    result = pca(x, 5)
    assert isinstance(result, PCA) and result.components.shape == (5, 784)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x.numpy(), rowvar=False))
    np.testing.assert_allclose(result.explained_variance.numpy(), eigenvalues[::-1][:5], rtol=1e-8)
    assert (
        principal_angles(
            result.components.T, torch.from_numpy(eigenvectors[:, ::-1][:, :5].copy())
        ).max()
        < 1e-6
    )
    torch.testing.assert_close(
        result.components @ result.components.T, torch.eye(5, dtype=torch.float64)
    )


def test_pca_reconstruction_is_the_eckart_young_optimum(mnist):
    x = aelib.to_float(mnist.x_train[:500]).double()
    full, top = pca(x, 500), pca(x, 10)
    error = ((x - top.reconstruct(x)) ** 2).sum(1).mean()
    torch.testing.assert_close(error, full.explained_variance[10:].sum() * (len(x) - 1) / len(x))
    assert top.reconstruct(mnist.x_train[:3]).shape == (3, 1, 28, 28)


def test_pca_rejects_bad_m():
    with pytest.raises(ValueError, match=r"m must be an integer in \[1, 4\]"):
        pca(torch.rand(4, 10), 5)


def test_linear_autoencoder_shapes_and_errors():
    model = LinearAutoencoder(784, 7)
    x = torch.rand(3, 1, 28, 28)
    assert model.encode(x).shape == (3, 7)
    assert model(x).shape == (3, 784)
    assert model.reconstruct(x).shape == (3, 1, 28, 28)
    assert aelib.count_parameters(model) == 2 * 784 * 7 + 7 + 784
    assert aelib.count_parameters(LinearAutoencoder(784, 7, bias=False)) == 2 * 784 * 7
    with pytest.raises(ValueError, match=r"expected codes of shape \(B, 7\)"):
        model.decode(torch.rand(3, 8))
    with pytest.raises(ValueError, match=r"expected a batch of shape \(B, 784\)"):
        model(torch.rand(3, 100))
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        LinearAutoencoder(784, 0)


def test_linear_autoencoder_finds_the_pca_subspace():
    """Baldi & Hornik (1989): trained on squared error, the decoder spans the top PCA subspace."""
    gen = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(20, 2, generator=gen))
    codes = torch.randn(512, 2, generator=gen) * torch.tensor([0.6, 0.3])
    x = (0.5 + codes @ basis.T + 0.01 * torch.randn(512, 20, generator=gen)).clamp(0, 1)
    torch.manual_seed(0)
    model = LinearAutoencoder(20, 2, bias=False, center=x.mean(0))
    aelib.fit(
        model,
        x,
        num_epochs=50,
        batch_size=32,
        lr=1e-2,
        loss_fn=aelib.mse_loss,
        verbose=0,
    )
    reference = pca(x, 2)
    assert torch.rad2deg(principal_angles(model.decoder.weight, reference.components.T)).max() < 2
    pca_error = aelib.mse_loss(reference.reconstruct(x), x).item()
    ae_error = aelib.evaluate(model, x, aelib.mse_loss)
    assert pca_error - 1e-6 <= ae_error < 1.1 * pca_error


def test_linear_autoencoder_centres_its_inputs():
    center = torch.rand(784)
    model = LinearAutoencoder(784, 3, bias=False, center=center.reshape(1, 28, 28))
    torch.testing.assert_close(model.reconstruct(center.reshape(1, 784)), center.reshape(1, 784))
    assert "center" in model.state_dict()
    with pytest.raises(ValueError, match=r"expected center of shape \(784,\)"):
        LinearAutoencoder(784, 3, center=torch.rand(100))
