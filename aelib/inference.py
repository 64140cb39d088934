"""Inference with a trained autoencoder: images to codes, codes to images, walks and denoising.

These helpers work on whole batches in eval mode and return CPU tensors a reader can plot: codes
``(B, m)`` and pixels shaped like images ``(B, 28, 28)``. They are not the models' own
``encode``/``decode``: ``model.decode`` returns the decoder's output (logits, for most models) on
the model's device, while :func:`codes_to_images` turns it into pixels with the model's own
``to_pixels`` (a sigmoid of logits; a linear model's values as they are) and moves them to the
CPU. Inputs holding NaN or infinite values, and empty batches of images, are refused with the
argument's name.
"""

from __future__ import annotations

import torch
from torch import nn

from .images import check_finite, one_image, to_float
from .models import to_pixels
from .regularizers import GaussianNoise
from .utils import eval_mode, generator


def _images(x: torch.Tensor, name: str) -> torch.Tensor:
    """Finite, non-empty images as float32 rows ``(B, d)`` (:func:`aelib.images.to_float`)."""
    x = check_finite(x, name)
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"{name} must be a non-empty batch of images, got shape {tuple(x.shape)}")
    return to_float(x)


@torch.no_grad()
def codes_to_images(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Pixels of codes, in eval mode. Args: z ``(B, m)``. Returns: ``(B, 28, 28)``.

    The decoder's output through the model's ``to_pixels``: pixel probabilities for a model with
    logits (a sigmoid), the decoded values themselves for a linear one.
    """
    z = check_finite(z, "z")
    with eval_mode(model):
        x_hat = to_pixels(model, model.decode(z.to(next(model.parameters()).device))).cpu()
    return x_hat.reshape(len(z), 28, 28)


@torch.no_grad()
def images_to_codes(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Codes of images, in eval mode, on the CPU.

    Args:
        x: images ``(B, 784)`` or ``(B, 1, 28, 28)``, uint8 or float in [0, 1].
    Returns:
        ``(B, m)``.
    """
    x = _images(x, "x")
    with eval_mode(model):
        return model.encode(x.to(next(model.parameters()).device)).cpu()


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
    x_a, x_b = one_image(x_a, "x_a"), one_image(x_b, "x_b")
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
    x_a, x_b = check_finite(x_a, "x_a"), check_finite(x_b, "x_b")
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
    x_a, x_b = _images(x_a, "x_a"), _images(x_b, "x_b")
    z = images_to_codes(model, torch.cat([x_a, x_b]))
    return z[: len(x_a)], z[len(x_a) :]


def decode_segment(model: nn.Module, z_a: torch.Tensor, z_b: torch.Tensor, t) -> torch.Tensor:
    """Decodings of ``(1 - t) z_a + t z_b`` for positions ``t`` in [0, 1]: ``(T, B, 28, 28)``."""
    t = torch.as_tensor(t, dtype=z_a.dtype).reshape(-1, 1, 1)
    if not ((t >= 0) & (t <= 1)).all():  # NaN fails too
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
    clean = _images(x, "x")
    noisy = GaussianNoise(std)(clean, generator(seed))
    with eval_mode(model):  # reconstruct runs without autograd already
        denoised = model.reconstruct(noisy.to(next(model.parameters()).device)).cpu()
    return noisy.reshape(-1, 28, 28), denoised.reshape(-1, 28, 28)
