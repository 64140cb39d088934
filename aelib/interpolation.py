"""Scoring a walk between two images: how evenly it moves, how far it strays, how digit-like it is.

A path is a batch of walks ``(T + 1, B, ...)``: step ``k = 0..T`` of walk ``b`` is ``path[k, b]``,
as :func:`aelib.inference.interpolate_pairs` returns it. With ``Delta_k = x_k - x_{k-1}``:

- the *speed unevenness* ``U = T sum_k |Delta_k|^2 / (sum_k |Delta_k|)^2 >= 1`` (Cauchy-Schwarz),
  equal to 1 when every step has the same length and to ``T`` when one step does all the moving;
- the *detour* ``Gamma = sum_k |Delta_k| / |x_T - x_0| >= 1`` (triangle inequality), equal to 1
  when the path runs straight from one end to the other in pixel space without turning back.

Their product ``U Gamma^2 = T sum_k |Delta_k|^2 / |x_T - x_0|^2`` is the single ratio the book
first used (chapter 4): a pixel cross-fade scores 1 on both, the best possible, so neither says
whether the images along the path look like digits. :func:`digit_confidence` does: the
probability that a digit classifier (:mod:`aelib.classifier`) gives its most likely class, image
by image.
"""

from __future__ import annotations

import torch
from torch import nn

from .classifier import predict_proba


def _steps(path: torch.Tensor) -> torch.Tensor:
    """Step lengths ``|x_k - x_{k-1}|``: ``(T, B)`` from a path ``(T + 1, B, ...)``."""
    if path.dim() < 3 or len(path) < 2:
        raise ValueError(
            f"expected a path (T + 1, B, ...) with T >= 1 steps, got shape {tuple(path.shape)}"
        )
    return (path[1:] - path[:-1]).flatten(2).norm(dim=2)


def cross_fade(x_a: torch.Tensor, x_b: torch.Tensor, t) -> torch.Tensor:
    """Pixel cross-fades ``(1 - t) x_a + t x_b``.

    Args:
        x_a: start images ``(B, ...)``, float.
        x_b: end images, the same shape.
        t: positions in [0, 1]: a sequence ``(T + 1,)``.
    Returns:
        ``(T + 1, B, ...)``, a path in the layout of :func:`aelib.inference.interpolate_pairs`.
    """
    if x_a.shape != x_b.shape:
        raise ValueError(
            f"x_a and x_b must have the same shape, got {tuple(x_a.shape)} and {tuple(x_b.shape)}"
        )
    t = torch.as_tensor(t, dtype=x_a.dtype, device=x_a.device).reshape((-1,) + (1,) * x_a.dim())
    return (1 - t) * x_a + t * x_b


def speed_unevenness(path: torch.Tensor) -> torch.Tensor:
    """``U = T sum_k |Delta_k|^2 / (sum_k |Delta_k|)^2`` of each walk, between 1 and ``T``.

    Args:
        path: ``(T + 1, B, ...)`` images along ``B`` walks of ``T`` steps.
    Returns:
        ``(B,)``: 1 for steps of equal length, ``T`` for a walk that moves in one step.
    Raises:
        ValueError: if a walk never moves (``U`` would be 0/0).
    """
    steps = _steps(path)
    length = steps.sum(dim=0)
    if (length == 0).any():
        raise ValueError(
            "every walk must move (sum_k |Delta_k| > 0): U is 0/0 for a walk that stays"
        )
    return len(steps) * steps.pow(2).sum(dim=0) / length.pow(2)


def detour(path: torch.Tensor) -> torch.Tensor:
    """``Gamma = sum_k |Delta_k| / |x_T - x_0|``: path length over straight distance, per walk.

    Args:
        path: ``(T + 1, B, ...)`` images along ``B`` walks whose ends differ.
    Returns:
        ``(B,)``, at least 1; 1 exactly for a walk that runs along the straight segment
        without turning back (a cross-fade).
    """
    straight = (path[-1] - path[0]).flatten(1).norm(dim=1)
    if (straight == 0).any():
        raise ValueError("every walk must end somewhere else than it starts (|x_T - x_0| > 0)")
    return _steps(path).sum(dim=0) / straight


def digit_confidence(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The classifier's probability of its most likely class, for every image of a batch or path.

    Args:
        classifier: a trained :class:`aelib.classifier.DigitClassifier`.
        images: ``(..., 28, 28)`` or ``(..., 784)`` floats in [0, 1], for example a path
            ``(T + 1, B, 28, 28)``.
    Returns:
        The leading shape of ``images`` (``(T + 1, B)`` for a path), values in [0.1, 1].
    """
    lead = images.shape[:-2] if images.shape[-2:] == (28, 28) else images.shape[:-1]
    flat = images.reshape(-1, 784)
    return predict_proba(classifier, flat).amax(dim=1).reshape(lead)
