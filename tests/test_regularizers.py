import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

import aelib
from aelib import regularizers as R
from aelib.losses import gaussian_kl, negative_elbo
from aelib.models import ConvAutoencoder, VariationalAutoencoder
from conftest import tiny_model


def sigmoid_encoder_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return aelib.Autoencoder(hidden_dim=[], latent_dim=16, code_activation="sigmoid", **kwargs)


@pytest.mark.parametrize("normalize_input", [True, False])
def test_contractive_closed_form_equals_autograd_jacobian(normalize_input):
    model = sigmoid_encoder_model(normalize_input=normalize_input).double()
    x = torch.rand(6, 784, dtype=torch.float64)
    closed = R.contractive_closed_form(model, x)
    jac = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda v: model.encode(v.unsqueeze(0))[0], xi)
            for xi in x
        ]
    )
    torch.testing.assert_close(closed, jac.pow(2).sum(dim=(1, 2)).mean())
    torch.testing.assert_close(R.jacobian_frobenius(model, x), closed)


def test_contractive_penalty_is_differentiable_and_auto_picks_a_method():
    model = sigmoid_encoder_model()
    x = torch.rand(4, 784)
    penalty = R.Contractive(lam=0.1)(model, x)
    penalty.backward()
    assert model.encoder[1].weight.grad.abs().sum() > 0
    deep = tiny_model()  # ReLU hidden layer: only autograd applies
    torch.testing.assert_close(R.Contractive(1.0)(deep, x), R.jacobian_frobenius(deep, x))
    with pytest.raises(ValueError, match="one-layer sigmoid encoder"):
        R.Contractive(1.0, method="closed_form")(deep, x)


def test_kl_sparsity_matches_bernoulli_kl():
    torch.manual_seed(0)
    z = torch.rand(32, 10)
    rho = 0.05
    rho_hat = z.mean(0)
    from torch.distributions import Bernoulli

    reference = kl_divergence(
        Bernoulli(probs=torch.full((10,), rho)), Bernoulli(probs=rho_hat)
    ).sum()
    torch.testing.assert_close(R.kl_sparsity(z, rho), reference)
    assert R.kl_sparsity(torch.full((4, 3), rho), rho) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="sigmoid"):
        R.kl_sparsity(z - 2, rho)


def test_l1_activity():
    z = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    assert R.l1_activity(z).item() == pytest.approx(3.0)  # (|1| + |-2| + |0| + |3|) / 2 images


PENALTIES = {  # a model, the regularizer, and its formula written out
    "l1": (
        lambda: tiny_model(),
        R.L1Activity(0.5),
        lambda m, x: 0.5 * m.encode(x).abs().sum(1).mean(),
    ),
    "kl": (
        lambda: tiny_model(code_activation="sigmoid"),
        R.KLSparsity(rho=0.05, lam=2.0),
        lambda m, x: (
            2.0
            * kl_divergence(
                Bernoulli(probs=torch.full((8,), 0.05)), Bernoulli(probs=m.encode(x).mean(0))
            ).sum()
        ),
    ),
    "contractive": (
        lambda: sigmoid_encoder_model(),
        R.Contractive(0.3),
        lambda m, x: (
            0.3
            * torch.stack(
                [
                    torch.autograd.functional.jacobian(
                        lambda v: m.encode(v[None])[0], xi, create_graph=True
                    )
                    .pow(2)
                    .sum()
                    for xi in x
                ]
            ).mean()
        ),
    ),
}


@pytest.mark.parametrize("name", PENALTIES)
def test_each_penalty_is_lambda_times_its_formula(name, small):
    make, regularizer, formula = PENALTIES[name]
    model, x = make(), aelib.to_float(small[0][:16])
    penalty = regularizer(model, x)
    torch.testing.assert_close(penalty, formula(model, x))
    assert penalty > 0.01  # a zero penalty fails above; a positive one is what is added


@pytest.mark.parametrize("name", PENALTIES)
def test_fit_steps_down_the_gradient_of_loss_plus_penalty(name, small):
    """One SGD step of fit on one batch equals theta - lr * grad(loss + penalty), by autograd.

    The penalty's own gradient is large enough here that the step without it, or with its sign
    flipped, misses the tolerance.
    """
    import copy

    make, regularizer, formula = PENALTIES[name]
    x, lr = aelib.to_float(small[0][:32]), 0.05
    model = make()
    twin = copy.deepcopy(model)
    history = aelib.fit(
        model,
        x,
        num_epochs=1,
        batch_size=len(x),
        regularizer=regularizer,
        optimizer=torch.optim.SGD(model.parameters(), lr=lr),
        verbose=0,
    )
    params = list(twin.parameters())
    loss, penalty = aelib.bce_loss(twin(x), x), formula(twin, x)
    assert history.train_loss[0] == pytest.approx((loss + penalty).item(), rel=1e-5)
    g_loss = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    g_pen = torch.autograd.grad(penalty, params, allow_unused=True)
    for sign in (1, 0, -1):
        expected = [
            p - lr * (gl + sign * (gp if gp is not None else 0))
            for p, gl, gp in zip(params, g_loss, g_pen)
        ]
        close = all(
            torch.allclose(a, b, rtol=1e-4, atol=1e-6)
            for a, b in zip(model.parameters(), expected)
        )
        assert close == (sign == 1), sign


def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(1)
    mu, logvar = torch.randn(8, 5), torch.randn(8, 5)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros(5), torch.ones(5))
    torch.testing.assert_close(gaussian_kl(mu, logvar), kl_divergence(q, p).sum(1).mean())


@pytest.mark.parametrize(
    "corruption,rate", [(R.MaskingNoise(0.3), 0.3), (R.SaltAndPepper(0.2), 0.2)]
)
def test_corruption_rates_as_asked(corruption, rate):
    x = torch.full((200, 784), 0.5)
    x_tilde = corruption(x, torch.Generator().manual_seed(0))
    changed = (x_tilde != x).float().mean().item()
    assert changed == pytest.approx(rate, abs=0.01)
    if isinstance(corruption, R.SaltAndPepper):
        hit = x_tilde[x_tilde != x]
        assert set(hit.unique().tolist()) == {0.0, 1.0}
        assert (hit == 1).float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_gaussian_noise_std_and_range_and_generator():
    x = torch.full((100, 784), 0.5)
    a = R.GaussianNoise(0.1)(x, torch.Generator().manual_seed(3))
    b = R.GaussianNoise(0.1)(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a - x).std().item() == pytest.approx(0.1, rel=0.02)
    assert a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError):
        R.MaskingNoise(1.5)


def test_vae_shapes_reparameterization_and_samples():
    torch.manual_seed(0)
    vae = VariationalAutoencoder(hidden_dim=64, latent_dim=4)
    x = torch.rand(5, 1, 28, 28)
    out = vae(x)
    assert out.logits.shape == (5, 784) and out.mu.shape == (5, 4) and out.logvar.shape == (5, 4)
    g = torch.Generator().manual_seed(0)
    z = vae.reparameterize(out.mu, out.logvar, g)
    eps = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, out.mu + (0.5 * out.logvar).exp() * eps)
    assert vae.sample(3).shape == (3, 784)
    loss = negative_elbo(out, x)
    torch.testing.assert_close(
        loss, aelib.bce_loss(out.logits, x) + gaussian_kl(out.mu, out.logvar)
    )


def test_conv_autoencoder_shapes_and_weight_sharing():
    model = ConvAutoencoder(latent_dim=10)
    x = torch.rand(3, 1, 28, 28)
    assert model(x).shape == (3, 784) and model.encode(x.view(3, 784)).shape == (3, 10)
    conv_weights = sum(m.weight.numel() for m in model.encoder if isinstance(m, torch.nn.Conv2d))
    assert conv_weights == 1 * 16 * 9 + 16 * 32 * 9
    with pytest.raises(ValueError):
        model(torch.rand(3, 3, 28, 28))


def test_every_variant_trains_through_fit(small):
    x_train, x_test = small
    kw = dict(num_epochs=2, verbose=0)
    runs = {  # the regularizers: test_fit_steps_down_the_gradient_of_loss_plus_penalty
        "denoising": aelib.fit(
            tiny_model(), x_train, x_test, corruption=R.MaskingNoise(0.3), **kw
        ),
        "vae": aelib.fit(
            VariationalAutoencoder(hidden_dim=64, latent_dim=8),
            x_train,
            x_test,
            loss_fn=negative_elbo,
            **kw,
        ),
        "conv": aelib.fit(ConvAutoencoder(latent_dim=8), x_train, x_test, **kw),
    }
    for name, history in runs.items():
        assert history.train_loss[1] < history.train_loss[0], name


def test_vae_and_denoising_runs_repeat_exactly(small):
    x_train, _ = small

    def run():
        torch.manual_seed(0)
        vae = VariationalAutoencoder(hidden_dim=32, latent_dim=4)
        return aelib.fit(
            vae,
            x_train,
            num_epochs=2,
            loss_fn=negative_elbo,
            corruption=R.GaussianNoise(0.2),
            verbose=0,
        ).train_loss

    assert run() == run()


def test_regularizer_raises_training_loss_only(small):
    x_train, x_test = small
    plain = aelib.fit(tiny_model(), x_train, x_test, num_epochs=1, verbose=0)
    penalised = aelib.fit(
        tiny_model(),
        x_train,
        x_test,
        num_epochs=1,
        regularizer=lambda m, x: torch.tensor(1000.0),
        verbose=0,
    )
    assert penalised.train_loss[0] == pytest.approx(plain.train_loss[0] + 1000, rel=1e-6)
    assert penalised.test_loss[0] == pytest.approx(plain.test_loss[0], rel=1e-6)


def test_negative_elbo_refuses_a_plain_output():
    x = torch.rand(3, 784)
    with pytest.raises(ValueError, match="VariationalAutoencoder's output"):
        negative_elbo(torch.zeros(3, 784), x)


def test_contractive_auto_falls_back_to_autograd_for_other_encoders():
    from aelib import LinearAutoencoder

    torch.manual_seed(0)
    model = LinearAutoencoder(784, 3)
    x = torch.rand(4, 784)
    # a linear encoder's Jacobian is its weight matrix, the same for every input
    expected = model.encoder.weight.pow(2).sum()
    torch.testing.assert_close(R.Contractive(1.0)(model, x), expected)
    with pytest.raises(ValueError, match="nn.Sequential.*method='autograd'"):
        R.Contractive(1.0, method="closed_form")(model, x)


def test_each_option_buys_its_property(mnist):
    """Against the same model trained without it, each option moves the quantity it targets."""
    x_train, x_test = mnist.x_train, mnist.x_test[::4]
    kw = dict(num_epochs=6, verbose=0)
    x = aelib.to_float(x_test)

    def fitted(model, **options):
        aelib.fit(model, x_train, **options, **kw)
        return model.eval()

    with torch.no_grad():
        plain_sig, sparse = (
            fitted(tiny_model(code_activation="sigmoid")),
            fitted(tiny_model(code_activation="sigmoid"), regularizer=R.KLSparsity(0.05, 3.0)),
        )
        assert sparse.encode(x).mean() < plain_sig.encode(x).mean() - 0.1
        plain, l1 = fitted(tiny_model()), fitted(tiny_model(), regularizer=R.L1Activity(3.0))
        assert l1.encode(x).abs().mean() < 0.5 * plain.encode(x).abs().mean()
        masked = R.MaskingNoise(0.5)(x, torch.Generator().manual_seed(0))
        denoiser = fitted(tiny_model(), corruption=R.MaskingNoise(0.5))
        assert aelib.bce_loss(denoiser(masked), x) < aelib.bce_loss(plain(masked), x) - 10
    plain_enc, cae = (
        fitted(sigmoid_encoder_model()),
        fitted(sigmoid_encoder_model(), regularizer=R.Contractive(1.0)),
    )
    assert R.jacobian_frobenius(cae, x[:64]) < 0.5 * R.jacobian_frobenius(plain_enc, x[:64])


def test_blind_gaussian_noise_draws_one_level_per_image():
    x = torch.full((2000, 784), 0.5)  # mid-grey: clipping never bites below std ~ 0.15
    noisy = R.BlindGaussianNoise(0.3)(x, torch.Generator().manual_seed(0))
    levels = (noisy - x).std(dim=1)  # each image's own sigma, to about 2.5 %
    assert levels.min() < 0.02 and 0.27 < levels.max() < 0.31
    assert abs(levels.mean() - 0.15) < 0.01  # the mean of U[0, 0.3]
    with pytest.raises(ValueError, match="max_std"):
        R.BlindGaussianNoise(-1)
