"""Vector quantisation: a discrete code for an autoencoder.

van den Oord, Vinyals & Kavukcuoglu (2017), "Neural discrete representation learning",
https://arxiv.org/abs/1711.00937. Each of ``S`` slots of the encoder's output ``z_e`` is replaced
by its nearest codebook vector ``e_k``; the decoder sees ``z_q = z_e + sg(e_k - z_e)`` (the
straight-through estimator: the value of ``e_k``, the gradient of ``z_e``), and the loss adds

    || sg(z_e) - e_k ||^2  (codebook)  +  beta || z_e - sg(e_k) ||^2  (commitment)     (eq. 3)

An image costs ``S log2 K`` bits. Codes that no input chooses are "dead"; :func:`reinit_dead_codes`
moves them onto encoder outputs: a coarser, once-per-epoch variant of the random restarts of
Jukebox (Dhariwal et al. 2020), which reset at every step each code whose running mean usage
falls below a threshold to a random encoder output of the current batch.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .losses import bce_loss
from .models import Standardize, _dtype, flatten_images


class VQOutput(NamedTuple):
    """What :class:`VQAutoencoder` returns: logits ``(B, d)``, ``z_e`` and ``z_q`` ``(B, S, D)``
    (``z_q``: the chosen codebook vectors, through which the codebook gets its gradient)."""

    logits: torch.Tensor
    z_e: torch.Tensor
    z_q: torch.Tensor


def nearest_code(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook vector (squared Euclidean distance) of every slot.

    Args:
        z_e: encoder outputs ``(..., D)``.
        codebook: ``(K, D)``.
    Returns:
        Indices ``(...)`` in ``0 .. K-1`` (long).
    """
    if z_e.shape[-1] != codebook.shape[-1]:
        raise ValueError(
            f"expected vectors of size {codebook.shape[-1]} (the codebook's), "
            f"got {tuple(z_e.shape)}"
        )
    flat = z_e.reshape(-1, z_e.shape[-1])
    dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.pow(2).sum(1)[None]
    return dist.argmin(1).reshape(z_e.shape[:-1])


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """``z_e + sg(z_q - z_e)``: forward value ``z_q``, gradient passed to ``z_e`` unchanged."""
    return z_e + (z_q - z_e).detach()


def vq_losses(z_e: torch.Tensor, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The codebook and commitment terms of eq. 3, summed over slots and dimensions.

    Args:
        z_e: encoder outputs ``(B, S, D)``.
        z_q: the chosen codebook vectors ``(B, S, D)``.
    Returns:
        ``(codebook, commitment)``: ``||sg(z_e) - z_q||^2`` (moves only the codebook) and
        ``||z_e - sg(z_q)||^2`` (moves only the encoder), scalars.
    """
    codebook = (z_e.detach() - z_q).pow(2).flatten(1).sum(1).mean()
    commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(1).mean()
    return codebook, commitment


def vq_loss(output: VQOutput, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """The VQ-VAE's loss: reconstruction BCE + codebook term + ``beta`` x commitment term (eq. 3).

    Args:
        output: a :class:`VQOutput`.
        x: targets in [0, 1], ``(B, 784)`` or ``(B, 1, 28, 28)``.
        beta: weight of the commitment term. The paper uses 0.25 and reports results unchanged for
            0.1 to 2; with the book's BCE summed over 784 pixels, 0.25 leaves the encoder's outputs
            farther from their codes and the distortion higher (chapter 9, Exercise 4), so the
            default here is 1.
    Returns:
        Scalar: mean over the batch.
    """
    if not isinstance(output, VQOutput):
        raise ValueError(
            f"vq_loss needs a VQAutoencoder's output (logits, z_e, z_q), "
            f"got {type(output).__name__}"
        )
    codebook, commitment = vq_losses(output.z_e, output.z_q)
    return bce_loss(output.logits, x) + codebook + beta * commitment


class VQAutoencoder(nn.Module):
    """784-400-(S x D) encoder, a shared codebook of ``K`` vectors, (S x D)-400-784 decoder.

    Args:
        num_slots: ``S``, code vectors per image.
        num_codes: ``K``, codebook size.
        code_dim: ``D``, size of each code vector.
        input_dim: pixels per image.
        hidden_dim: width of the hidden layers.
        init_scale: the codebook starts uniform in ``[-init_scale, init_scale]``.
    """

    def __init__(
        self,
        num_slots: int = 8,
        num_codes: int = 16,
        code_dim: int = 4,
        input_dim: int = 784,
        hidden_dim: int = 400,
        init_scale: float = 1.0,
    ):
        super().__init__()
        self.input_dim, self.num_slots, self.num_codes, self.code_dim = (
            input_dim,
            num_slots,
            num_codes,
            code_dim,
        )
        self.encoder = nn.Sequential(
            Standardize(),
            nn.Linear(input_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, num_slots * code_dim),
        )
        self.codebook = nn.Parameter(
            torch.empty(num_codes, code_dim).uniform_(-init_scale, init_scale)
        )
        self.decoder = nn.Sequential(
            nn.Linear(num_slots * code_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, input_dim),
        )

    output = "logits"

    @property
    def bits_per_image(self) -> float:
        """``S log2 K``: the size of one image's code."""
        return self.num_slots * math.log2(self.num_codes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's continuous outputs ``z_e`` ``(B, S, D)`` of images ``(B, 784)``."""
        z_e = self.encoder(flatten_images(x, self.input_dim, _dtype(self)))
        return z_e.reshape(len(z_e), self.num_slots, self.code_dim)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """The code of each image: codebook indices ``(B, S)``."""
        return nearest_code(self.encode(x), self.codebook)

    def decode_indices(self, k: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 784)`` of the images whose codes are ``k`` ``(B, S)``."""
        return self.decoder(self.codebook[k].flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 784)`` of codes ``z``: each slot snapped to its nearest codebook vector.

        The decoder only ever sees codebook vectors, so ``decode(encode(x))`` is the quantised
        reconstruction that :meth:`reconstruct` shows.

        Args:
            z: ``(B, S, D)`` (what :meth:`encode` returns) or ``(B, S * D)``.
        Returns:
            ``(B, 784)``.
        """
        if z.dim() not in (2, 3) or z[0].numel() != self.num_slots * self.code_dim:
            raise ValueError(
                f"expected codes of shape (B, {self.num_slots}, {self.code_dim}) or "
                f"(B, {self.num_slots * self.code_dim}), got {tuple(z.shape)}"
            )
        z = z.reshape(len(z), self.num_slots, self.code_dim)
        return self.decode_indices(nearest_code(z, self.codebook))

    def to_pixels(self, output: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities ``sigmoid(output)`` of the decoder's logits."""
        return torch.sigmoid(output)

    def forward(self, x: torch.Tensor) -> VQOutput:
        """Args: x ``(B, 784)``. Returns: :class:`VQOutput` ``(logits, z_e, z_q)``."""
        z_e = self.encode(x)
        z_q = self.codebook[nearest_code(z_e, self.codebook)]
        return VQOutput(self.decoder(straight_through(z_e, z_q).flatten(1)), z_e, z_q)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities of the quantised reconstruction, in the shape of ``x``."""
        return self.to_pixels(self.decode_indices(self.quantize(x))).reshape(x.shape)


def code_usage(k: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How often each code is chosen. Args: k indices (any shape). Returns: ``(K,)`` shares."""
    counts = torch.bincount(k.flatten(), minlength=num_codes).float()
    return counts / counts.sum()


def perplexity(k: torch.Tensor, num_codes: int) -> float:
    """``exp(H)`` of the code usage: the number of equally used codes it is worth (1 .. K)."""
    p = code_usage(k, num_codes)
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum().item())


def dead_codes(k: torch.Tensor, num_codes: int) -> int:
    """How many codes no slot of the batch chose."""
    return int((code_usage(k, num_codes) == 0).sum())


@torch.no_grad()
def reinit_dead_codes(model: VQAutoencoder, x: torch.Tensor, generator: torch.Generator) -> int:
    """Move every unused codebook vector onto a randomly chosen encoder output of ``x``.

    Called once per epoch, this is a coarser variant of Jukebox's random restarts (see the module
    docstring), which act at every step on codes whose running usage is low.

    Args:
        model: a :class:`VQAutoencoder`.
        x: images ``(N, 784)`` whose encodings decide which codes are used.
        generator: a CPU generator that picks the encoder outputs.
    Returns:
        The number of codes moved.
    """
    z_e = model.encode(x.to(model.codebook.device)).reshape(-1, model.code_dim)
    dead = code_usage(nearest_code(z_e, model.codebook), model.num_codes) == 0
    n = int(dead.sum())
    if n:
        pick = torch.randperm(len(z_e), generator=generator)[:n].to(z_e.device)
        model.codebook[dead] = z_e[pick]
    return n


__all__ = [
    "VQAutoencoder",
    "VQOutput",
    "code_usage",
    "dead_codes",
    "nearest_code",
    "perplexity",
    "reinit_dead_codes",
    "straight_through",
    "vq_loss",
    "vq_losses",
]
