"""Pictures: reconstruction grids and loss curves, each returned as a matplotlib Figure."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from .data import to_float
from .train import History


def _save(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def image_grid(x: torch.Tensor, nrow: int = 8, ax: plt.Axes | None = None, title: str | None = None) -> Figure:
    """Show images as one grid (``torchvision.utils.make_grid``), white digits on black.

    Args:
        x: ``(B, 784)`` or ``(B, 1, 28, 28)``, uint8 or float in [0, 1].
        nrow: images per row.
        ax: axes to draw on; default a new figure.
        title: axes title.
    Returns:
        The figure holding the grid.
    """
    images = to_float(x.detach().cpu()).reshape(-1, 1, 28, 28)
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=0.5)
    if ax is None:
        rows = (len(images) + nrow - 1) // nrow
        _, ax = plt.subplots(figsize=(nrow * 0.8, rows * 0.8 + 0.4))
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def reconstruction_grid(model: torch.nn.Module, x: torch.Tensor, n: int = 8,
                        path: str | os.PathLike | None = None, title: str | None = None) -> Figure:
    """Originals (top row) above their reconstructions (bottom row).

    Args:
        model: has ``reconstruct(x) -> x_hat`` in [0, 1] (for example :class:`aelib.Autoencoder`).
        x: at least ``n`` images ``(B, 1, 28, 28)`` or ``(B, 784)``.
        n: how many images to show.
        path: save a PNG there too.
        title: figure title.
    Returns:
        The figure (left open so that ``plt.show()`` displays it).
    """
    if len(x) < n:
        raise ValueError(f"need at least n={n} images, got {len(x)}")
    device = next(model.parameters()).device
    originals = to_float(x[:n]).to(device)
    was_training = model.training
    model.eval()
    x_hat = model.reconstruct(originals)
    model.train(was_training)
    fig = image_grid(torch.cat([originals, x_hat]), nrow=n,
                     title=title or "originals (top) and reconstructions (bottom)")
    return _save(fig, path)


def loss_curves(history: History, path: str | os.PathLike | None = None,
                reference: float | None = None, reference_label: str = "reference") -> Figure:
    """Training and test loss per epoch (the seed's loss plot, with its ``--label`` typo fixed).

    Args:
        history: the :class:`aelib.History` returned by :func:`aelib.fit`.
        path: save a PNG there too.
        reference: draw a horizontal line at this loss (for example the seed's 68.45).
        reference_label: legend text for that line.
    Returns:
        The figure.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = range(1, len(history) + 1)
    ax.plot(epochs, history.train_loss, marker="o", label="Training loss")
    if history.test_loss:
        ax.plot(epochs, history.test_loss, marker="s", label="Test loss")
    if reference is not None:
        ax.axhline(reference, color="gray", linestyle="--", label=reference_label)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Loss (BCE summed over pixels, per image)")
    ax.set_title("Training and test loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
