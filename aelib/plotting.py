"""Pictures: reconstruction grids and loss curves, each returned as a matplotlib Figure."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from .history import History
from .images import to_float
from .models import to_pixels
from .utils import eval_mode

BOOK_WIDTH = 7.0
"""The book's text column in inches: a default figure wider than this is scaled down to it."""


def book_figsize(width: float, height: float) -> tuple[float, float]:
    """A figure size at most :data:`BOOK_WIDTH` wide, with the aspect ratio of ``(width, height)``.

    Args:
        width: the wanted width in inches.
        height: the wanted height in inches.
    Returns:
        ``(width, height)`` unchanged when ``width <= BOOK_WIDTH``, else both scaled by
        ``BOOK_WIDTH / width``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"expected a positive width and height, got {width!r} x {height!r}")
    scale = min(1.0, BOOK_WIDTH / width)
    return width * scale, height * scale


def _save(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def image_grid(
    x: torch.Tensor, nrow: int = 8, ax: plt.Axes | None = None, title: str | None = None
) -> Figure:
    """Show images as one grid (``torchvision.utils.make_grid``), white digits on black.

    Args:
        x: ``(B, 784)`` or ``(B, 1, 28, 28)``, uint8 or float in [0, 1].
        nrow: images per row.
        ax: axes to draw on; default a new figure, 0.8 in per image, scaled down to
            :data:`BOOK_WIDTH` when wider (see :func:`book_figsize`).
        title: axes title.
    Returns:
        The figure holding the grid.
    """
    images = to_float(x.detach().cpu()).reshape(-1, 1, 28, 28)
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=0.5)
    if ax is None:
        rows = (len(images) + nrow - 1) // nrow
        _, ax = plt.subplots(figsize=book_figsize(nrow * 0.8, rows * 0.8 + 0.4))
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax.figure


def reconstruction_grid(
    model: torch.nn.Module,
    x: torch.Tensor,
    n: int = 8,
    path: str | os.PathLike | None = None,
    title: str | None = None,
) -> Figure:
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
    with eval_mode(model):
        x_hat = model.reconstruct(originals)
    fig = image_grid(
        torch.cat([originals, x_hat]),
        nrow=n,
        title=title or "originals (top) and reconstructions (bottom)",
    )
    return _save(fig, path)


def loss_curves(
    history: History,
    path: str | os.PathLike | None = None,
    reference: float | None = None,
    reference_label: str = "reference",
) -> Figure:
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


def latent_scatter(
    z: torch.Tensor,
    y: torch.Tensor,
    ax: plt.Axes | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
    s: float = 6.0,
    alpha: float = 0.7,
) -> Figure:
    """Scatter two-dimensional codes, one colour per label, with a legend of the labels.

    Args:
        z: codes ``(N, 2)``, for example ``model.encode(x)`` of a model with ``latent_dim=2``.
        y: integer labels ``(N,)`` (digits 0-9 for MNIST).
        ax: axes to draw on; default a new figure.
        title: axes title.
        path: save a PNG there too.
        s: marker size.
        alpha: marker opacity.
    Returns:
        The figure.
    Raises:
        ValueError: ``z`` is not ``(N, 2)`` or ``y`` does not hold one label per code.
    """
    z, y = z.detach().cpu(), torch.as_tensor(y).cpu()
    if z.dim() != 2 or z.shape[1] != 2:
        raise ValueError(
            f"expected codes of shape (N, 2), got {tuple(z.shape)}; "
            "for a larger code project it to two dimensions first"
        )
    if y.shape != (len(z),):
        raise ValueError(f"expected {len(z)} labels of shape ({len(z)},), got {tuple(y.shape)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    colours = plt.get_cmap("tab10")
    for i, label in enumerate(torch.unique(y).tolist()):
        keep = y == label
        ax.scatter(
            z[keep, 0].numpy(),
            z[keep, 1].numpy(),
            s=s,
            alpha=alpha,
            color=colours(i % 10),
            label=str(label),
        )
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.legend(
        title="label", markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False
    )
    if title:
        ax.set_title(title)
    return _save(ax.figure, path)


@torch.no_grad()
def latent_grid(
    model: torch.nn.Module,
    z_min: tuple[float, float],
    z_max: tuple[float, float],
    n: int = 12,
    ax: plt.Axes | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Decode an ``n`` x ``n`` grid of codes spanning a rectangle of a 2-D latent plane.

    The image in column ``j`` and row ``i`` is the decoding of
    ``z = (z1_j, z2_i)``, with ``z1`` growing to the right and ``z2`` growing upwards, as in
    :func:`latent_scatter`; the axes are labelled in latent coordinates.

    Args:
        model: has ``latent_dim == 2`` and ``decode(z) -> (B, 784)`` (logits, made pixels by
            its ``to_pixels``).
        z_min: lower-left corner ``(z1, z2)`` of the rectangle.
        z_max: upper-right corner ``(z1, z2)``.
        n: images per side.
        ax: axes to draw on; default a new figure.
        title: axes title.
        path: save a PNG there too.
    Returns:
        The figure.
    Raises:
        ValueError: the model's code is not two-dimensional, or the rectangle is empty.
    """
    if getattr(model, "latent_dim", None) != 2:
        raise ValueError(
            "latent_grid needs a model with latent_dim=2, "
            f"got {getattr(model, 'latent_dim', None)!r}"
        )
    if not (z_min[0] < z_max[0] and z_min[1] < z_max[1]):
        raise ValueError(
            f"expected z_min < z_max in both coordinates, got {tuple(z_min)} and {tuple(z_max)}"
        )
    device = next(model.parameters()).device
    z1 = torch.linspace(z_min[0], z_max[0], n)
    z2 = torch.linspace(z_max[1], z_min[1], n)  # top row first: z2 grows upwards
    codes = torch.stack(torch.meshgrid(z2, z1, indexing="ij")[::-1], dim=-1).reshape(-1, 2)
    with eval_mode(model):
        images = to_pixels(model, model.decode(codes.to(device))).cpu().reshape(-1, 1, 28, 28)
    grid = make_grid(images, nrow=n, padding=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6))
    # codes are decoded at the cells' centres: the image reaches half a cell beyond them
    half1, half2 = (
        ((z_max[0] - z_min[0]) / (2 * (n - 1)), (z_max[1] - z_min[1]) / (2 * (n - 1)))
        if n > 1
        else (0, 0)
    )
    ax.imshow(
        grid[0].numpy(),
        cmap="gray",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        aspect="auto",
        extent=(z_min[0] - half1, z_max[0] + half1, z_min[1] - half2, z_max[1] + half2),
    )
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return _save(ax.figure, path)


def sweep_plot(
    values,
    losses,
    xlabel: str,
    ylabel: str = "Test loss (BCE per image)",
    logx: bool = False,
    ax: plt.Axes | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """A loss as a function of one setting (latent size, learning rate...), best point marked.

    Args:
        values: the settings tried, length ``K``.
        losses: the loss reached with each, length ``K``.
        xlabel: name of the setting.
        ylabel: name of the loss.
        logx: logarithmic x-axis (for learning rates).
        ax: axes to draw on; default a new figure.
        title: axes title.
        path: save a PNG there too.
    Returns:
        The figure.
    """
    values, losses = list(values), [float(v) for v in losses]
    if len(values) != len(losses) or not values:
        raise ValueError(
            "expected as many losses as values (at least one), "
            f"got {len(values)} and {len(losses)}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ax.plot(values, losses, marker="o")
    best = min(range(len(losses)), key=losses.__getitem__)
    ax.plot(
        [values[best]],
        [losses[best]],
        marker="*",
        markersize=14,
        color="C3",
        linestyle="none",
        label=f"best: {values[best]:.3g}",
    )
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(ax.figure, path)


def compare_losses(
    histories: dict[str, History],
    split: str = "test",
    ax: plt.Axes | None = None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Loss per epoch of several runs in one plot, one line per run.

    Args:
        histories: run name -> the :class:`aelib.History` that :func:`aelib.fit` returned.
        split: ``"test"`` or ``"train"``.
        ax: axes to draw on; default a new figure.
        title: axes title.
        path: save a PNG there too.
    Returns:
        The figure.
    """
    from matplotlib.ticker import MaxNLocator

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, history in histories.items():
        losses = getattr(history, f"{split}_loss")
        if not losses:
            raise ValueError(
                f"run {name!r} has no {split} losses (pass x_test to fit for test losses)"
            )
        ax.plot(range(1, len(losses) + 1), losses, marker="o", markersize=3, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")
    ax.set_ylabel(f"{split.capitalize()} loss (BCE summed over pixels, per image)")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(ax.figure, path)
