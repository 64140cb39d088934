"""Inference with a trained autoencoder: images to codes, codes to images, walks and denoising.

These helpers work on whole batches in eval mode and return CPU tensors a reader can plot: codes
``(B, m)`` and pixel probabilities shaped like images ``(B, 28, 28)``. They are not the models'
own ``encode``/``decode``: ``model.decode`` returns logits on the model's device, while
:func:`codes_to_images` applies the sigmoid and moves the result to the CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import to_float
from .regularizers import GaussianNoise
from .utils import eval_mode, generator


@torch.no_grad()
def codes_to_images(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Pixel probabilities of codes, in eval mode. Args: z ``(B, m)``. Returns: ``(B, 28, 28)``."""
    with eval_mode(model):
        x_hat = torch.sigmoid(model.decode(z.to(next(model.parameters()).device))).cpu()
    return x_hat.reshape(len(z), 28, 28)


@torch.no_grad()
def images_to_codes(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Codes of images, in eval mode, on the CPU.

    Args:
        x: images ``(B, 784)`` or ``(B, 1, 28, 28)``, uint8 or float in [0, 1].
    Returns:
        ``(B, m)``.
    """
    with eval_mode(model):
        return model.encode(to_float(x).to(next(model.parameters()).device)).cpu()


def interpolate(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, t) -> torch.Tensor:
    """Decodings along the segment ``z(t) = (1 - t) f(x_a) + t f(x_b)`` (book: eq. ``06-interp``).

    Args:
        model: has ``encode`` and ``decode``.
        x_a: one image ``(1, 784)`` or ``(1, 1, 28, 28)`` (uint8 or float), or ``(784,)``.
        x_b: another, the same way.
        t: positions in [0, 1]: a float or a sequence ``(T,)``.
    Returns:
        ``(T, 28, 28)`` pixel probabilities.
    """
    x_a, x_b = _one_image(x_a, "x_a"), _one_image(x_b, "x_b")
    return decode_segment(model, *_codes(model, x_a, x_b), t)[:, 0]


def interpolate_pairs(model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, t) -> torch.Tensor:
    """:func:`interpolate` for ``B`` pairs at once: ``x_a[i]`` to ``x_b[i]``.

    Args:
        model: has ``encode`` and ``decode``.
        x_a: start images ``(B, 784)`` or ``(B, 1, 28, 28)``, uint8 or float.
        x_b: end images, the same shape.
        t: positions in [0, 1]: a float or a sequence ``(T,)``.
    Returns:
        ``(T, B, 28, 28)`` pixel probabilities.
    """
    if x_a.shape != x_b.shape:
        raise ValueError(
            "x_a and x_b must pair up image by image, "
            f"got {tuple(x_a.shape)} and {tuple(x_b.shape)}"
        )
    return decode_segment(model, *_codes(model, x_a, x_b), t)


def _codes(
    model: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(x_a)`` and ``f(x_b)``, each ``(B, m)``, from one encoder pass."""
    z = images_to_codes(model, torch.cat([to_float(x_a), to_float(x_b)]))
    return z[: len(x_a)], z[len(x_a) :]


def decode_segment(model: nn.Module, z_a: torch.Tensor, z_b: torch.Tensor, t) -> torch.Tensor:
    """Decodings of ``(1 - t) z_a + t z_b`` for positions ``t`` in [0, 1]: ``(T, B, 28, 28)``."""
    t = torch.as_tensor(t, dtype=z_a.dtype).reshape(-1, 1, 1)
    if ((t < 0) | (t > 1)).any():
        raise ValueError(f"interpolation positions must lie in [0, 1], got {t.flatten().tolist()}")
    codes = (1 - t) * z_a + t * z_b
    return codes_to_images(model, codes.flatten(0, 1)).reshape(len(t), len(z_a), 28, 28)


def denoise(
    model: nn.Module, x: torch.Tensor, std: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt ``x`` with :class:`aelib.regularizers.GaussianNoise` and reconstruct it.

    The noise ``eps`` comes from a generator seeded with ``seed``, so every ``std`` scales the same
    ``eps``: moving a slider changes the noise level, not the noise pattern.

    Args:
        model: a (denoising) autoencoder with ``reconstruct``.
        x: clean images ``(B, 784)`` or ``(B, 1, 28, 28)``, uint8 or float in [0, 1].
        std: the noise level sigma.
        seed: seeds the noise.
    Returns:
        ``(noisy, denoised)``, each ``(B, 28, 28)``.
    """
    clean = to_float(x)
    noisy = GaussianNoise(std)(clean, generator(seed))
    with eval_mode(model):  # reconstruct runs without autograd already
        denoised = model.reconstruct(noisy.to(next(model.parameters()).device)).cpu()
    return noisy.reshape(-1, 28, 28), denoised.reshape(-1, 28, 28)


def _one_image(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.numel() != 784:
        raise ValueError(
            f"{name} must be one 28x28 image ((784,), (1, 784) or (1, 1, 28, 28)), "
            f"got {tuple(x.shape)}"
        )
    return x.reshape(1, 784)
