"""The toy mixture: closed-form score against autograd, smoothing against Monte Carlo."""

import torch

from aelib.toy import GaussianMixture, three_blobs


def test_score_is_the_gradient_of_the_log_density():
    p = three_blobs()
    x = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p64 = GaussianMixture(p.means.double(), p.stds.double(), p.weights.double())
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(p64.log_prob(x).sum(), x)
    torch.testing.assert_close(p64.score(x.detach()), grad)


def test_log_prob_matches_torch_distributions():
    p = three_blobs()
    comps = torch.distributions.Independent(
        torch.distributions.Normal(p.means, p.stds[:, None].expand_as(p.means)), 1
    )
    ref = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(p.weights), comps)
    x = torch.rand(20, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(p.log_prob(x), ref.log_prob(x))


def test_smoothed_density_is_the_noisy_samples_density():
    p = three_blobs()
    g = torch.Generator().manual_seed(2)
    sigma = 0.05
    noisy = p.sample(200_000, g) + sigma * torch.randn(200_000, 2, generator=g)
    q = p.smoothed(sigma)
    # the mixture's mean and mean squared norm in closed form against the samples
    mean = (q.weights[:, None] * q.means).sum(0)
    torch.testing.assert_close(noisy.mean(0), mean, atol=2e-3, rtol=0)
    torch.testing.assert_close(
        noisy.pow(2).sum(1).mean(),
        2 * (q.weights * q.stds**2).sum() + (q.weights * q.means.pow(2).sum(1)).sum(),
        atol=3e-3,
        rtol=0,
    )


def test_sample_is_seeded_and_the_weights_hold():
    p = three_blobs()
    a = p.sample(30_000, torch.Generator().manual_seed(3))
    b = p.sample(30_000, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    nearest = torch.cdist(a, p.means).argmin(1)
    shares = torch.bincount(nearest, minlength=3).float() / len(a)
    torch.testing.assert_close(shares, p.weights, atol=0.01, rtol=0)
