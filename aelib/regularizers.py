"""Regularizers and input corruptions for the autoencoder variants of chapter 04.

Sparse: Ng (2011), "Sparse autoencoder", CS294A lecture notes.
Denoising: Vincent et al. (2008), "Extracting and composing robust features with denoising
autoencoders".
Contractive: Rifai et al. (2011), "Contractive auto-encoders: explicit invariance during feature
extraction".

A regularizer is called as ``regularizer(model, x_in)`` and returns a scalar penalty (already
multiplied by its weight) that :func:`aelib.fit` adds to the reconstruction loss. A corruption is
called as ``corruption(x, generator)`` and returns a noisy copy of ``x`` in [0, 1]; the loss still
compares the reconstruction with the clean ``x``.
"""

from __future__ import annotations

import torch
from torch import nn

from .models import Standardize, flatten_images
from .utils import draw

# --- penalties on the code -------------------------------------------------------------------


def l1_activity(z: torch.Tensor) -> torch.Tensor:
    """Omega(z) = sum_j |z_j|, averaged over the batch. Args: z ``(B, m)``. Returns: scalar."""
    return z.abs().sum(dim=1).mean()


def kl_sparsity(z: torch.Tensor, rho: float) -> torch.Tensor:
    """sum_j KL(rho || rho_hat_j), with rho_hat_j the mean activation of unit j over the batch.

    Ng's sparse-autoencoder notes (2011), section "Sparsity"; book: eq. ``04-kl-sparsity``.

    Args:
        z: code activations in (0, 1) (a sigmoid code layer), ``(B, m)``.
        rho: the target mean activation, in (0, 1).
    Returns:
        Scalar: ``sum_j rho log(rho / rho_hat_j) + (1 - rho) log((1 - rho) / (1 - rho_hat_j))``.
    """
    if not 0 < rho < 1:
        raise ValueError(f"rho must lie in (0, 1), got {rho}")
    if z.min() < 0 or z.max() > 1:
        raise ValueError(
            "kl_sparsity needs activations in [0, 1] (a sigmoid code: "
            "Autoencoder(code_activation='sigmoid')); got values outside"
        )
    rho_hat = z.mean(dim=0).clamp(1e-6, 1 - 1e-6)
    return (
        rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    ).sum()


def _encoder_pieces(model: nn.Module) -> tuple[float, nn.Linear]:
    """The input scale and the single Linear layer of a one-layer sigmoid encoder."""
    if not isinstance(getattr(model, "encoder", None), nn.Sequential):
        raise ValueError(
            f"the closed-form contractive penalty needs an encoder built as nn.Sequential, "
            f"got {type(getattr(model, 'encoder', None)).__name__}; use method='autograd'"
        )
    layers = [m for m in model.encoder if not isinstance(m, (nn.Identity, Standardize))]
    if (
        len(layers) != 2
        or not isinstance(layers[0], nn.Linear)
        or not isinstance(layers[1], nn.Sigmoid)
    ):
        raise ValueError(
            "the closed-form contractive penalty needs a one-layer sigmoid encoder "
            "(Autoencoder(hidden_dim=[], code_activation='sigmoid')); use method='autograd'"
        )
    scale = next((m.std for m in model.encoder if isinstance(m, Standardize)), 1.0)
    return scale, layers[0]


def contractive_closed_form(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """||J_f(x)||_F^2 of a one-layer sigmoid encoder h = sigmoid(W x' + b), mean over the batch.

    With x' = (x - mean) / s, dh_j/dx_i = h_j (1 - h_j) W_ji / s (Rifai et al. 2011, eq. 6), so
    ``||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2 / s^2``.

    Args:
        model: an Autoencoder with ``hidden_dim=[]`` and ``code_activation="sigmoid"``.
        x: inputs ``(B, 784)`` or ``(B, 1, 28, 28)``.
    Returns:
        Scalar: the mean over the batch of the squared Frobenius norm of the encoder's Jacobian.
    """
    scale, linear = _encoder_pieces(model)
    h = model.encode(x)
    row_norms = linear.weight.pow(2).sum(dim=1)  # (m,): sum_i W_ji^2
    return ((h * (1 - h)).pow(2) * row_norms).sum(dim=1).mean() / scale**2


def jacobian_frobenius(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """||J_f(x)||_F^2 of ``model.encode`` by automatic differentiation, averaged over the batch.

    Works for any encoder; costs one Jacobian ``(m, d)`` per image (``torch.func.jacrev`` and
    ``vmap``) and stays differentiable, so it can be trained on.

    Args:
        model: any module with ``encode(x) -> z``.
        x: inputs ``(B, d)`` or ``(B, 1, H, W)``.
    Returns:
        Scalar: the mean over the batch of ``sum_{j,i} (dz_j / dx_i)^2``.
    """
    flat = flatten_images(x, model.input_dim)

    def encode_one(xi: torch.Tensor) -> torch.Tensor:
        return model.encode(xi.unsqueeze(0)).squeeze(0)

    jac = torch.func.vmap(torch.func.jacrev(encode_one))(flat)  # (B, m, d)
    return jac.pow(2).sum(dim=(1, 2)).mean()


class L1Activity:
    """lambda * sum_j |z_j|: pushes most code units to exactly zero."""

    def __init__(self, lam: float):
        self.lam = lam

    def __call__(self, model: nn.Module, x_in: torch.Tensor) -> torch.Tensor:
        """The penalty for the batch ``x_in`` ``(B, d)`` (the model's inputs): a scalar tensor."""
        return self.lam * l1_activity(model.encode(x_in))


class KLSparsity:
    """lambda * sum_j KL(rho || rho_hat_j): each sigmoid code unit on a share rho of the time."""

    def __init__(self, rho: float = 0.05, lam: float = 1.0):
        self.rho, self.lam = rho, lam

    def __call__(self, model: nn.Module, x_in: torch.Tensor) -> torch.Tensor:
        """The penalty for the batch ``x_in`` ``(B, d)`` (the model's inputs): a scalar tensor."""
        return self.lam * kl_sparsity(model.encode(x_in), self.rho)


class Contractive:
    """lambda * ||J_f(x)||_F^2, in closed form (one sigmoid layer) or by autograd (any encoder)."""

    def __init__(self, lam: float, method: str = "auto"):
        if method not in ("auto", "closed_form", "autograd"):
            raise ValueError(f"method must be 'auto', 'closed_form' or 'autograd', got {method!r}")
        self.lam, self.method = lam, method

    def __call__(self, model: nn.Module, x_in: torch.Tensor) -> torch.Tensor:
        """The penalty for the batch ``x_in`` ``(B, d)`` (the model's inputs): a scalar tensor."""
        method = self.method
        if method == "auto":
            try:
                _encoder_pieces(model)
                method = "closed_form"
            except ValueError:
                method = "autograd"
        penalty = contractive_closed_form if method == "closed_form" else jacobian_frobenius
        return self.lam * penalty(model, x_in)


# --- input corruptions q(x_tilde | x) ----------------------------------------------------------


def _check_rate(name: str, value: float) -> float:
    if not 0 <= value <= 1:  # NaN fails too
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


class GaussianNoise:
    """x_tilde = clip(x + std * eps, 0, 1), eps ~ N(0, I)."""

    def __init__(self, std: float):
        if not std >= 0:  # NaN fails too
            raise ValueError(f"std must be non-negative, got {std}")
        self.std = std

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of ``x`` ``(B, d)``, in [0, 1]; ``generator`` draws the noise."""
        noise = draw("normal", x.shape, generator, x.device, x.dtype)
        return (x + self.std * noise).clamp(0, 1)


class BlindGaussianNoise:
    """x_tilde = clip(x + sigma * eps, 0, 1) with sigma ~ U[0, max_std] drawn per image.

    Trained on every noise level at once, one network becomes a *blind* denoiser: it must judge the
    level from the image itself.
    """

    def __init__(self, max_std: float):
        if not max_std >= 0:
            raise ValueError(f"max_std must be non-negative, got {max_std}")
        self.max_std = max_std

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of ``x`` ``(B, d)``, in [0, 1]; ``generator`` draws the noise."""
        std = self.max_std * draw("uniform", (len(x), 1), generator, x.device, x.dtype)
        return (x + std * draw("normal", x.shape, generator, x.device, x.dtype)).clamp(0, 1)


class MaskingNoise:
    """Each pixel is set to 0 with probability ``p`` (Vincent et al. 2008)."""

    def __init__(self, p: float):
        self.p = _check_rate("p", p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of ``x`` ``(B, d)``, in [0, 1]; ``generator`` draws the noise."""
        keep = draw("uniform", x.shape, generator, x.device) >= self.p
        return x * keep


class SaltAndPepper:
    """Each pixel is, with probability ``p``, replaced by 0 or 1 (equally likely)."""

    def __init__(self, p: float):
        self.p = _check_rate("p", p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of ``x`` ``(B, d)``, in [0, 1]; ``generator`` draws the noise."""
        u = draw("uniform", x.shape, generator, x.device)
        hit = u < self.p
        salt = u < self.p / 2  # half of the hits become white, half black
        return torch.where(hit, salt.to(x.dtype), x)
