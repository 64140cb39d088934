"""A two-dimensional Gaussian mixture whose density and score are known in closed form.

The toy density of chapter 9's score-matching section. For isotropic components,
``p(x) = sum_k pi_k N(x; mu_k, s_k^2 I)`` and its score is

    grad log p(x) = sum_k w_k(x) (mu_k - x) / s_k^2,   w_k(x) = pi_k N(x; mu_k, s_k^2 I) / p(x),

and adding Gaussian noise of standard deviation ``sigma`` gives the mixture with variances
``s_k^2 + sigma^2`` (:meth:`GaussianMixture.smoothed`). The optimal denoiser of that noise is
``x + sigma^2 grad log p_sigma(x)`` (Tweedie's formula; Vincent 2011, "A connection between score
matching and denoising autoencoders", https://doi.org/10.1162/NECO_a_00142).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianMixture:
    """``sum_k pi_k N(mu_k, s_k^2 I)`` in ``d`` dimensions.

    Args:
        means: component means ``(K, d)``.
        stds: component standard deviations ``(K,)``, positive.
        weights: mixture weights ``(K,)``, positive, summing to 1.
    """

    means: torch.Tensor
    stds: torch.Tensor
    weights: torch.Tensor

    def __post_init__(self):
        k = self.means.shape[0] if self.means.dim() == 2 else -1
        if k < 1 or self.stds.shape != (k,) or self.weights.shape != (k,):
            raise ValueError(
                f"expected means (K, d), stds (K,) and weights (K,), got "
                f"{tuple(self.means.shape)}, {tuple(self.stds.shape)} and "
                f"{tuple(self.weights.shape)}"
            )
        if not (self.stds > 0).all() or not (self.weights > 0).all():
            raise ValueError("stds and weights must be positive")
        if abs(self.weights.sum().item() - 1) > 1e-5:
            raise ValueError(f"weights must sum to 1, got {self.weights.sum().item():.6f}")

    def _log_components(self, x: torch.Tensor) -> torch.Tensor:
        """``log pi_k + log N(x; mu_k, s_k^2 I)`` for every point and component, ``(N, K)``."""
        if x.dim() != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(f"expected points (N, {self.means.shape[1]}), got {tuple(x.shape)}")
        d = x.shape[1]
        var = self.stds.to(x) ** 2
        sq = (x[:, None, :] - self.means.to(x)[None]).pow(2).sum(-1)  # (N, K)
        return self.weights.to(x).log() - 0.5 * sq / var - 0.5 * d * torch.log(2 * math.pi * var)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x). Args: x ``(N, d)``. Returns: ``(N,)``."""
        return torch.logsumexp(self._log_components(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The score ``grad_x log p(x)`` in closed form (module docstring). Args: x ``(N, d)``.
        Returns: ``(N, d)``."""
        resp = torch.softmax(self._log_components(x), dim=1)  # w_k(x), (N, K)
        pull = (self.means.to(x)[None] - x[:, None, :]) / self.stds.to(x)[None, :, None] ** 2
        return (resp[:, :, None] * pull).sum(1)

    def smoothed(self, sigma: float) -> GaussianMixture:
        """The density of ``x + sigma * eps``, ``eps ~ N(0, I)``: variances grow by sigma^2."""
        if sigma < 0:
            raise ValueError(f"sigma must be non-negative, got {sigma}")
        return GaussianMixture(self.means, torch.sqrt(self.stds**2 + sigma**2), self.weights)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points drawn from the mixture (on the CPU). Returns: ``(n, d)``."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator)
        return self.means[k] + self.stds[k, None] * eps


def three_blobs() -> GaussianMixture:
    """The chapter's density: three round blobs inside the unit square (``fit`` takes it)."""
    return GaussianMixture(
        means=torch.tensor([[0.3, 0.3], [0.7, 0.3], [0.5, 0.68]]),
        stds=torch.tensor([0.07, 0.07, 0.07]),
        weights=torch.tensor([0.3, 0.3, 0.4]),
    )
