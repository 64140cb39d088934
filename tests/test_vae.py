"""aelib.vae against references: torch.distributions, closed forms, brute-force loops."""

import math

import pytest
import torch
from torch.distributions import (
    Bernoulli,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    kl_divergence,
)
from torch.nn import functional as F

import aelib
from aelib import vae as V


def small_vae(seed: int = 0) -> aelib.VariationalAutoencoder:
    torch.manual_seed(seed)
    return aelib.VariationalAutoencoder(input_dim=12, hidden_dim=16, latent_dim=3)


def binary_images(n: int = 5, d: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, d), 0.4), generator=torch.Generator().manual_seed(seed))


def toy_model(d: int = 3, m: int = 2, seed: int = 0) -> V.LinearGaussian:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, m, generator=g, dtype=torch.float64)
    return V.LinearGaussian(w, torch.randn(d, generator=g, dtype=torch.float64), 0.7)


# ---------------------------------------------------------------- binarisation


def test_binarize_threshold_and_stochastic():
    x = torch.tensor([[0.0, 0.2, 0.5, 0.51, 1.0]])
    torch.testing.assert_close(V.binarize(x, threshold=0.5), torch.tensor([[0.0, 0, 0, 1, 1]]))
    grey = torch.full((20_000, 4), 0.3)
    b = V.binarize(grey, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert abs(b.mean().item() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / b.numel())  # P(1) = grey value
    torch.testing.assert_close(b, V.binarize(grey, torch.Generator().manual_seed(0)))
    ends = V.binarize(torch.tensor([0.0, 1.0]).repeat(100), torch.Generator().manual_seed(1))
    torch.testing.assert_close(ends, torch.tensor([0.0, 1.0]).repeat(100))
    uint8 = torch.tensor([[0, 128, 255]], dtype=torch.uint8)
    torch.testing.assert_close(V.binarize(uint8, threshold=0.5), torch.tensor([[0.0, 1, 1]]))


def test_binarize_needs_exactly_one_rule():
    with pytest.raises(ValueError, match="exactly one"):
        V.binarize(torch.rand(2, 3))
    with pytest.raises(ValueError, match="exactly one"):
        V.binarize(torch.rand(2, 3), torch.Generator(), threshold=0.5)


# ---------------------------------------------------------------- ELBO and IWAE


def test_elbo_terms_against_torch_distributions():
    model, x = small_vae(), binary_images()
    distortion, rate = V.elbo_terms(model, x, torch.Generator().manual_seed(3), num_samples=2)
    with torch.no_grad():
        mu, logvar = model.encode_distribution(x)
        q, prior = Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)
        torch.testing.assert_close(rate, kl_divergence(q, prior).sum(1))
        g = torch.Generator().manual_seed(3)
        expected = (
            sum(
                -Bernoulli(logits=model.decode(model.reparameterize(mu, logvar, g)))
                .log_prob(x)
                .sum(1)
                for _ in range(2)
            )
            / 2
        )
    torch.testing.assert_close(distortion, expected)


def test_elbo_terms_refuse_grey_pixels():
    with pytest.raises(ValueError, match="binar"):
        V.elbo_terms(small_vae(), torch.full((2, 12), 0.5))


def test_iwae_with_one_sample_is_the_elbo_estimate_of_the_same_draw():
    model, x = small_vae(), binary_images()
    log_w = V.log_importance_weights(model, x, 1, torch.Generator().manual_seed(5))
    with torch.no_grad():
        mu, logvar = model.encode_distribution(x)
        z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
        q = Normal(mu, torch.exp(0.5 * logvar))
        elbo = (
            Bernoulli(logits=model.decode(z)).log_prob(x).sum(1)
            + Normal(0.0, 1.0).log_prob(z).sum(1)
            - q.log_prob(z).sum(1)
        )
    assert log_w.shape == (1, len(x))
    torch.testing.assert_close(V.iwae(log_w), elbo)


def test_iwae_is_a_stable_log_mean_exp():
    log_w = torch.randn(7, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(V.iwae(log_w), log_w.exp().mean(0).log())
    far = V.iwae(log_w - 2000.0)  # exp(-2000) underflows; logsumexp does not
    assert torch.isfinite(far).all()
    torch.testing.assert_close(far, log_w.exp().mean(0).log() - 2000.0)


def test_linear_gaussian_against_numerical_integration():
    toy = toy_model(d=2, m=1)
    x = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    z = torch.linspace(-12, 12, 200_001, dtype=torch.float64).reshape(-1, 1, 1)
    log_joint = toy.log_joint(x, z)  # (grid, B)
    dz = (z[1] - z[0]).item()
    torch.testing.assert_close(toy.log_marginal(x), torch.logsumexp(log_joint, 0) + math.log(dz))
    weights = torch.softmax(log_joint, dim=0)  # Bayes' rule on the grid
    mean = (weights * z[:, :, 0]).sum(0)
    var = (weights * (z[:, :, 0] - mean).pow(2)).sum(0)
    post_mean, post_cov = toy.posterior(x)
    torch.testing.assert_close(post_mean[:, 0], mean)
    torch.testing.assert_close(post_cov[0, 0].expand(2), var)


def test_iwae_with_the_exact_posterior_is_log_p_x():
    toy = toy_model()
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean, cov = toy.posterior(x)
    q = MultivariateNormal(mean, cov)
    for k in (1, 10):
        torch.manual_seed(k)
        z = q.sample((k,))
        log_w = toy.log_joint(x, z) - q.log_prob(z)
        torch.testing.assert_close(V.iwae(log_w), toy.log_marginal(x))


def test_iwae_rises_with_k_towards_log_p_x_on_the_linear_gaussian_toy():
    toy = toy_model()
    x = torch.randn(2000, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean, cov = toy.posterior(x)
    q = Normal(mean + 0.5, 1.5 * cov.diagonal().sqrt())  # a factorised, shifted, too wide q
    log_px = toy.log_marginal(x)
    # the ELBO is log p(x) - KL(q || p(z|x)), both in closed form here
    gap = kl_divergence(
        MultivariateNormal(q.mean, torch.diag_embed(q.variance)), MultivariateNormal(mean, cov)
    )
    torch.manual_seed(0)
    bounds = []
    for k in (1, 10, 1000):
        z = q.sample((k,))
        bounds.append(V.iwae(toy.log_joint(x, z) - q.log_prob(z).sum(-1)))
    elbo_error = bounds[0] - (log_px - gap)
    assert elbo_error.mean().abs() < 4 * elbo_error.std() / math.sqrt(len(x))
    means = [b.mean().item() for b in bounds]
    assert means[0] < means[1] < means[2] < log_px.mean() + 1e-3
    assert log_px.mean() - means[2] < 0.05 * (log_px.mean() - means[0])


def test_iwae_bound_chunks_like_a_loop():
    model, x = small_vae(), binary_images(n=7)
    got = V.iwae_bound(
        model, x, 4, torch.Generator().manual_seed(2), max_rows=12
    )  # 3 images a chunk
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        expected = torch.cat(
            [V.iwae(V.log_importance_weights(model, x[i : i + 3], 4, g)) for i in range(0, 7, 3)]
        )
    torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------- gradient estimators


def decoder_log_likelihood(model, x):
    def f(z):
        logits = model.decode(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], -1)
        return -F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)

    return f


@pytest.mark.parametrize("estimator", ["reparameterization", "score_function"])
def test_gradient_samples_match_a_loop_over_autograd(estimator):
    model, x = small_vae(), binary_images(n=3)
    with torch.no_grad():
        mu, logvar = model.encode_distribution(x)
    f = decoder_log_likelihood(model, x)
    got = V.gradient_samples(f, mu, logvar, 4, estimator, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    eps_all = torch.randn((4, *mu.shape), generator=g)
    for s in range(4):
        m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
        q = Normal(m, torch.exp(0.5 * lv))
        if estimator == "reparameterization":
            surrogate = f((m + torch.exp(0.5 * lv) * eps_all[s])[None]).sum()
        else:
            z = (mu + torch.exp(0.5 * logvar) * eps_all[s]).detach()
            surrogate = (f(z[None])[0].detach() * q.log_prob(z).sum(-1)).sum()
        grad_mu, grad_logvar = torch.autograd.grad(surrogate, (m, lv))
        torch.testing.assert_close(got[s], torch.cat([grad_mu, grad_logvar], dim=-1))


def test_both_estimators_are_unbiased_and_the_linear_case_has_no_variance():
    mu = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.2, -0.4]], dtype=torch.float64)
    quadratic = lambda z: z.pow(2).sum(-1)  # E[z^2] = mu^2 + sigma^2
    exact = torch.cat([2 * mu, logvar.exp()], dim=-1)
    g = torch.Generator().manual_seed(0)
    mu32, lv32 = mu.float(), logvar.float()
    for estimator in ("reparameterization", "score_function"):
        grads = V.gradient_samples(quadratic, mu32, lv32, 200_000, estimator, g).double()
        stderr = grads.std(0) / math.sqrt(len(grads))
        assert ((grads.mean(0) - exact).abs() < 4 * stderr + 1e-3).all(), estimator
    linear = lambda z: (z * torch.tensor([2.0, -3.0])).sum(-1)
    out = V.estimator_variance(linear, mu32, lv32, 1000)
    rep_mean, rep_var = out["reparameterization"]
    torch.testing.assert_close(rep_mean[0, :2], torch.tensor([2.0, -3.0]))
    torch.testing.assert_close(rep_var[0, :2], torch.zeros(2))
    assert (out["score_function"][1][0, :2] > 1).all()


def test_gradient_samples_rejects_an_unknown_estimator():
    with pytest.raises(ValueError, match="estimator"):
        V.gradient_samples(
            lambda z: z.sum(-1), torch.zeros(1, 2), torch.zeros(1, 2), 3, "pathwise"
        )


# ---------------------------------------------------------------- active units, KL per dimension


def test_active_units_on_a_constructed_case():
    signs = torch.tensor([1.0, -1.0]).repeat(50)
    mu = torch.stack([signs, torch.full((100,), 3.0), 0.05 * signs, 0.2 * signs], dim=1)
    torch.testing.assert_close(V.activity(mu), torch.tensor([1.0, 0.0, 0.0025, 0.04]) * 100 / 99)
    assert V.active_units(mu) == 2  # a constant mean, however far from 0, carries nothing
    assert V.active_units(mu, threshold=1e-3) == 3


def test_kl_per_dimension_sums_to_gaussian_kl():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    per_dim = V.kl_per_dimension(mu, logvar)
    reference = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).mean(0)
    torch.testing.assert_close(per_dim, reference)
    torch.testing.assert_close(per_dim.sum(), aelib.gaussian_kl(mu, logvar))


# ---------------------------------------------------------------- remedies for collapse


def test_free_bits_loss():
    model, x = small_vae(), binary_images()
    out = model(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(V.free_bits_loss(out, x, 0.0), aelib.negative_elbo(out, x))
    torch.testing.assert_close(
        V.free_bits_loss(out, x, 0.0, beta=3.0), aelib.negative_elbo(out, x, beta=3.0)
    )
    kl = V.kl_per_dimension(out.mu, out.logvar).detach()
    free = kl.sort().values[1].item()  # above the smallest dimension's KL, below the others'
    loss = V.free_bits_loss(out, x, free)
    expected = aelib.bce_loss(out.logits, x) + torch.clamp(kl, min=free).sum()
    torch.testing.assert_close(loss, expected)
    mu = out.mu.detach().requires_grad_(True)
    V.free_bits_loss((out.logits.detach(), mu, out.logvar.detach()), x, free).backward()
    below = kl < free
    assert below.sum() == 1 and (mu.grad[:, below] == 0).all() and (mu.grad[:, ~below] != 0).any()
    with pytest.raises(ValueError, match="non-negative"):
        V.free_bits_loss(out, x, -1.0)


def test_kl_warmup_schedule_values():
    warmup = V.KLWarmup(4)
    assert [warmup.beta_at(e) for e in range(1, 8)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [V.KLWarmup(2, beta=6.0).beta_at(e) for e in (1, 2, 3, 4)] == [0.0, 3.0, 6.0, 6.0]
    with pytest.raises(ValueError, match="positive integer"):
        V.KLWarmup(0)


def test_kl_warmup_through_fit(small):
    x_train, _ = small
    x = V.binarize(x_train[:64], threshold=0.5)
    warmup = V.KLWarmup(2)
    used = []

    def loss_fn(output, target):
        used.append(warmup.beta)
        return warmup(output, target)

    model = aelib.VariationalAutoencoder(hidden_dim=16, latent_dim=2)
    aelib.fit(
        model,
        x,
        num_epochs=4,
        batch_size=32,
        loss_fn=loss_fn,
        on_epoch_end=warmup.on_epoch_end,
        verbose=0,
    )
    assert used == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]  # two batches an epoch
    out = model(x[:8])
    torch.testing.assert_close(warmup(out, x[:8]), aelib.negative_elbo(out, x[:8]))


# ---------------------------------------------------------------- aggregate posterior


def test_aggregate_log_density_against_a_mixture():
    g = torch.Generator().manual_seed(0)
    mu, logvar, z = (
        torch.randn(30, 3, generator=g),
        torch.randn(30, 3, generator=g),
        torch.randn(9, 3, generator=g),
    )
    mixture = MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(30)),
        Independent(Normal(mu, torch.exp(0.5 * logvar)), 1),
    )
    torch.testing.assert_close(
        V.aggregate_log_density(z, mu, logvar, chunk=4), mixture.log_prob(z)
    )
