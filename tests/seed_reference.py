"""The seed script's own loss, verbatim, the test-only reference for :func:`aelib.bce_loss`."""

import torch
from torch.nn import functional as F


def seed_loss(recon_x: torch.Tensor, x_normalized: torch.Tensor) -> torch.Tensor:
    """The seed script's ``loss_function``, verbatim: BCE summed over the batch and pixels.

    Args:
        recon_x: sigmoid outputs ``(B, 784)``.
        x_normalized: inputs normalised to [-1, 1] by ``Normalize((0.5,), (0.5,))``.
    Returns:
        Scalar tensor: the **sum** over the batch (the seed divides by the data set size later).
    """
    x = (x_normalized.view(-1, 784) + 1) / 2
    return F.binary_cross_entropy(recon_x, x, reduction="sum")
