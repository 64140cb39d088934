"""The variational autoencoder in depth: honest likelihoods, tighter bounds, gradients, collapse.

What chapter 8 needs beyond :class:`aelib.VariationalAutoencoder` and
:func:`aelib.negative_elbo`, each function citing the paper it implements:

- :func:`binarize`: binary digits, on which the Bernoulli decoder is a true density;
- :func:`elbo_terms` and :func:`iwae_bound`: the ELBO split into distortion and rate, and the
  importance-weighted bound of Burda, Grosse & Salakhutdinov (2016), "Importance Weighted
  Autoencoders", https://arxiv.org/abs/1509.00519, computed stably with ``logsumexp``;
- :class:`LinearGaussian`: a toy model whose ``log p(x)`` and posterior are known in closed form;
- :func:`gradient_samples` and :func:`estimator_variance`: the reparameterisation and the
  score-function (REINFORCE, Williams 1992) estimators of one gradient, on the same draws;
- :func:`activity`, :func:`active_units`, :func:`kl_per_dimension`: which code dimensions are used
  (Burda et al. 2016);
- :class:`KLWarmup` and :func:`free_bits_loss`: two remedies for posterior collapse (Sønderby et
  al. 2016; Kingma et al. 2016), used through :func:`aelib.fit`'s ``loss_fn`` and ``on_epoch_end``;
- :func:`aggregate_log_density`: the aggregate posterior ``q(z) = mean_n q(z|x_n)`` (Hoffman &
  Johnson 2016).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .images import pixels
from .losses import bce_loss, gaussian_kl, gaussian_kl_terms
from .models import reparameterize
from .utils import check_positive_int, draw, eval_mode, generator

LOG_2PI = math.log(2 * math.pi)


def binarize(
    x: torch.Tensor, generator: torch.Generator | None = None, threshold: float | None = None
) -> torch.Tensor:
    """Binary images from grey ones: a seeded stochastic draw, or a fixed threshold.

    The stochastic draw sets each pixel to 1 with probability equal to its grey value, as in the
    binarised MNIST of Salakhutdinov & Murray (2008) on which the literature's likelihoods are
    reported; a threshold is deterministic but keeps only the thick strokes and gives easier,
    blockier digits. Exactly one of ``generator`` and ``threshold`` must be given.

    Args:
        x: grey images in [0, 1], any shape (uint8 is scaled to [0, 1] first).
        generator: draws the uniforms of the stochastic binarisation.
        threshold: pixels above it become 1, the others 0.
    Returns:
        float32 tensor of 0s and 1s, the shape of ``x``.
    """
    if (generator is None) == (threshold is None):
        raise ValueError(
            "binarize needs exactly one of generator= (stochastic, seeded) or "
            f"threshold=; got generator={generator!r}, threshold={threshold!r}"
        )
    x = pixels(x).float()
    if threshold is not None:
        return (x > threshold).float()
    return (draw("uniform", tuple(x.shape), generator, x.device) < x).float()


def _check_binary(x: torch.Tensor) -> None:
    if not ((x == 0) | (x == 1)).all():
        raise ValueError(
            "the Bernoulli likelihood is a density only on binary pixels, got values "
            "strictly between 0 and 1: binarize the images first (aelib.vae.binarize)"
        )


def _encode(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu, logvar = model.encode_distribution(x)
    return mu, logvar


@torch.no_grad()
def elbo_terms(
    model: nn.Module,
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    num_samples: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distortion and rate of each image: ``ELBO(x) = -(distortion + rate)``, in nats.

    Distortion ``D = E_q[-log p(x|z)]`` is estimated with ``num_samples`` reparameterised draws;
    rate ``R = KL(q(z|x) || N(0, I))`` is exact (Kingma & Welling 2014, appendix B; the names are
    Alemi et al. 2018's).

    Args:
        model: a :class:`aelib.VariationalAutoencoder` (``encode_distribution``, ``decode``).
        x: binary images ``(N, 784)`` or ``(N, 1, 28, 28)``.
        generator: draws the codes.
        num_samples: draws per image for the distortion.
    Returns:
        ``(distortion, rate)``, each ``(N,)``.
    """
    x = x.reshape(len(x), -1)
    _check_binary(x)
    with eval_mode(model):
        mu, logvar = _encode(model, x)
        rate = gaussian_kl_terms(mu, logvar).sum(dim=1)
        distortion = torch.zeros(len(x), device=x.device)
        for _ in range(num_samples):
            z = reparameterize(mu, logvar, draw("normal", tuple(mu.shape), generator, mu.device))
            logits = model.decode(z)
            distortion += F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    return distortion / num_samples, rate


def log_importance_weights(
    model: nn.Module, x: torch.Tensor, num_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)`` for ``z_i ~ q(z|x)``.

    Burda et al. (2016), with a Bernoulli decoder, the prior N(0, I) and a diagonal
    Gaussian q. With ``num_samples = 1`` and the same draw this is the one-sample ELBO estimate.

    Args:
        model: a :class:`aelib.VariationalAutoencoder`.
        x: binary images ``(B, 784)`` or ``(B, 1, 28, 28)``.
        num_samples: ``k``, draws per image.
        generator: draws ``eps`` of shape ``(k, B, m)``.
    Returns:
        ``(k, B)`` log-weights in nats.
    """
    x = x.reshape(len(x), -1)
    _check_binary(x)
    mu, logvar = _encode(model, x)
    eps = draw("normal", (num_samples, *mu.shape), generator, mu.device)
    z = reparameterize(mu, logvar, eps)  # (k, B, m)
    logits = model.decode(z.reshape(-1, z.shape[-1])).reshape(num_samples, len(x), -1)
    log_px_z = -F.binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none"
    ).sum(-1)
    log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    log_qz = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)
    return log_px_z + log_pz - log_qz


def iwae(log_w: torch.Tensor) -> torch.Tensor:
    """The importance-weighted bound from log-weights: ``log (1/k) sum_i w_i``, by logsumexp.

    Burda et al. (2016). ``logsumexp`` subtracts the largest log-weight before
    exponentiating, so weights of ``exp(-100)`` neither underflow nor lose the others.

    Args:
        log_w: ``(k, B)``.
    Returns:
        ``(B,)``.
    """
    if log_w.dim() != 2:
        raise ValueError(f"expected log-weights of shape (k, B), got {tuple(log_w.shape)}")
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


@torch.no_grad()
def iwae_bound(
    model: nn.Module,
    x: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    max_rows: int = 20_000,
) -> torch.Tensor:
    """The importance-weighted bound ``L_k(x)`` of each image, in chunks of images.

    ``L_1`` is the ELBO (estimated with one draw); ``L_k`` rises with ``k`` towards ``log p(x)``
    (Burda et al. 2016, theorem 1).

    Args:
        model: a :class:`aelib.VariationalAutoencoder`.
        x: binary images ``(N, 784)`` or ``(N, 1, 28, 28)``.
        num_samples: ``k``.
        generator: draws the codes, chunk after chunk.
        max_rows: at most this many decoded images (``k`` times images) at once.
    Returns:
        ``(N,)`` bounds in nats.
    """
    x = x.reshape(len(x), -1)
    chunk = max(1, max_rows // num_samples)
    with eval_mode(model):
        parts = [
            iwae(log_importance_weights(model, x[i : i + chunk], num_samples, generator))
            for i in range(0, len(x), chunk)
        ]
    return torch.cat(parts)


class LinearGaussian:
    """A toy latent-variable model with everything in closed form.

    ``p(z) = N(0, I_m)``, ``p(x|z) = N(W z + b, s^2 I_d)``, so ``p(x) = N(b, W W^T + s^2 I)`` and
    the posterior is ``N(A^{-1} W^T (x - b) / s^2, A^{-1})`` with ``A = I + W^T W / s^2``
    (Bishop 2006, sec. 2.3.3 and 12.2, probabilistic PCA).

    Args:
        weight: ``W`` ``(d, m)``.
        bias: ``b`` ``(d,)``.
        noise_std: ``s``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, noise_std: float):
        if weight.dim() != 2 or bias.shape != weight.shape[:1]:
            raise ValueError(
                f"expected W (d, m) and b (d,), got {tuple(weight.shape)} and {tuple(bias.shape)}"
            )
        self.weight, self.bias, self.noise_std = weight, bias, noise_std

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)``. Args: x ``(B, d)``. Returns: ``(B,)``."""
        d = self.weight.shape[0]
        cov = self.weight @ self.weight.T + self.noise_std**2 * torch.eye(d, dtype=x.dtype)
        return torch.distributions.MultivariateNormal(self.bias, cov).log_prob(x)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(B, m)`` and covariance ``(m, m)`` of ``p(z|x)``."""
        m = self.weight.shape[1]
        precision = torch.eye(m, dtype=x.dtype) + self.weight.T @ self.weight / self.noise_std**2
        cov = torch.linalg.inv(precision)
        mean = (x - self.bias) @ self.weight @ cov / self.noise_std**2
        return mean, cov

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x, z)``. Args: x ``(B, d)``, z ``(..., B, m)``. Returns: ``(..., B)``."""
        d = x.shape[-1]
        residual = x - z @ self.weight.T - self.bias
        log_px_z = (
            -0.5 * residual.pow(2).sum(-1) / self.noise_std**2
            - d * math.log(self.noise_std)
            - 0.5 * d * LOG_2PI
        )
        return log_px_z - 0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def gradient_samples(
    f: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    num_samples: int,
    estimator: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Single-draw estimates of the gradient of ``E_{z ~ N(mu, diag e^logvar)}[f(z)]``.

    Reparameterisation (Kingma & Welling 2014, sec. 2.4): ``z = mu + sigma eps`` and the gradient
    of ``f(z)`` through it, ``(f'(z), f'(z) * sigma eps / 2)``. Score function (REINFORCE,
    Williams 1992): ``f(z) * grad log q(z)``, which is ``f(z) * (eps / sigma, (eps^2 - 1) / 2)``;
    it needs only the values of ``f``. Both are unbiased. Draws are the same for both estimators
    when the generator is seeded the same.

    Args:
        f: maps codes ``(S, B, m)`` to values ``(S, B)`` (differentiable, for the
            reparameterisation).
        mu: ``(B, m)``.
        logvar: ``(B, m)``.
        num_samples: ``S``, independent estimates.
        estimator: ``"reparameterization"`` or ``"score_function"``.
        generator: draws ``eps`` ``(S, B, m)``.
    Returns:
        ``(S, B, 2m)``: the gradient with respect to ``mu`` then ``logvar``, one row per draw.
    """
    if estimator not in ("reparameterization", "score_function"):
        raise ValueError(
            f"estimator must be 'reparameterization' or 'score_function', got {estimator!r}"
        )
    mu, logvar = mu.detach(), logvar.detach()
    sigma = torch.exp(0.5 * logvar)
    eps = draw("normal", (num_samples, *mu.shape), generator, mu.device)
    if estimator == "score_function":
        with torch.no_grad():
            value = f(mu + sigma * eps).unsqueeze(-1)
        return torch.cat([value * eps / sigma, value * (eps.pow(2) - 1) / 2], dim=-1)
    z = reparameterize(mu, logvar, eps).requires_grad_(True)
    with torch.enable_grad():
        (grad_z,) = torch.autograd.grad(f(z).sum(), z)
    return torch.cat([grad_z, grad_z * sigma * eps / 2], dim=-1)


def estimator_variance(
    f: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    logvar: torch.Tensor,
    num_samples: int,
    seed: int = 0,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Mean and variance of each gradient estimator, on the same parameters and the same draws.

    Args:
        f: as in :func:`gradient_samples`.
        mu: ``(B, m)``.
        logvar: ``(B, m)``.
        num_samples: single-draw estimates per estimator.
        seed: seeds the draws (the same ``eps`` for both estimators).
    Returns:
        ``{"reparameterization": (mean, variance), "score_function": (mean, variance)}``, each
        ``(B, 2m)``, the variance of one single-draw estimate (unbiased, over the draws).
    """
    out = {}
    for estimator in ("reparameterization", "score_function"):
        g = gradient_samples(f, mu, logvar, num_samples, estimator, generator(seed))
        out[estimator] = (g.mean(dim=0), g.var(dim=0))
    return out


def activity(mu: torch.Tensor) -> torch.Tensor:
    """Burda et al. (2016)'s activity statistic ``A_j = Cov_x(E_q[z_j])``, one per code dimension.

    Args:
        mu: the posterior means ``E_q[z|x]`` of ``N`` images, ``(N, m)``.
    Returns:
        ``(m,)``: the variance of each dimension's mean over the images (divided by ``N - 1``).
    """
    if mu.dim() != 2 or len(mu) < 2:
        raise ValueError(
            f"expected posterior means of at least 2 images (N, m), got {tuple(mu.shape)}"
        )
    return mu.var(dim=0)


def active_units(mu: torch.Tensor, threshold: float = 1e-2) -> int:
    """How many dimensions have activity above ``threshold`` (Burda et al. 2016 use ``10^-2``).

    Args:
        mu: posterior means ``(N, m)``.
        threshold: the activity a used dimension exceeds.
    Returns:
        The number of active units.
    """
    return int((activity(mu) > threshold).sum())


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(q(z_j|x) || N(0, 1))`` of each code dimension, averaged over images.

    Args:
        mu: ``(N, m)``.
        logvar: ``(N, m)``.
    Returns:
        ``(m,)`` in nats; their sum is :func:`aelib.gaussian_kl`.
    """
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(
            f"expected mu and logvar of the same shape (N, m), got {tuple(mu.shape)} "
            f"and {tuple(logvar.shape)}"
        )
    return gaussian_kl_terms(mu, logvar).mean(dim=0)


def free_bits_loss(output, x: torch.Tensor, free_bits: float, beta: float = 1.0) -> torch.Tensor:
    """The negative ELBO with "free bits": each dimension's KL counts at least ``free_bits`` nats.

    ``BCE + beta * sum_j max(free_bits, mean_batch KL_j)`` (Kingma et al. 2016, "Improved
    variational inference with inverse autoregressive flow", appendix): below ``free_bits``
    a dimension's KL has no gradient, so the optimiser gains nothing by shutting it off.

    Args:
        output: a :class:`aelib.VAEOutput` ``(logits, mu, logvar)``.
        x: targets ``(B, 784)`` or ``(B, 1, 28, 28)``.
        free_bits: ``lambda`` in nats per dimension, non-negative.
        beta: weight of the KL term, as in :func:`aelib.negative_elbo`.
    Returns:
        Scalar tensor: mean over the batch.
    """
    if free_bits < 0:
        raise ValueError(f"free_bits must be non-negative, got {free_bits!r}")
    logits, mu, logvar = output
    kl = kl_per_dimension(mu, logvar)
    return bce_loss(logits, x) + beta * torch.clamp(kl, min=free_bits).sum()


class KLWarmup:
    """KL warm-up: the KL weight grows linearly from 0 to ``beta`` over the first epochs.

    Sønderby et al. (2016), "Ladder variational autoencoders" (there to ``beta = 1``).

    Pass the object as ``loss_fn`` and its :meth:`on_epoch_end` as ``on_epoch_end`` to
    :func:`aelib.fit`. Epoch ``e`` (counted from 1) trains with the weight
    ``beta * min(1, (e - 1) / warmup_epochs)``; the test loss that ``fit`` reports after it uses
    the same weight.

    Args:
        warmup_epochs: epochs until the weight reaches ``beta``, positive.
        beta: the final weight.
    """

    def __init__(self, warmup_epochs: int, beta: float = 1.0):
        check_positive_int("warmup_epochs", warmup_epochs)
        self.warmup_epochs, self.final_beta = warmup_epochs, beta
        self.beta = self.beta_at(1)

    def beta_at(self, epoch: int) -> float:
        """The weight of the KL term during ``epoch`` (from 1)."""
        return self.final_beta * min(1.0, (epoch - 1) / self.warmup_epochs)

    def __call__(self, output, x: torch.Tensor) -> torch.Tensor:
        logits, mu, logvar = output
        return bce_loss(logits, x) + self.beta * gaussian_kl(mu, logvar)

    def on_epoch_end(self, epoch: int, history) -> None:
        """Set ``beta`` for the next epoch (``fit`` calls this after each epoch)."""
        self.beta = self.beta_at(epoch + 1)


@torch.no_grad()
def aggregate_log_density(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 512
) -> torch.Tensor:
    """``log q(z)`` of the aggregate posterior ``q(z) = (1/N) sum_n N(z; mu_n, diag sigma_n^2)``.

    Hoffman & Johnson (2016), "ELBO surgery"; the mixture is evaluated with ``logsumexp``.

    Args:
        z: codes ``(M, m)``.
        mu: posterior means of the ``N`` images ``(N, m)``.
        logvar: their log-variances ``(N, m)``.
        chunk: codes per block (memory ``chunk * N * m``).
    Returns:
        ``(M,)`` log-densities.
    """
    if z.dim() != 2 or z.shape[1] != mu.shape[1]:
        raise ValueError(f"expected codes (M, {mu.shape[1]}), got {tuple(z.shape)}")
    inv_var = torch.exp(-logvar)
    parts = []
    for i in range(0, len(z), chunk):
        diff = z[i : i + chunk, None, :] - mu[None]  # (c, N, m)
        log_n = -0.5 * (diff.pow(2) * inv_var + logvar + LOG_2PI).sum(-1)
        parts.append(torch.logsumexp(log_n, dim=1) - math.log(len(mu)))
    return torch.cat(parts)
