"""Masked autoencoders: hide patches of an image and reconstruct only what was hidden.

He, Chen, Xie, Li, Dollár & Girshick (2022), "Masked autoencoders are scalable vision learners",
https://arxiv.org/abs/2111.06377. A 28 x 28 digit is cut into square patches (7 x 7 patches of
4 x 4 pixels, or 4 x 4 patches of 7 x 7 pixels); a random share ``ratio`` of them is masked in each
image, and the loss counts the masked pixels only (the paper's sec. 3, "Reconstruction target").

With :func:`aelib.fit`: :class:`PatchMasking` is the ``corruption``; it marks hidden pixels with
the value :data:`MASKED` (-1, outside every image's range, like a [MASK] token);
:class:`MaskedAutoencoder` reads the mask from its input, shows its autoencoder the image with
the hidden pixels set to 0, and returns the mask beside the logits for
:func:`masked_bce_loss`. A fully connected encoder cannot drop patches as the paper's ViT does,
so the masked patches are zeros here.
"""

from __future__ import annotations

from typing import NamedTuple

import einops
import torch
from torch import nn
from torch.nn import functional as F

from .images import check_tensor
from .models import to_pixels
from .utils import draw

MASKED = -1.0


def patch_mask(
    n: int,
    ratio: float,
    patch_size: int = 4,
    side: int = 28,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Masks that hide ``round(ratio * P)`` of ``P = (side / patch_size)^2`` patches of each image.

    Which patches: the smallest of ``P`` uniform numbers per image (MAE's random shuffle).

    Args:
        n: number of images.
        ratio: share of patches hidden, in [0, 1].
        patch_size: side of a square patch; must divide ``side``.
        side: image side in pixels.
        generator: draws the patches (the global generator when None).
        device: where the mask goes.
    Returns:
        Boolean ``(n, side * side)``, True where a pixel is hidden.
    """
    if not 0 <= ratio <= 1:
        raise ValueError(f"ratio must lie in [0, 1], got {ratio}")
    if side % patch_size:
        raise ValueError(f"patch_size {patch_size} does not divide the image side {side}")
    grid = side // patch_size
    num_patches = grid * grid
    num_masked = round(ratio * num_patches)
    order = draw("uniform", (n, num_patches), generator, device).argsort(dim=1)
    hidden = torch.zeros(n, num_patches, dtype=torch.bool, device=device)
    hidden.scatter_(1, order[:, :num_masked], True)
    # patch (row i, column j) -> its patch_size x patch_size pixels, rows of the image in order
    return einops.repeat(
        hidden, "n (i j) -> n (i h j w)", i=grid, j=grid, h=patch_size, w=patch_size
    )


class PatchMasking:
    """Corruption for :func:`aelib.fit`: hide a share ``ratio`` of the patches (as ``MASKED``)."""

    def __init__(self, ratio: float, patch_size: int = 4):
        if not 0 <= ratio <= 1:
            raise ValueError(f"ratio must lie in [0, 1], got {ratio}")
        self.ratio, self.patch_size = ratio, patch_size

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Args: x ``(B, 784)``. Returns: ``(B, 784)``, hidden pixels set to ``MASKED``."""
        flat = x.reshape(len(x), -1)
        side = int(flat.shape[1] ** 0.5)
        hidden = patch_mask(len(x), self.ratio, self.patch_size, side, generator, x.device)
        return flat.masked_fill(hidden, MASKED)


class MaskedOutput(NamedTuple):
    """What :class:`MaskedAutoencoder` returns: logits ``(B, d)``, mask ``(B, d)`` (1 = hidden)."""

    logits: torch.Tensor
    mask: torch.Tensor


class MaskedAutoencoder(nn.Module):
    """Wraps an autoencoder: hidden pixels (value ``MASKED``) become 0, the mask is returned too.

    Args:
        autoencoder: any model with ``encode``, ``decode`` and ``input_dim`` (e.g.
            :class:`aelib.Autoencoder`).
    """

    def __init__(self, autoencoder: nn.Module):
        super().__init__()
        self.autoencoder = autoencoder
        self.input_dim = autoencoder.input_dim
        self.latent_dim = getattr(autoencoder, "latent_dim", None)
        self.output = getattr(autoencoder, "output", "logits")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code of images ``(B, 784)``, hidden pixels read as 0. Returns: ``(B, m)``."""
        return self.autoencoder.encode(check_tensor(x, "x").clamp(min=0))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 784)`` of codes ``(B, m)``."""
        return self.autoencoder.decode(z)

    def to_pixels(self, output: torch.Tensor) -> torch.Tensor:
        """Pixels from the wrapped autoencoder's decoder output (its own ``to_pixels``)."""
        return to_pixels(self.autoencoder, output)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels of the whole image, hidden pixels filled in, in the shape of ``x``."""
        return self.to_pixels(self.decode(self.encode(x))).reshape(x.shape)

    def forward(self, x: torch.Tensor) -> MaskedOutput:
        """Args: x ``(B, 784)``, hidden pixels ``MASKED``. Returns: :class:`MaskedOutput`."""
        mask = (x == MASKED).to(x.dtype).reshape(len(x), -1)
        return MaskedOutput(self.decode(self.encode(x)), mask)


def masked_bce_loss(output: MaskedOutput, x: torch.Tensor) -> torch.Tensor:
    """BCE summed over the hidden pixels only, averaged over images (He et al. 2022, sec. 3).

    Args:
        output: a :class:`MaskedOutput` ``(logits (B, d), mask (B, d))``.
        x: the clean targets in [0, 1], ``(B, d)`` or ``(B, 1, 28, 28)``.
    Returns:
        Scalar tensor.
    """
    if not isinstance(output, MaskedOutput):
        raise ValueError(
            f"masked_bce_loss needs a MaskedAutoencoder's output (logits, mask), "
            f"got {type(output).__name__}"
        )
    target = x.reshape(len(x), -1)
    if output.logits.shape != target.shape or output.mask.shape != target.shape:
        raise ValueError(
            f"expected logits and mask of shape {tuple(target.shape)}, got "
            f"{tuple(output.logits.shape)} and {tuple(output.mask.shape)}"
        )
    bce = F.binary_cross_entropy_with_logits(output.logits, target, reduction="none")
    return (bce * output.mask).sum() / len(target)
