"""Pixels as the models take them: the one place that scales, flattens and checks images.

uint8 images (0-255, as :func:`aelib.load_dataset` returns them) become floats in [0, 1] by a
division by 255; float images pass as they are, in their dtype; a batch ``(B, 1, H, W)`` becomes
``(B, H * W)``. Every function of aelib that takes images goes through :func:`pixels`,
:func:`to_float` or :func:`image_batch`, so ``model(x)``, ``fit(model, x)`` and the inference
helpers accept the same inputs. The bottom layer of aelib: it imports nothing else from it.
"""

from __future__ import annotations

import torch


def pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 images scaled to float32 in [0, 1] (``x / 255``); anything else unchanged.

    Args:
        x: a tensor of any shape.
    Returns:
        The same shape: float32 for uint8 input, else ``x`` itself.
    """
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Scale uint8 images to float32 in [0, 1] and flatten them.

    Args:
        x: uint8 ``(N, 1, 28, 28)`` or ``(N, 784)``, or float already in [0, 1].
    Returns:
        float32 ``(N, 784)``.
    """
    return pixels(x).reshape(len(x), -1).float()


def rows(x: torch.Tensor) -> torch.Tensor:
    """``(N, d)``: uint8 images scaled by :func:`pixels`, floats in their own dtype, flattened."""
    return pixels(x).reshape(len(x), -1)


def check_tensor(x, name: str) -> torch.Tensor:
    """``x`` if it is a tensor; else a TypeError that names ``name`` and the conversion to use."""
    if isinstance(x, torch.Tensor):
        return x
    hint = f": convert it with torch.from_numpy({name})" if type(x).__module__ == "numpy" else ""
    raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}{hint}")


def image_batch(
    x: torch.Tensor,
    input_dim: int | None = None,
    name: str = "x",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """A batch of images as rows ``(B, d)``, after checking what a model needs of it.

    Args:
        x: ``(B, d)`` or ``(B, 1, H, W)`` with ``H * W = d``; uint8 (0-255) or floats.
        input_dim: ``d``, the values per image the model takes (None: any).
        name: the argument's name, for the messages.
        dtype: the model's floating dtype: uint8 images become it, float images must have it.
    Returns:
        ``(B, d)``: uint8 scaled to [0, 1] (in ``dtype``, default float32), floats as they are.
    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: another shape, an empty batch, an integer dtype other than uint8, or floats
            of another dtype than ``dtype``; the message names ``name``.
    """
    x = check_tensor(x, name)
    if not (x.dim() == 2 or (x.dim() == 4 and x.shape[1] == 1)):
        want = "d" if input_dim is None else input_dim
        raise ValueError(
            f"{name} must be a batch of shape (B, {want}) or (B, 1, H, W), got {tuple(x.shape)}"
        )
    d = x.shape[1] if x.dim() == 2 else x.shape[2] * x.shape[3]
    if input_dim is not None and d != input_dim:
        raise ValueError(
            f"{name} has {d} values per image but the model takes {input_dim}: expected a "
            f"batch of shape (B, {input_dim}) or (B, 1, H, W) with H*W = {input_dim}, got "
            f"{tuple(x.shape)}"
        )
    if len(x) == 0:
        raise ValueError(f"{name} must be a non-empty batch, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0) if dtype in (None, torch.float32) else x.to(dtype).div_(255)
    elif not x.is_floating_point():
        raise ValueError(f"{name} must hold uint8 pixels (0-255) or floats, got {x.dtype}")
    elif dtype is not None and x.dtype != dtype:
        raise ValueError(
            f"{name} is {x.dtype} but the model computes in {dtype}: convert it with "
            f"{name}.to({dtype}) (or the model with model.to({x.dtype}))"
        )
    return x.reshape(len(x), d)


def one_image(x: torch.Tensor, name: str, d: int = 784) -> torch.Tensor:
    """One image as a batch of one ``(1, d)``, from ``(d,)``, ``(1, d)`` or ``(1, 1, H, W)``."""
    x = check_tensor(x, name)
    if x.numel() != d:
        raise ValueError(
            f"{name} must be one 28x28 image ((784,), (1, 784) or (1, 1, 28, 28)), "
            f"got {tuple(x.shape)}"
        )
    return x.reshape(1, d)


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` if every value is finite; else a ValueError naming ``name``."""
    x = check_tensor(x, name)
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x
