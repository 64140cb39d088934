"""TopK sparse autoencoders: a dictionary of features for a network's activations.

Gao, Dupré la Tour, Tillman, Goh, Troll, Radford, Sutskever, Leike & Wu (2024), "Scaling and
evaluating sparse autoencoders", https://arxiv.org/abs/2406.04093, eq. 2-3:

    z = TopK(W_enc (h - b_pre) + b_enc),        h_hat = W_dec z + b_pre,

(the paper's eq. 3 has no ``b_enc``; it is kept here from the ReLU autoencoder of its eq. 1).
TopK keeps the ``k`` largest pre-activations (then a ReLU) and zeroes the rest, so every
input uses at most ``k`` latents (its L0) without an L1 penalty. The decoder's columns have unit
norm (here by construction in :meth:`TopKSparseAutoencoder.decoder_weight`) and the encoder starts
as the decoder's transpose (sec. 2.4). Earlier work trained an L1 penalty instead (Bricken et al.
2023, "Towards monosemanticity"; Cunningham et al. 2023, https://arxiv.org/abs/2309.08600).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .images import check_tensor
from .utils import generator


def topk_activation(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest entries of each row (through a ReLU), set the others to 0.

    Args:
        pre: pre-activations ``(B, n)``.
        k: latents kept per row, ``1 <= k <= n``.
    Returns:
        ``(B, n)`` with at most ``k`` non-zeros per row.
    """
    if not 1 <= k <= pre.shape[-1]:
        raise ValueError(f"k must lie in [1, {pre.shape[-1]}], got {k}")
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, F.relu(values))


class TopKSparseAutoencoder(nn.Module):
    """``h -> z = TopK(W_enc (h - b_pre) + b_enc) -> h_hat = W_dec z + b_pre`` (Gao et al. 2024).

    Args:
        input_dim: size of the activations ``h`` (256 for a ``DigitClassifier``).
        num_latents: dictionary size ``n``.
        k: active latents per input.
        seed: seeds the initial dictionary.
    """

    def __init__(self, input_dim: int = 256, num_latents: int = 1024, k: int = 16, seed: int = 0):
        super().__init__()
        if not 1 <= k <= num_latents:
            raise ValueError(f"k must lie in [1, num_latents={num_latents}], got {k}")
        self.input_dim, self.num_latents, self.k = input_dim, num_latents, k
        self.latent_dim = num_latents
        w = torch.randn(input_dim, num_latents, generator=generator(seed))
        w = w / w.norm(dim=0, keepdim=True)
        self.w_dec = nn.Parameter(w)  # (d, n): one unit column per latent
        self.w_enc = nn.Parameter(w.T.clone())  # (n, d): starts as W_dec^T
        self.b_enc = nn.Parameter(torch.zeros(num_latents))
        self.b_pre = nn.Parameter(torch.zeros(input_dim))

    def decoder_weight(self) -> torch.Tensor:
        """``W_dec`` with unit-norm columns ``(d, n)``: column ``j`` is latent ``j``'s direction"""
        return self.w_dec / self.w_dec.norm(dim=0, keepdim=True)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Sparse codes. Args: h ``(B, d)``. Returns: z ``(B, n)``, at most ``k`` non-zeros."""
        h = check_tensor(h, "h")
        if h.dim() != 2 or h.shape[1] != self.input_dim:
            raise ValueError(
                f"h must be activations of shape (B, {self.input_dim}), got {tuple(h.shape)}"
            )
        return topk_activation((h - self.b_pre) @ self.w_enc.T + self.b_enc, self.k)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructed activations. Args: z ``(B, n)``. Returns: ``(B, d)``."""
        return z @ self.decoder_weight().T + self.b_pre

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h ``(B, d)``. Returns: h_hat ``(B, d)``."""
        return self.decode(self.encode(h))

    output = "values"

    def to_pixels(self, output: torch.Tensor) -> torch.Tensor:
        """The reconstructed activations themselves (the decoder is linear)."""
        return output

    @torch.no_grad()
    def reconstruct(self, h: torch.Tensor) -> torch.Tensor:
        """The reconstructed activations ``h_hat`` ``(B, d)``, without autograd."""
        return self(h)


def l0(z: torch.Tensor) -> float:
    """Mean number of non-zero latents per input. Args: z ``(B, n)``."""
    return (z != 0).float().sum(1).mean().item()


def fraction_of_variance_explained(h_hat: torch.Tensor, h: torch.Tensor) -> float:
    """``1 - sum ||h - h_hat||^2 / sum ||h - mean(h)||^2`` over a batch ``(B, d)``.

    Prediction ``h_hat`` first, then the activations ``h`` it approximates.
    """
    if h.shape != h_hat.shape:
        raise ValueError(
            f"expected two batches of the same shape, got {tuple(h.shape)} and "
            f"{tuple(h_hat.shape)}"
        )
    return 1 - ((h - h_hat).pow(2).sum() / (h - h.mean(0)).pow(2).sum()).item()


def dead_latents(z: torch.Tensor) -> int:
    """How many latents are zero on every input of ``z`` ``(B, n)``."""
    return int(((z != 0).sum(0) == 0).sum())


def class_purity(
    z: torch.Tensor, y: torch.Tensor, top: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each latent, the share of its ``top`` most activating inputs that belong to one class.

    Args:
        z: activations ``(B, n)``.
        y: labels ``(B,)``, integers ``0 .. C-1``.
        top: how many of the most activating inputs to look at.
    Returns:
        ``(purity, majority)``: ``(n,)`` floats in (0, 1] and the majority class of each latent.
        Only inputs where the latent is non-zero count; a latent active on fewer than ``top``
        inputs gets purity 0.
    """
    values, idx = z.topk(top, dim=0)  # (top, n)
    labels = y[idx]  # (top, n)
    counts = F.one_hot(labels, int(y.max()) + 1).sum(0)  # (n, C)
    best, majority = counts.max(1)
    enough = (values > 0).all(0)
    return torch.where(enough, best.float() / top, torch.zeros(())), majority
