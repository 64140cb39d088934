"""Reconstruction losses, reported per image as the seed reported them.

The seed's figure of merit (its ``loss_function``) is the binary cross-entropy summed over the
784 pixels of an image and averaged over images:

    L(x, x_hat) = - sum_i [ x_i log x_hat_i + (1 - x_i) log(1 - x_hat_i) ],   x_hat = sigmoid(a)

Written in terms of the logits ``a`` it is ``sum_i softplus(a_i) - x_i a_i``, which never takes
the log of 0 (book: eq. ``bce-logits``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _check_pair(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if isinstance(logits, tuple):  # a VAEOutput (logits, mu, logvar)
        raise ValueError(
            "got a variational autoencoder's output (logits, mu, logvar), not logits: "
            "train and evaluate a VariationalAutoencoder with loss_fn=aelib.negative_elbo"
        )
    if not isinstance(logits, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise TypeError(
            f"expected tensors (output, x), got {type(logits).__name__} and {type(x).__name__}"
        )
    if len(x) == 0:
        raise ValueError(f"x is an empty batch {tuple(x.shape)}: a mean over no images is 0/0")
    target = x.reshape(x.shape[0], -1)
    if logits.dim() != 2 or logits.shape != target.shape:
        raise ValueError(
            f"expected logits of shape {tuple(target.shape)} to match the flattened "
            f"targets, got {tuple(logits.shape)}"
        )
    return target


def bce_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over pixels, averaged over images, computed from logits.

    Args:
        logits: decoder outputs before the sigmoid, ``(B, 784)``.
        x: targets in [0, 1], ``(B, 784)`` or ``(B, 1, 28, 28)``.
    Returns:
        Scalar tensor: mean over the batch of the per-image summed BCE.
    """
    target = _check_pair(logits, x)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / target.shape[0]


def mse_loss(output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over pixels, averaged over images (the Gaussian likelihood's loss).

    Args:
        output: reconstructions ``(B, 784)`` (a linear output layer, no sigmoid).
        x: targets ``(B, 784)`` or ``(B, 1, 28, 28)``.
    Returns:
        Scalar tensor: mean over the batch of ``||x - output||^2``.
    """
    target = _check_pair(output, x)
    return F.mse_loss(output, target, reduction="sum") / target.shape[0]


def gaussian_kl_terms(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu_j, exp(logvar_j)) || N(0, 1))`` of every code coordinate, in closed form.

    ``KL_j = -1/2 (1 + logvar_j - mu_j^2 - exp(logvar_j))`` (Kingma & Welling 2014, appendix B):
    the one formula behind :func:`gaussian_kl`, :func:`aelib.vae.elbo_terms`' rate and
    :func:`aelib.vae.kl_per_dimension`.

    Args:
        mu: means ``(B, m)``.
        logvar: log-variances ``(B, m)``.
    Returns:
        ``(B, m)`` in nats.
    """
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(
            "expected mu and logvar of the same shape (B, m), "
            f"got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form: summed over z, mean over images.

    ``KL = -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))``
    (Kingma & Welling 2014, appendix B).

    Args:
        mu: means ``(B, m)``.
        logvar: log-variances ``(B, m)``.
    Returns:
        Scalar tensor.
    """
    terms = gaussian_kl_terms(mu, logvar)
    if len(terms) == 0:
        raise ValueError("mu is an empty batch (0, m): a mean over no images is 0/0")
    return terms.sum(dim=1).mean()


def negative_elbo(output, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """The VAE's loss: reconstruction BCE plus ``beta`` times the KL term, per image.

    ``-ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z))`` (Kingma & Welling 2014, eq. 10; book: eq.
    ``04-elbo``), the expectation estimated with the one sample the forward pass drew (``beta = 1``
    is the ELBO; other values give the beta-VAE objective).

    Args:
        output: the :class:`aelib.models.VAEOutput` ``(logits, mu, logvar)`` of a forward pass.
        x: targets in [0, 1], ``(B, 784)`` or ``(B, 1, 28, 28)``.
        beta: weight of the KL term.
    Returns:
        Scalar tensor: mean over the batch.
    """
    if not (isinstance(output, tuple) and len(output) == 3):
        raise ValueError(
            "negative_elbo needs a VariationalAutoencoder's output (logits, mu, logvar), "
            f"got {type(output).__name__}; for a plain Autoencoder use aelib.bce_loss"
        )
    logits, mu, logvar = output
    return bce_loss(logits, x) + beta * gaussian_kl(mu, logvar)
